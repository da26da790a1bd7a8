//! The NVML fault matrix: every NVML call the sampler makes × every error
//! NVML can answer it with (and a call that hangs), each injected through the
//! fake NVML, with what a user must see checked for each case:
//!
//! * sampling goes on and every other GPU and series is unchanged;
//! * only the series the failing call feeds disappear, and every value that
//!   is reported is the true one (compared with a clean run at the same
//!   scenario time): never 0 or a stale value in place of an unknown one;
//! * `up`/`down_reason` and the error counts (`algalon_gpu_up`,
//!   `algalon_nvml_errors_total{call,error}`) say what happened;
//! * when the fault clears, everything comes back without a restart (NVML
//!   "not supported" excepted: it is remembered by design).
//!
//! The calls are not listed by hand: a clean run logs the calls it makes
//! (`ALGALON_FAKE_NVML_CALL_LOG`), and the catalog's `Field::nvml_call` says
//! which series each call feeds, so a new field or call joins the matrix by
//! itself; a call the matrix cannot map to what it feeds fails the test
//! with what to add. Scenario time comes from a clock file
//! (`ALGALON_FAKE_NVML_CLOCK_FILE`) the test steps, so every window is exact
//! and nothing waits on wall-clock time. The summary (cases by call) is
//! printed and written to `$CARGO_TARGET_TMPDIR/fault-matrix-core.txt`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use algalon_core::{CATALOG, Field, GpuSample, Kind, Sampler, SamplerOptions, Snapshot, Value};
use common::{fake_nvml, with_scenario};
use serde_json::json;

/// What is injected into one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    NotSupported,
    NoPermission,
    GpuIsLost,
    Unknown,
    Timeout,
    /// The size probe and the fetch disagree forever: on a call with NVML's
    /// size protocol the fake asks for one entry more than offered, every time.
    InsufficientSize,
    DriverNotLoaded,
    /// The call blocks for [`HANG`], then answers correctly: slow is not
    /// failed. (The exporter-level test hangs a call far past the interval.)
    Hung,
}

const FAULTS: [Fault; 8] = [
    Fault::NotSupported,
    Fault::NoPermission,
    Fault::GpuIsLost,
    Fault::Unknown,
    Fault::Timeout,
    Fault::InsufficientSize,
    Fault::DriverNotLoaded,
    Fault::Hung,
];

/// How long a hung call blocks.
const HANG: Duration = Duration::from_millis(40);

impl Fault {
    /// The scenario's `error` (an `NVML_ERROR_` suffix).
    fn nvml(self) -> &'static str {
        match self {
            Fault::NotSupported => "NOT_SUPPORTED",
            Fault::NoPermission => "NO_PERMISSION",
            Fault::GpuIsLost => "GPU_IS_LOST",
            Fault::Unknown => "UNKNOWN",
            Fault::Timeout => "TIMEOUT",
            Fault::InsufficientSize => "INSUFFICIENT_SIZE",
            Fault::DriverNotLoaded => "DRIVER_NOT_LOADED",
            Fault::Hung => "hung",
        }
    }

    /// The `error` label Algalon counts it under.
    fn counted_as(self) -> &'static str {
        match self {
            Fault::NotSupported => "NotSupported",
            Fault::NoPermission => "NoPermission",
            Fault::GpuIsLost => "GpuLost",
            Fault::Unknown => "Unknown",
            Fault::Timeout => "Timeout",
            Fault::InsufficientSize => "InsufficientSize",
            Fault::DriverNotLoaded => "DriverNotLoaded",
            Fault::Hung => "",
        }
    }

    /// A failure that leaves the reading out and is counted.
    fn counted(self) -> bool {
        matches!(
            self,
            Fault::NoPermission | Fault::Unknown | Fault::Timeout | Fault::InsufficientSize
        )
    }
}

/// Calls that are NVML's plumbing rather than readings: not injected.
const PLUMBING: &[&str] = &["nvmlInit_v2", "nvmlShutdown", "nvmlErrorString"];

/// Calls that concern no single GPU (the fake applies their faults to all).
fn is_system_call(call: &str) -> bool {
    call.starts_with("nvmlSystem")
        || call.starts_with("nvmlEventSet")
        || matches!(
            call,
            "nvmlDeviceGetCount_v2" | "nvmlGpmSampleAlloc" | "nvmlGpmSampleFree"
        )
}

/// Calls made by the XID listener thread, not by the sampler: their
/// failures cost the XID series, never the GPU.
const LISTENER_CALLS: &[&str] = &[
    "nvmlDeviceGetSupportedEventTypes",
    "nvmlDeviceRegisterEvents",
    "nvmlEventSetCreate",
    "nvmlEventSetWait_v2",
    "nvmlEventSetFree",
];

/// What a failing call takes away.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Feeds {
    /// The whole GPU: it cannot be reached or told apart without this call.
    Gpu,
    /// These series or labels (catalog fields).
    Fields(BTreeSet<Field>),
    /// The GPU's process list.
    Processes,
    /// Per-process utilization only.
    ProcessUtilization,
    /// Identity metadata that is read again later (name, PCI id, minor
    /// number), or nothing the exposition shows.
    Metadata,
    /// The sampler cannot start; it must say which call failed.
    Startup,
}

fn catalog_fields_of(call: &str) -> BTreeSet<Field> {
    CATALOG
        .iter()
        .filter(|d| d.field.nvml_call() == call)
        .map(|d| d.field)
        .collect()
}

/// What each call feeds: the catalog for every field's own call, this table
/// for the calls around them.
fn feeds(call: &str) -> Feeds {
    let gpm = catalog_fields_of("nvmlGpmMetricsGet");
    let xid: BTreeSet<Field> = [Field::XidErrors].into();
    match call {
        "nvmlDeviceGetHandleByIndex_v2" | "nvmlDeviceGetUUID" => Feeds::Gpu,
        "nvmlDeviceGetCount_v2" => Feeds::Startup,
        "nvmlGpmSampleAlloc" | "nvmlGpmSampleGet" => Feeds::Fields(gpm),
        // nvml-wrapper probes the size with v1 and fetches with _v2.
        "nvmlDeviceGetRetiredPages" => {
            Feeds::Fields(catalog_fields_of("nvmlDeviceGetRetiredPages_v2"))
        }
        "nvmlDeviceGetSupportedEventTypes" | "nvmlEventSetCreate" => Feeds::Fields(xid),
        "nvmlDeviceGetComputeRunningProcesses_v3" | "nvmlDeviceGetGraphicsRunningProcesses_v3" => {
            Feeds::Processes
        }
        "nvmlDeviceGetProcessUtilization" => Feeds::ProcessUtilization,
        "nvmlDeviceGetName"
        | "nvmlDeviceGetPciInfo_v3"
        | "nvmlDeviceGetMinorNumber"
        | "nvmlSystemGetCudaDriverVersion_v2"
        | "nvmlGpmSampleFree"
        | "nvmlEventSetWait_v2"
        | "nvmlEventSetFree" => Feeds::Metadata,
        _ => {
            let fields = catalog_fields_of(call);
            assert!(
                !fields.is_empty(),
                "the sampler calls {call}, which no catalog field names as its source: add it \
                 to `feeds` in algalon-core/tests/fault_matrix.rs with what it feeds"
            );
            Feeds::Fields(fields)
        }
    }
}

/// The call a failure is counted under, where nvml-wrapper makes two
/// calls for one reading and the sampler cannot tell which one failed.
fn counted_under(call: &str) -> &str {
    match call {
        "nvmlDeviceGetRetiredPages" => "nvmlDeviceGetRetiredPages_v2",
        "nvmlGpmSampleAlloc" => "nvmlGpmSampleGet",
        other => other,
    }
}

/// Calls whose failures nvml-wrapper discards (resource release on drop):
/// nothing to see, nothing to count; the matrix checks that nothing else
/// suffers.
const SWALLOWED: &[&str] = &["nvmlGpmSampleFree", "nvmlEventSetFree"];

/// Calls made only when a sampler stops (or re-initialises NVML): their
/// phase stops the sampler inside the window and starts a new one after it.
const TEARDOWN: &[&str] = &["nvmlEventSetFree"];

/// A process's memory, SM and memory utilization.
type Process = (Option<u64>, Option<u32>, Option<u32>);

/// One GPU as a user sees it, Serial aside (each copy of the template GPU
/// has its own).
#[derive(Debug, Clone, PartialEq)]
struct View {
    up: bool,
    down_call: Option<&'static str>,
    uuid: String,
    name: String,
    pci_bus_id: String,
    minor: Option<u32>,
    values: BTreeMap<Field, Value>,
    labels: BTreeMap<Field, String>,
    processes: BTreeMap<u32, Process>,
}

impl View {
    fn of(gpu: &GpuSample) -> View {
        View {
            up: gpu.up,
            down_call: gpu.down_reason.as_ref().map(|r| r.call),
            uuid: gpu.uuid.clone(),
            name: gpu.name.clone(),
            pci_bus_id: gpu.pci_bus_id.clone(),
            minor: gpu.minor_number,
            values: Field::all()
                .filter(|f| f.def().kind != Kind::Label)
                .filter_map(|f| Some((f, gpu.get(f)?)))
                .collect(),
            labels: gpu
                .labels
                .iter()
                .filter(|(f, _)| **f != Field::Serial)
                .map(|(f, v)| (*f, v.clone()))
                .collect(),
            processes: gpu
                .processes
                .iter()
                .map(|p| (p.pid, (p.used_memory_bytes, p.sm_util, p.mem_util)))
                .collect(),
        }
    }
}

/// The scenario times of one case: the sampler starts inside the window,
/// samples twice there, then four times after it.
const WINDOW: (f64, f64) = (5.0, 8.0);
const STEPS: [f64; 6] = [6.0, 7.0, 9.0, 9.5, 10.0, 10.5];
const IN_WINDOW: usize = 2;

/// A scenario time base per phase, so one scenario holds many windows.
fn base_of(phase: usize) -> f64 {
    100.0 * phase as f64
}

struct Harness {
    dir: tempfile::TempDir,
    clock: PathBuf,
    template: serde_json::Value,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = dir.path().join("clock");
        let template: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(common::scenario("fault-matrix")).expect("read template"),
        )
        .expect("template JSON");
        std::fs::create_dir_all(dir.path().join("proc")).expect("proc dir");
        Harness {
            dir,
            clock,
            template,
        }
    }

    fn set_time(&self, t: f64) {
        let tmp = self.clock.with_extension("tmp");
        std::fs::write(&tmp, format!("{t}")).expect("write clock");
        std::fs::rename(&tmp, &self.clock).expect("move clock");
    }

    fn options(&self) -> SamplerOptions {
        SamplerOptions {
            nvml_lib: Some(fake_nvml()),
            hostname: Some("fault-matrix".into()),
            fields: Field::all().collect(),
            processes: true,
            xid_events: true,
            devices: None,
            proc_root: self.dir.path().join("proc"),
            ..SamplerOptions::default()
        }
    }

    /// The template replicated `gpus` times with `faults` and `latency`.
    fn write_scenario(
        &self,
        name: &str,
        gpus: usize,
        faults: Vec<serde_json::Value>,
        latency: Vec<serde_json::Value>,
    ) -> PathBuf {
        let mut s = self.template.clone();
        s["gpus"][0]["count"] = json!(gpus);
        s["faults"] = json!(faults);
        s["latency"] = json!(latency);
        let path = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&s).expect("JSON")).expect("write");
        path
    }

    /// Runs `f` with the fake NVML on `scenario`, time from the clock file
    /// and calls logged.
    fn with<T>(&self, scenario: &Path, f: impl FnOnce() -> T) -> T {
        with_scenario(scenario, None, || {
            call_log();
            // SAFETY: with_scenario holds the lock every environment change
            // of this test binary takes.
            unsafe {
                std::env::set_var("ALGALON_FAKE_NVML_CLOCK_FILE", &self.clock);
            }
            f()
        })
    }
}

/// The calls logged since `from` bytes into the call log.
fn logged_calls(log: &Path, from: u64) -> BTreeSet<String> {
    let text = std::fs::read(log).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
    String::from_utf8_lossy(&text[from..])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn log_len(log: &Path) -> u64 {
    std::fs::metadata(log).map_or(0, |m| m.len())
}

/// The log file is opened by the fake at its first call in this process;
/// every test of this binary calls this before touching NVML.
fn call_log() -> PathBuf {
    static LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("fault-matrix-calls-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        // SAFETY: called before this binary's first NVML call, under the
        // test lock (see `with`); nothing reads the environment concurrently.
        unsafe { std::env::set_var("ALGALON_FAKE_NVML_CALL_LOG", &path) };
        path
    })
    .clone()
}

/// The clean run: what every GPU reports at each scenario time the matrix
/// samples at, and which calls the sampler makes (all of them, and those of
/// a steady-state sample).
struct Reference {
    at: BTreeMap<u64, View>,
    calls: BTreeSet<String>,
    steady: BTreeSet<String>,
}

fn time_key(t: f64) -> u64 {
    (t * 1000.0).round() as u64
}

impl Reference {
    fn view(&self, t: f64) -> &View {
        &self.at[&time_key(t)]
    }
}

fn reference(h: &Harness, times: &[f64]) -> Reference {
    let clean = h.write_scenario("clean", 1, vec![], vec![]);
    h.with(&clean, || {
        let log = call_log();
        let start = log_len(&log);
        h.set_time(times[0]);
        let mut sampler = Sampler::new(h.options()).expect("clean sampler");
        let mut at = BTreeMap::new();
        let mut steady = BTreeSet::new();
        for (i, t) in times.iter().enumerate() {
            h.set_time(*t);
            let before = log_len(&log);
            let snap = sampler.sample();
            if i == 2 {
                steady = logged_calls(&log, before);
            }
            assert!(snap.errors.is_empty(), "clean run: {:?}", snap.errors);
            let view = View::of(&snap.gpus[0]);
            assert!(view.up, "clean run: GPU down: {view:?}");
            at.insert(time_key(*t), view);
        }
        drop(sampler);
        let calls = logged_calls(&log, start);
        Reference { at, calls, steady }
    })
}

/// One (call, fault) case.
struct Case {
    call: String,
    fault: Fault,
    /// GPU the fault is on; `None`: every GPU (a system call).
    gpu: Option<usize>,
}

/// Cases sharing one window.
struct Phase {
    base: f64,
    cases: Vec<Case>,
    /// How many GPUs the sampler reads (the first ones of the scenario).
    gpus: usize,
}

impl Phase {
    fn times(&self) -> impl Iterator<Item = f64> + '_ {
        STEPS.iter().map(|t| self.base + t)
    }
}

/// Collects what went wrong, by case.
struct Checker<'a> {
    reference: &'a Reference,
    failures: Vec<String>,
    failed: BTreeSet<(String, Fault)>,
}

impl Checker<'_> {
    fn fail(&mut self, case: &Case, t: f64, what: String) {
        self.failed.insert((case.call.clone(), case.fault));
        self.failures.push(format!(
            "{} x {} (GPU {}) at t={t}: {what}",
            case.call,
            case.fault.nvml(),
            case.gpu.map_or("all".into(), |g| g.to_string()),
        ));
    }

    /// Reported values must be the true ones, whatever happened.
    fn truthful(&mut self, case: &Case, t: f64, view: &View) {
        let want = self.reference.view(t).clone();
        for (f, v) in &view.values {
            if want.values.get(f) != Some(v) {
                self.fail(
                    case,
                    t,
                    format!("{} = {v:?}, truly {:?}", f.name(), want.values.get(f)),
                );
            }
        }
        for (f, v) in &view.labels {
            if want.labels.get(f) != Some(v) {
                self.fail(case, t, format!("label {} = {v:?}", f.name()));
            }
        }
        for (pid, (mem, sm, mu)) in &view.processes {
            let Some((want_mem, want_sm, want_mu)) = want.processes.get(pid) else {
                self.fail(case, t, format!("process {pid} invented"));
                continue;
            };
            let same = |got: Option<u64>, want: Option<u64>| got.is_none() || got == want;
            if !same(*mem, *want_mem)
                || !same(sm.map(u64::from), want_sm.map(u64::from))
                || !same(mu.map(u64::from), want_mu.map(u64::from))
            {
                self.fail(case, t, format!("process {pid} misreported"));
            }
        }
        if !view.uuid.is_empty() && !view.uuid.starts_with("GPU-fa017000") {
            self.fail(case, t, format!("UUID {:?}", view.uuid));
        }
        if view.up && view.uuid.is_empty() {
            self.fail(case, t, "reported up without a UUID".into());
        }
    }

    /// Everything the reference has is there but what `allowed` feeds and,
    /// until the sampler has two samples of the GPU (`warm`), GPM ratios
    /// and per-process utilization.
    fn complete(&mut self, case: &Case, t: f64, view: &View, allowed: &Feeds, warm: bool) {
        let want = self.reference.view(t).clone();
        if !view.up {
            self.fail(case, t, format!("GPU down ({:?})", view.down_call));
            return;
        }
        let gpm = catalog_fields_of("nvmlGpmMetricsGet");
        let may_miss = |f: &Field| {
            (match allowed {
                Feeds::Fields(set) => set.contains(f),
                Feeds::Gpu => true,
                _ => false,
            }) || (!warm && gpm.contains(f))
        };
        let missing: Vec<&str> = want
            .values
            .keys()
            .chain(want.labels.keys())
            .filter(|f| !view.values.contains_key(f) && !view.labels.contains_key(f))
            .filter(|f| !may_miss(f))
            .map(|f| f.name())
            .collect();
        if !missing.is_empty() {
            self.fail(case, t, format!("missing {missing:?}"));
        }
        if !matches!(allowed, Feeds::Processes) && !want.processes.keys().eq(view.processes.keys())
        {
            self.fail(case, t, format!("processes {:?}", view.processes.keys()));
        }
        let util_may_miss = !warm || matches!(allowed, Feeds::ProcessUtilization);
        if !util_may_miss && view.processes.values().any(|(_, sm, _)| sm.is_none()) {
            self.fail(case, t, "process utilization missing".into());
        }
        let identity_may_miss = matches!(allowed, Feeds::Metadata) && case.fault != Fault::Hung;
        if !identity_may_miss
            && (view.name.is_empty() || view.pci_bus_id.is_empty() || view.minor.is_none())
        {
            self.fail(case, t, format!("identity incomplete: {view:?}"));
        }
    }

    /// The fed series are gone while the fault holds.
    fn affected(&mut self, case: &Case, t: f64, view: &View, feeds: &Feeds) {
        match feeds {
            Feeds::Fields(set) => {
                for f in set {
                    if view.values.contains_key(f) || view.labels.contains_key(f) {
                        self.fail(case, t, format!("{} still reported", f.name()));
                    }
                }
            }
            Feeds::Processes => {
                if !view.processes.is_empty() && case.fault != Fault::NotSupported {
                    self.fail(case, t, "processes still reported".into());
                }
            }
            Feeds::ProcessUtilization => {
                if view.processes.values().any(|(_, sm, _)| sm.is_some()) {
                    self.fail(case, t, "process utilization still reported".into());
                }
            }
            Feeds::Gpu => {
                if view.up || !view.values.is_empty() {
                    self.fail(case, t, "GPU still reported up".into());
                }
            }
            Feeds::Metadata | Feeds::Startup => {}
        }
    }

    /// One case's GPU in one sample.
    fn case(&mut self, case: &Case, t: f64, view: &View, snap: &Snapshot, step: usize, warm: bool) {
        self.truthful(case, t, view);
        let fed = feeds(&case.call);
        let listener = LISTENER_CALLS.contains(&case.call.as_str());
        let counted = snap
            .errors
            .iter()
            .find(|e| e.call == counted_under(&case.call) && e.error == case.fault.counted_as())
            .map_or(0, |e| e.count);
        if step >= IN_WINDOW {
            if step + 1 == STEPS.len() {
                // Recovered: all back but what NVML does not support.
                let remembered = case.fault == Fault::NotSupported
                    && matches!(fed, Feeds::Fields(_) | Feeds::Metadata);
                let allowed = if remembered { fed } else { Feeds::Gpu };
                let allowed = if matches!(allowed, Feeds::Gpu) {
                    Feeds::Fields(BTreeSet::new())
                } else {
                    allowed
                };
                self.complete(case, t, view, &allowed, warm);
            }
            return;
        }
        // Counts and "down" are judged on the last sample in the window:
        // some calls are only made from the second sample on (GPM ratios
        // need two samples).
        let last_in_window = step + 1 == IN_WINDOW;
        match case.fault {
            Fault::Hung => {
                self.complete(case, t, view, &Feeds::Fields(BTreeSet::new()), warm);
                if snap
                    .errors
                    .iter()
                    .any(|e| e.call == counted_under(&case.call))
                {
                    self.fail(case, t, "a slow call counted as an error".into());
                }
            }
            Fault::GpuIsLost | Fault::DriverNotLoaded if !listener && case.gpu.is_some() => {
                if view.up {
                    if last_in_window && !SWALLOWED.contains(&case.call.as_str()) {
                        self.fail(case, t, "GPU still up".into());
                    }
                } else {
                    if case.fault == Fault::GpuIsLost
                        && view.down_call != Some(counted_under(&case.call))
                    {
                        self.fail(case, t, format!("down because of {:?}", view.down_call));
                    }
                    if !view.values.is_empty() || !view.processes.is_empty() {
                        self.fail(case, t, "readings of a down GPU reported".into());
                    }
                }
            }
            _ if fed == Feeds::Gpu => {
                self.affected(case, t, view, &fed);
                if view.down_call != Some(counted_under(&case.call)) {
                    self.fail(case, t, format!("down because of {:?}", view.down_call));
                }
            }
            _ => {
                // A size probe that is told "more" is answered truthfully by
                // the fetch when the list did not really grow.
                let probe =
                    case.fault == Fault::InsufficientSize && counted_under(&case.call) != case.call;
                if !probe && (step == 0 || case.fault != Fault::NotSupported) {
                    self.affected(case, t, view, &fed);
                }
                if case.gpu.is_some()
                    || !matches!(case.fault, Fault::GpuIsLost | Fault::DriverNotLoaded)
                {
                    self.complete(case, t, view, &fed, warm);
                }
                let expect_count = case.fault.counted()
                    && last_in_window
                    && !SWALLOWED.contains(&case.call.as_str())
                    && !(case.call == "nvmlEventSetWait_v2" && case.fault == Fault::Timeout);
                if expect_count && counted == 0 {
                    self.fail(
                        case,
                        t,
                        format!(
                            "not counted as {}/{}: {:?}",
                            counted_under(&case.call),
                            case.fault.counted_as(),
                            snap.errors
                        ),
                    );
                }
                if case.fault == Fault::NotSupported && counted > 0 {
                    self.fail(case, t, "\"not supported\" counted as an error".into());
                }
            }
        }
    }
}

/// The faults and latencies of every phase, for one scenario.
fn injections(phases: &[Phase]) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let mut faults = Vec::new();
    let mut latency = Vec::new();
    for phase in phases {
        for case in &phase.cases {
            let mut e = json!({
                "call": case.call,
                "from_s": phase.base + WINDOW.0,
                "until_s": phase.base + WINDOW.1,
            });
            if let Some(g) = case.gpu {
                e["gpu"] = json!(g);
            }
            if case.fault == Fault::Hung {
                e["ms"] = json!(HANG.as_secs_f64() * 1000.0);
                latency.push(e);
            } else {
                e["error"] = json!(case.fault.nvml());
                faults.push(e);
            }
        }
    }
    (faults, latency)
}

/// Runs one phase: a sampler started inside the window, two samples there,
/// four after it. Returns the sampler so that the caller can drop it off
/// the critical path (its XID thread takes up to half a second to stop).
fn run_phase(
    h: &Harness,
    phase: &Phase,
    checker: &mut Checker<'_>,
) -> (Option<Sampler>, BTreeSet<String>) {
    let gpus = phase.gpus;
    let times: Vec<f64> = phase.times().collect();
    let options = SamplerOptions {
        devices: Some((0..gpus).map(|g| g.to_string()).collect()),
        ..h.options()
    };
    let log = call_log();
    let log_start = log_len(&log);
    let mut in_window = BTreeSet::new();
    h.set_time(times[0]);
    let mut sampler = match Sampler::new(options.clone()) {
        Ok(s) => s,
        Err(e) => {
            // Only a call the sampler cannot start without may refuse the
            // start, and the error must name it; after the window it starts.
            for case in &phase.cases {
                if feeds(&case.call) != Feeds::Startup || !e.to_string().contains(&case.call) {
                    checker.fail(case, times[0], format!("the sampler did not start: {e}"));
                }
            }
            in_window = logged_calls(&log, log_start);
            h.set_time(times[IN_WINDOW]);
            return match Sampler::new(options) {
                Ok(s) => (Some(s), in_window),
                Err(e) => {
                    for case in &phase.cases {
                        checker.fail(case, times[IN_WINDOW], format!("no start after: {e}"));
                    }
                    (None, in_window)
                }
            };
        }
    };
    let mut down_before = vec![true; gpus];
    // XID series come back on every GPU but one whose XID registration NVML
    // said it does not support.
    let xid_expected: Vec<bool> = (0..gpus)
        .map(|gpu| {
            !phase.cases.iter().any(|c| {
                c.gpu.is_none_or(|g| g == gpu)
                    && c.fault == Fault::NotSupported
                    && matches!(feeds(&c.call), Feeds::Fields(f) if f.contains(&Field::XidErrors))
            })
        })
        .collect();
    let driver_gone = phase.cases[0].fault == Fault::DriverNotLoaded;
    let teardown = phase
        .cases
        .iter()
        .any(|c| TEARDOWN.contains(&c.call.as_str()));
    for (step, &t) in times.iter().enumerate() {
        if step == IN_WINDOW {
            if teardown {
                // Stop inside the window (it must not hang), start afresh.
                drop(sampler);
                down_before = vec![true; gpus];
                sampler = match Sampler::new(options.clone()) {
                    Ok(s) => s,
                    Err(e) => {
                        for case in &phase.cases {
                            checker.fail(case, t, format!("no start after a stop: {e}"));
                        }
                        return (None, logged_calls(&log, log_start));
                    }
                };
            }
            in_window = logged_calls(&log, log_start);
        }
        if step + 1 == STEPS.len() {
            // XID registration is retried by the listener thread on its own
            // schedule: give it a bounded while (sampling at the previous
            // step's time, unchecked) before the last, checked sample.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !sampler
                .sample()
                .gpus
                .iter()
                .zip(&xid_expected)
                .all(|(g, expected)| !expected || g.get(Field::XidErrors).is_some())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        h.set_time(t);
        let snap = sampler.sample();
        assert_eq!(snap.gpus.len(), gpus, "every GPU stays listed");
        for (gpu, sample) in snap.gpus.iter().enumerate() {
            let view = View::of(sample);
            // Re-initialising NVML restarts GPM baselines everywhere.
            let warm = step > 0 && !down_before[gpu] && !(driver_gone && step <= IN_WINDOW);
            let mut on_gpu = phase
                .cases
                .iter()
                .filter(|c| c.gpu.is_none_or(|g| g == gpu))
                .peekable();
            if on_gpu.peek().is_none() {
                // A control GPU: untouched, unless the driver went away
                // (then every GPU is read again from scratch).
                let probe = Case {
                    call: "(control GPU)".into(),
                    fault: phase.cases[0].fault,
                    gpu: Some(gpu),
                };
                checker.truthful(&probe, t, &view);
                if probe.fault != Fault::DriverNotLoaded {
                    let none = Feeds::Fields(BTreeSet::new());
                    checker.complete(&probe, t, &view, &none, warm);
                }
            }
            for case in on_gpu {
                checker.case(case, t, &view, &snap, step, warm);
            }
            down_before[gpu] = !view.up;
        }
    }
    (Some(sampler), in_window)
}

#[test]
fn every_call_survives_every_fault() {
    let started = Instant::now();
    let h = Harness::new();
    // Phase 0 of the clean run finds the calls; the matrix follows.
    let probe = reference(&h, &STEPS.map(|t| t + base_of(0)));
    let calls: Vec<String> = probe
        .calls
        .iter()
        .filter(|c| !PLUMBING.contains(&c.as_str()))
        .cloned()
        .collect();
    // The catalog names the call behind each field; each must be one the
    // sampler really makes, or its errors would be counted under a wrong name.
    for def in CATALOG {
        let call = def.field.nvml_call();
        assert!(
            probe.calls.contains(call),
            "{} is read with {call} per the catalog, but the sampler never calls it \
             (calls made: {:?})",
            def.name,
            probe.calls
        );
    }
    assert!(
        probe.steady.contains("nvmlDeviceGetMemoryInfo_v2"),
        "the call log of a steady-state sample looks wrong: {:?}",
        probe.steady
    );
    let (system, device): (Vec<&String>, Vec<&String>) =
        calls.iter().partition(|c| is_system_call(c));
    let gpus = device.len() + 1;
    let mut phases = Vec::new();
    for fault in FAULTS {
        // Device calls: one GPU per call, GPU 0 the control, one window.
        phases.push(Phase {
            base: base_of(phases.len() + 1),
            cases: device
                .iter()
                .enumerate()
                .map(|(i, call)| Case {
                    call: (*call).clone(),
                    fault,
                    gpu: Some(i + 1),
                })
                .collect(),
            gpus,
        });
        // System calls: every GPU at once, one window per call.
        for call in &system {
            phases.push(Phase {
                base: base_of(phases.len() + 1),
                cases: vec![Case {
                    call: (*call).clone(),
                    fault,
                    gpu: None,
                }],
                gpus: 2,
            });
        }
    }
    let mut checker = Checker {
        reference: &Reference {
            at: BTreeMap::new(),
            calls: BTreeSet::new(),
            steady: BTreeSet::new(),
        },
        failures: Vec::new(),
        failed: BTreeSet::new(),
    };
    let first = run_matrix(&h, &phases, gpus, &mut checker);
    // A case whose call was never made in its window (a call that needs a
    // warm NVML session, in a phase where others keep re-initialising it)
    // proved nothing: run it again alone.
    let base = base_of(phases.len() + 1);
    let rerun: Vec<Phase> = first
        .iter()
        .zip(&phases)
        .flat_map(|(made, phase)| {
            phase
                .cases
                .iter()
                .filter(|c| !made.contains(&c.call))
                .map(|c| (c.call.clone(), c.fault, c.gpu))
                .collect::<Vec<_>>()
        })
        .enumerate()
        .map(|(k, (call, fault, gpu))| Phase {
            base: base + base_of(k),
            cases: vec![Case {
                call,
                fault,
                gpu: gpu.map(|_| 1),
            }],
            gpus: 2,
        })
        .collect();
    let rerun_calls: BTreeSet<(String, Fault)> = rerun
        .iter()
        .map(|p| (p.cases[0].call.clone(), p.cases[0].fault))
        .collect();
    checker.failed.retain(|key| !rerun_calls.contains(key));
    checker.failures.retain(|f| {
        !rerun_calls
            .iter()
            .any(|(c, fault)| f.starts_with(&format!("{c} x {} ", fault.nvml())))
    });
    let second = run_matrix(&h, &rerun, 2, &mut checker);
    for (made, phase) in second.iter().zip(&rerun) {
        let case = &phase.cases[0];
        if !made.contains(&case.call) {
            checker.fail(
                case,
                phase.base,
                "the call was never made: nothing proved".into(),
            );
        }
    }
    let total = phases.iter().map(|p| p.cases.len()).sum::<usize>();
    let survived = total - checker.failed.len();
    let mut summary = format!(
        "NVML fault matrix (core): {survived} of {total} (call x fault) cases survived: {} calls x \
         {} faults, {:.1} s\n",
        calls.len(),
        FAULTS.len(),
        started.elapsed().as_secs_f64()
    );
    summary.push_str(&format!(
        "  (cases whose call was not reached in a shared window, run again alone: {})\n",
        rerun.len()
    ));
    for call in &calls {
        let ok: Vec<&str> = FAULTS
            .iter()
            .filter(|f| !checker.failed.contains(&(call.clone(), **f)))
            .map(|f| f.nvml())
            .collect();
        summary.push_str(&format!("  {call}: {}\n", ok.join(" ")));
    }
    print!("{summary}");
    let _ = std::fs::remove_file(call_log());
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fault-matrix-core.txt");
    std::fs::write(&out, &summary).expect("write summary");
    assert!(
        checker.failures.is_empty(),
        "{} failures:\n{}",
        checker.failures.len(),
        checker.failures.join("\n")
    );
}

/// Runs `phases` on one scenario (the template × `gpus` with every phase's
/// faults), checking each against a clean run at the same times. Returns
/// the calls made inside each phase's window.
fn run_matrix(
    h: &Harness,
    phases: &[Phase],
    gpus: usize,
    checker: &mut Checker<'_>,
) -> Vec<BTreeSet<String>> {
    if phases.is_empty() {
        return Vec::new();
    }
    let times: Vec<f64> = phases.iter().flat_map(Phase::times).collect();
    let reference = reference(h, &times);
    let (faults, latency) = injections(phases);
    let scenario = h.write_scenario("matrix", gpus, faults, latency);
    let mut own = Checker {
        reference: &reference,
        failures: Vec::new(),
        failed: BTreeSet::new(),
    };
    let made = h.with(&scenario, || {
        let mut retiring = Vec::new();
        let mut made = Vec::new();
        for phase in phases {
            let (sampler, calls) = run_phase(h, phase, &mut own);
            made.push(calls);
            if let Some(sampler) = sampler {
                retiring.push(std::thread::spawn(move || drop(sampler)));
            }
        }
        for t in retiring {
            t.join().expect("sampler dropped");
        }
        made
    });
    checker.failures.append(&mut own.failures);
    checker.failed.append(&mut own.failed);
    made
}
