//! Process-global state: the init refcount, the loaded scenario and its
//! clock, device handles and call counters.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nvml_wrapper_sys::bindings::{
    nvmlComputeInstance_t, nvmlDevice_st, nvmlDevice_t, nvmlGpuInstance_t,
};
use parking_lot::{Mutex, RwLock};

use crate::scenario::{Device, Scenario};

/// Env var naming the scenario JSON to load at the 0→1 init.
pub const SCENARIO_ENV: &str = "ALGALON_FAKE_NVML_SCENARIO";
/// Env var freezing scenario time at this many seconds.
pub const FROZEN_TIME_ENV: &str = "ALGALON_FAKE_NVML_FROZEN_TIME";
/// Env var adding this many milliseconds to every device call.
pub const LATENCY_ENV: &str = "ALGALON_FAKE_NVML_LATENCY_MS";
/// Env var naming a file that holds scenario time in seconds, re-read at
/// every call: tests step time by rewriting it, and the time survives
/// shutdown and re-init.
pub const CLOCK_FILE_ENV: &str = "ALGALON_FAKE_NVML_CLOCK_FILE";

/// NVML return codes used throughout (`nvmlReturn_t` values).
pub(crate) mod rc {
    use nvml_wrapper_sys::bindings as b;
    pub const SUCCESS: u32 = b::nvmlReturn_enum_NVML_SUCCESS;
    pub const UNINITIALIZED: u32 = b::nvmlReturn_enum_NVML_ERROR_UNINITIALIZED;
    pub const INVALID_ARGUMENT: u32 = b::nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT;
    pub const NOT_SUPPORTED: u32 = b::nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED;
    pub const NOT_FOUND: u32 = b::nvmlReturn_enum_NVML_ERROR_NOT_FOUND;
    pub const INSUFFICIENT_SIZE: u32 = b::nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE;
    pub const DRIVER_NOT_LOADED: u32 = b::nvmlReturn_enum_NVML_ERROR_DRIVER_NOT_LOADED;
    pub const TIMEOUT: u32 = b::nvmlReturn_enum_NVML_ERROR_TIMEOUT;
    pub const GPU_IS_LOST: u32 = b::nvmlReturn_enum_NVML_ERROR_GPU_IS_LOST;
    pub const ARGUMENT_VERSION_MISMATCH: u32 =
        b::nvmlReturn_enum_NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    pub const UNKNOWN: u32 = b::nvmlReturn_enum_NVML_ERROR_UNKNOWN;
}

/// Scenario time: real time since init, frozen, or read from a file.
#[derive(Debug)]
struct Clock {
    start: Instant,
    frozen: Option<f64>,
    /// `ALGALON_FAKE_NVML_CLOCK_FILE`, and the last time read from it (kept
    /// when the file is briefly missing or half-written).
    file: Option<(std::path::PathBuf, f64)>,
}

impl Clock {
    fn now(&mut self) -> f64 {
        if let Some(t) = self.frozen {
            return t;
        }
        if let Some((path, last)) = &mut self.file {
            if let Some(t) = std::fs::read_to_string(&*path)
                .ok()
                .and_then(|text| text.trim().parse::<f64>().ok())
                .filter(|t| t.is_finite() && *t >= 0.0)
            {
                *last = t;
            }
            return *last;
        }
        self.start.elapsed().as_secs_f64()
    }
}

/// Everything that lives from a 0→1 init to the matching 1→0 shutdown.
#[derive(Debug)]
pub(crate) struct Session {
    pub scenario: Scenario,
    clock: Mutex<Clock>,
    /// Unix time of init, µs: NVML timestamps are `epoch_us + t`.
    epoch_us: u64,
    /// `ALGALON_FAKE_NVML_LATENCY_MS`.
    pub env_latency: Duration,
}

impl Session {
    fn new(
        scenario: Scenario,
        frozen: Option<f64>,
        clock_file: Option<std::path::PathBuf>,
        env_latency: Duration,
    ) -> Self {
        let epoch_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Session {
            scenario,
            clock: Mutex::new(Clock {
                start: Instant::now(),
                frozen,
                file: clock_file.map(|p| (p, 0.0)),
            }),
            epoch_us,
            env_latency,
        }
    }

    /// Current scenario time in seconds.
    pub fn t(&self) -> f64 {
        self.clock.lock().now()
    }

    /// The time the 0→1 init checks its faults at: 0, or the clock file's.
    fn init_time(&self) -> f64 {
        let mut clock = self.clock.lock();
        if clock.file.is_some() {
            clock.now()
        } else {
            0.0
        }
    }

    /// Whether scenario time stands still unless someone moves it (frozen,
    /// or read from a clock file): waiters must poll rather than sleep until
    /// the next scheduled event.
    pub fn frozen(&self) -> bool {
        let clock = self.clock.lock();
        clock.frozen.is_some() || clock.file.is_some()
    }

    /// Freezes scenario time at `t`.
    pub fn freeze_at(&self, t: f64) {
        self.clock.lock().frozen = Some(t);
    }

    /// Lets a frozen clock run again from where it stands.
    pub fn resume(&self) {
        let mut clock = self.clock.lock();
        if let Some(t) = clock.frozen.take() {
            let back = Duration::from_secs_f64(t.max(0.0));
            clock.start = Instant::now()
                .checked_sub(back)
                .unwrap_or_else(Instant::now);
        }
    }

    /// NVML timestamp (µs since the Unix epoch) of scenario time `t`.
    pub fn timestamp_us(&self, t: f64) -> u64 {
        self.epoch_us
            .saturating_add((t.max(0.0) * 1e6).round() as u64)
    }

    /// The GPU at `index`.
    pub fn device(&self, index: u32) -> Option<&Device> {
        self.scenario.devices().get(index as usize)
    }
}

#[derive(Debug)]
struct Global {
    refcount: u32,
    session: Option<Arc<Session>>,
}

static GLOBAL: RwLock<Global> = RwLock::new(Global {
    refcount: 0,
    session: None,
});

/// The live session, or `NVML_ERROR_UNINITIALIZED`.
pub(crate) fn session() -> Result<Arc<Session>, u32> {
    GLOBAL.read().session.clone().ok_or(rc::UNINITIALIZED)
}

/// Env var naming a file every exported call appends its name to (one per
/// line), read once per process: tests list the calls a program makes.
pub const CALL_LOG_ENV: &str = "ALGALON_FAKE_NVML_CALL_LOG";

static CALL_LOG: LazyLock<Option<Mutex<std::fs::File>>> = LazyLock::new(|| {
    let path = std::env::var_os(CALL_LOG_ENV).filter(|p| !p.is_empty())?;
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(file) => Some(Mutex::new(file)),
        Err(e) => {
            eprintln!(
                "fake-nvml: {CALL_LOG_ENV}={}: {e}; calls are not logged",
                path.to_string_lossy()
            );
            None
        }
    }
});

/// Where the scenario comes from; tests inside the crate bypass the
/// environment (which they could only change with `unsafe` `set_var`).
#[cfg(test)]
pub(crate) static TEST_SOURCE: Mutex<Option<(String, Option<f64>)>> = Mutex::new(None);

fn env_f64(name: &str) -> Result<Option<f64>, (u32, String)> {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err((
                rc::UNKNOWN,
                format!("{name}={v:?} is not a number of seconds/milliseconds >= 0"),
            )),
        },
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => Err((rc::UNKNOWN, format!("{name}: {e}"))),
    }
}

fn load_session() -> Result<Session, (u32, String)> {
    let latency = env_f64(LATENCY_ENV)?.unwrap_or(0.0);
    let latency = Duration::from_secs_f64(latency / 1000.0);

    #[cfg(test)]
    if let Some((json, frozen)) = TEST_SOURCE.lock().clone() {
        let scenario = Scenario::from_json_str(&json).map_err(|e| (rc::UNKNOWN, e.to_string()))?;
        return Ok(Session::new(scenario, frozen, None, latency));
    }

    let path = match std::env::var_os(SCENARIO_ENV) {
        Some(p) if !p.is_empty() => p,
        _ => {
            return Err((
                rc::DRIVER_NOT_LOADED,
                format!(
                    "{SCENARIO_ENV} is not set; point it at a scenario JSON (see testing/README.md)"
                ),
            ));
        }
    };
    let frozen = env_f64(FROZEN_TIME_ENV)?;
    let clock_file = std::env::var_os(CLOCK_FILE_ENV)
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    let scenario = Scenario::load(&path).map_err(|e| (rc::UNKNOWN, e.to_string()))?;
    Ok(Session::new(scenario, frozen, clock_file, latency))
}

/// `nvmlInit*`: the 0→1 transition loads the scenario and starts the clock;
/// a nested init waits for the latency entries naming its call (a driver
/// whose re-initialisation hangs), outside the lock, then checks the
/// scenario's init faults at the current time (a driver unloaded mid-run
/// refuses new sessions too).
pub(crate) fn init(call: &'static str) -> u32 {
    let running = GLOBAL.read().session.clone();
    if let Some(session) = running {
        std::thread::sleep(session.scenario.latency(call, None, session.t()));
    }
    let mut global = GLOBAL.write();
    if let Some(session) = global.session.clone() {
        if let Some(code) = session.scenario.fault(call, None, session.t()) {
            return code;
        }
        global.refcount = global.refcount.saturating_add(1);
        return rc::SUCCESS;
    }
    let session = match load_session() {
        Ok(s) => s,
        Err((code, message)) => {
            eprintln!("fake-nvml: {message}");
            return code;
        }
    };
    if let Some(code) = session.scenario.fault(call, None, session.init_time()) {
        return code;
    }
    global.session = Some(Arc::new(session));
    global.refcount = 1;
    rc::SUCCESS
}

/// `nvmlShutdown`: the 1→0 transition drops the scenario.
pub(crate) fn shutdown() -> u32 {
    let mut global = GLOBAL.write();
    match global.refcount {
        0 => rc::UNINITIALIZED,
        1 => {
            global.refcount = 0;
            global.session = None;
            rc::SUCCESS
        }
        _ => {
            global.refcount -= 1;
            rc::SUCCESS
        }
    }
}

/// What a device handle stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DeviceId {
    /// NVML index of the (parent) GPU.
    pub gpu: u32,
    /// For a MIG device handle, the device's identity on its GPU
    /// ([`crate::scenario::MigDevice::slot`]): the handle answers while that
    /// device exists and is stale once it is destroyed.
    pub mig: Option<u32>,
}

/// What a GPU-instance or compute-instance handle stands for: MIG device
/// `slot` (one GPU instance with one compute instance) of GPU `gpu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct InstanceId {
    /// NVML index of the parent GPU.
    pub gpu: u32,
    /// The MIG device's slot.
    pub slot: u32,
}

/// Opaque handles of one kind: each id gets the address of a leaked box
/// holding it, so a handle stays valid (and unique) for the life of the
/// process, across shutdown and re-init. Addresses are compared, never
/// dereferenced.
#[derive(Debug)]
struct Registry<K> {
    by_id: HashMap<K, usize>,
    by_addr: HashMap<usize, K>,
}

impl<K: Copy + Eq + std::hash::Hash + 'static> Registry<K> {
    fn new() -> Self {
        Registry {
            by_id: HashMap::new(),
            by_addr: HashMap::new(),
        }
    }

    fn handle(&mut self, id: K) -> usize {
        let addr = *self.by_id.entry(id).or_insert_with(|| {
            let slot: &'static K = Box::leak(Box::new(id));
            std::ptr::from_ref(slot) as usize
        });
        self.by_addr.insert(addr, id);
        addr
    }

    fn lookup(&self, addr: usize) -> Option<K> {
        self.by_addr.get(&addr).copied()
    }
}

type Handles<K> = LazyLock<Mutex<Registry<K>>>;

static DEVICES: Handles<DeviceId> = LazyLock::new(|| Mutex::new(Registry::new()));
static GPU_INSTANCES: Handles<InstanceId> = LazyLock::new(|| Mutex::new(Registry::new()));
static COMPUTE_INSTANCES: Handles<InstanceId> = LazyLock::new(|| Mutex::new(Registry::new()));

/// The handle for `id` (the same pointer every time).
pub(crate) fn handle(id: DeviceId) -> nvmlDevice_t {
    DEVICES.lock().handle(id) as nvmlDevice_t
}

/// What a handle stands for; `None` for a pointer this library never issued.
pub(crate) fn lookup(device: *const nvmlDevice_st) -> Option<DeviceId> {
    DEVICES.lock().lookup(device as usize)
}

/// The GPU-instance handle for `id` (the same pointer every time).
pub(crate) fn gpu_instance(id: InstanceId) -> nvmlGpuInstance_t {
    GPU_INSTANCES.lock().handle(id) as nvmlGpuInstance_t
}

/// What a GPU-instance handle stands for.
pub(crate) fn lookup_gpu_instance(handle: nvmlGpuInstance_t) -> Option<InstanceId> {
    GPU_INSTANCES.lock().lookup(handle as usize)
}

/// The compute-instance handle for `id` (the same pointer every time).
pub(crate) fn compute_instance(id: InstanceId) -> nvmlComputeInstance_t {
    COMPUTE_INSTANCES.lock().handle(id) as nvmlComputeInstance_t
}

/// What a compute-instance handle stands for.
pub(crate) fn lookup_compute_instance(handle: nvmlComputeInstance_t) -> Option<InstanceId> {
    COMPUTE_INSTANCES.lock().lookup(handle as usize)
}

static CALLS: LazyLock<Mutex<HashMap<&'static str, u64>>> = LazyLock::new(Mutex::default);

pub(crate) fn count_call(name: &'static str) {
    *CALLS.lock().entry(name).or_insert(0) += 1;
    if let Some(log) = CALL_LOG.as_ref() {
        use std::io::Write as _;
        let _ = writeln!(log.lock(), "{name}");
    }
}

/// How many times this process called the exported function `name` (through
/// this copy of the library), successful or not.
pub fn call_count(name: &str) -> u64 {
    CALLS.lock().get(name).copied().unwrap_or(0)
}

/// Resets every call counter to zero.
pub fn reset_call_counts() {
    CALLS.lock().clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_file_sets_scenario_time_at_every_read() {
        let dir = std::env::temp_dir().join(format!("fake-nvml-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("clock");
        let mut clock = Clock {
            start: Instant::now(),
            frozen: None,
            file: Some((path.clone(), 0.0)),
        };
        assert_eq!(clock.now(), 0.0, "no file yet: 0");
        std::fs::write(&path, "12.5\n").expect("write");
        assert_eq!(clock.now(), 12.5);
        std::fs::write(&path, "garbage").expect("write");
        assert_eq!(clock.now(), 12.5, "a half-written file keeps the last time");
        std::fs::write(&path, "3").expect("write");
        assert_eq!(clock.now(), 3.0);
        clock.frozen = Some(7.0);
        assert_eq!(clock.now(), 7.0, "set_time freezes over the file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
