//! dcgm-exporter's options and variables, and what Algalon does with each.
//!
//! [`DCGM_OPTIONS`] is dcgm-exporter 4.x's option list (`pkg/cmd/app.go`:
//! long name, alias, variable) with Algalon's handling of each; a test holds
//! it to the vendored `app.go`. The same table binds the variables to the
//! command line and names them in `--help` ([`crate::args`]), writes the
//! start-up notes for options that have no effect ([`log_start_notes`]),
//! and renders README's "Coming from
//! dcgm-exporter" table ([`markdown_table`]).

use crate::cli::Cli;

/// What Algalon does with one of dcgm-exporter's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// dcgm-exporter's meaning; the text says what it does and any difference.
    Same(&'static str),
    /// Accepted and checked, but it cannot mean anything for Algalon: why.
    /// One start-up line names it when it is set to anything but its default.
    NoEffect(&'static str),
    /// Kubernetes pod mapping: dcgm-exporter's meaning once `--kubernetes`
    /// is on; without it, no effect, as in dcgm-exporter (one start-up line).
    Kubernetes(&'static str),
}

/// One of dcgm-exporter's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DcgmOption {
    /// Its long name (`collectors`).
    pub long: &'static str,
    /// Its alias (`f`, `rbmn`), if it has one.
    pub alias: Option<&'static str>,
    /// The variable dcgm-exporter reads it from.
    pub env: &'static str,
    /// What Algalon does with it.
    pub support: Support,
}

const fn opt(
    long: &'static str,
    alias: Option<&'static str>,
    env: &'static str,
    support: Support,
) -> DcgmOption {
    DcgmOption {
        long,
        alias,
        env,
        support,
    }
}

use Support::{Kubernetes as K8s, NoEffect, Same};

const NO_DUMPS: &str = "debug dumps of dcgm-exporter's DCGM state; Algalon's last sample is \
                        GET /api/v1/gpus, its per-call NVML failures algalon_nvml_errors_total";
const NO_BIND_WATCH: &str = "there are no DCGM bind events: a GPU that falls off the bus is \
                             marked down (algalon_gpu_up 0) while the others keep reporting";
const SOCKET: &str = "the kubelet's pod-resources v1 socket, asked in the background every \
                      sampling interval, never during a scrape";

/// dcgm-exporter 4.x's options, in `app.go`'s order.
pub static DCGM_OPTIONS: &[DcgmOption] = &[
    opt(
        "collectors",
        Some("f"),
        "DCGM_EXPORTER_COLLECTORS",
        Same(
            "the collectors CSV; every DCGM field name loads (current, deprecated and 1.x \
             names), a field Algalon cannot read is skipped with a warning. Default: NVIDIA's \
             default-counters.csv, built in",
        ),
    ),
    opt(
        "address",
        Some("a"),
        "DCGM_EXPORTER_LISTEN",
        Same("listen address, default `:9400`"),
    ),
    opt(
        "collect-interval",
        Some("c"),
        "DCGM_EXPORTER_INTERVAL",
        Same(
            "sampling interval in ms; default 5000, not dcgm-exporter's 30000, so data is 5 s \
             fresh",
        ),
    ),
    opt(
        "kubernetes",
        Some("k"),
        "DCGM_EXPORTER_KUBERNETES",
        K8s(
            "GPU series of a GPU held by a pod get `pod`, `namespace` and `container` labels \
             (`pod_name`, `pod_namespace`, `container_name` with -o), one series per holder; \
             per-process series get them through the process's cgroup pod UID. The kubelet is \
             asked in the background: while it does not answer the series keep coming (pod \
             labels kept 30 s, then dropped), `algalon_kubernetes_up` is 0 and /health says \
             why",
        ),
    ),
    opt(
        "use-old-namespace",
        Some("o"),
        "DCGM_EXPORTER_USE_OLD_NAMESPACE",
        Same(
            "dcgm-exporter 1.x's namespace: the GPU UUID label is `uuid`; series keep the \
             names the CSV gives them, so NVIDIA's 1.x-compatibility-metrics.csv serves the \
             `dcgm_*` names",
        ),
    ),
    opt(
        "cpu-devices",
        Some("p"),
        "DCGM_EXPORTER_CPU_DEVICES_STR",
        NoEffect(
            "Algalon watches GPUs, not Grace CPUs (the value is checked with dcgm-exporter's \
             device syntax)",
        ),
    ),
    opt(
        "configmap-data",
        Some("m"),
        "DCGM_EXPORTER_CONFIGMAP_DATA",
        NoEffect(
            "Algalon does not read the collectors CSV through the Kubernetes API: mount the \
             ConfigMap as a file and pass it with -f (re-read on SIGHUP); NAMESPACE:NAME is \
             checked",
        ),
    ),
    opt(
        "remote-hostengine-info",
        Some("r"),
        "DCGM_REMOTE_HOSTENGINE_INFO",
        NoEffect(
            "there is no DCGM host engine: Algalon reads this host's GPUs through NVML in its \
             own process; run it on the host whose GPUs you want",
        ),
    ),
    opt(
        "kubernetes-enable-pod-labels",
        None,
        "DCGM_EXPORTER_KUBERNETES_ENABLE_POD_LABELS",
        K8s(
            "the pod's labels from the API server (in-cluster service account; needs `get` on \
             pods), names sanitized as dcgm-exporter does; read once per pod, again every 5 \
             minutes",
        ),
    ),
    opt(
        "kubernetes-enable-pod-uid",
        None,
        "DCGM_EXPORTER_KUBERNETES_ENABLE_POD_UID",
        K8s("a `pod_uid` label, the UID from the API server (or `/var/log/pods` when mounted)"),
    ),
    opt(
        "kubernetes-gpu-id-type",
        None,
        "DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE",
        K8s(
            "`uid`: the kubelet names GPUs by UUID; `device-name`: by `nvidiaN` (matched to \
             the GPU's minor number); MIG device ids (`MIG-…`) label their instance's series \
             (-d g+i) either way",
        ),
    ),
    opt(
        "kubernetes-pod-label-allowlist-regex",
        None,
        "DCGM_EXPORTER_KUBERNETES_POD_LABEL_ALLOWLIST_REGEX",
        K8s(
            "which pod labels --kubernetes-enable-pod-labels keeps (matched anywhere in the \
             name, as Go's MatchString); a pattern that does not compile is skipped with a \
             warning, as in dcgm-exporter",
        ),
    ),
    opt(
        "devices",
        Some("d"),
        "DCGM_EXPORTER_DEVICES_STR",
        Same(
            "GPUs to watch: `f`, `g`, `g:0-3`, `g+i`, `i:LIST`, indices, ranges and UUIDs; \
             an instance part (`g+i`, `g:0+i:1,2`) also writes the MIG instances of those \
             GPUs (by GPU instance id) with `GPU_I_PROFILE`/`GPU_I_ID`; `i` alone keeps every \
             whole GPU, with a start-up warning; `f` writes whole GPUs only",
        ),
    ),
    opt(
        "no-hostname",
        Some("n"),
        "DCGM_EXPORTER_NO_HOSTNAME",
        Same("leave the `Hostname` label off"),
    ),
    opt(
        "switch-devices",
        Some("s"),
        "DCGM_EXPORTER_OTHER_DEVICES_STR",
        NoEffect(
            "Algalon watches GPUs; NVSwitch counters come from DCGM and the fabric manager \
             (the value is checked with dcgm-exporter's device syntax)",
        ),
    ),
    opt(
        "fake-gpus",
        None,
        "DCGM_EXPORTER_USE_FAKE_GPUS",
        NoEffect(
            "Algalon's simulated GPUs are its fake NVML: `make fake-nvml`, then \
             `--nvml-lib target/fake-nvml/libnvidia-ml.so.1` (scenarios in testing/scenarios/)",
        ),
    ),
    opt(
        "web-config-file",
        None,
        "DCGM_EXPORTER_WEB_CONFIG_FILE",
        Same("exporter-toolkit web config: TLS and bcrypt basic auth, re-read on SIGHUP"),
    ),
    opt(
        "xid-count-window-size",
        Some("x"),
        "DCGM_EXPORTER_XID_COUNT_WINDOW_SIZE",
        Same(
            "the window of DCGM_EXP_XID_ERRORS_COUNT (XIDs per GPU in the window, `xid` and \
             `window_size_in_ms` labels) when the CSV lists it; default 300000",
        ),
    ),
    opt(
        "replace-blanks-in-model-name",
        Some("rbmn"),
        "DCGM_EXPORTER_REPLACE_BLANKS_IN_MODEL_NAME",
        Same("dashes for the blanks in `modelName` (`NVIDIA-H100-80GB-HBM3`)"),
    ),
    opt(
        "debug",
        None,
        "DCGM_EXPORTER_DEBUG",
        Same("debug log level (`--log-level trace` stays trace)"),
    ),
    opt(
        "clock-events-count-window-size",
        None,
        "DCGM_EXPORTER_CLOCK_EVENTS_COUNT_WINDOW_SIZE",
        Same(
            "the window of DCGM_EXP_CLOCK_EVENTS_COUNT (samples per clock-event reason in the \
             window, `clock_event` and `window_size_in_ms` labels) when the CSV lists it; \
             default 300000",
        ),
    ),
    opt(
        "enable-dcgm-log",
        None,
        "DCGM_EXPORTER_ENABLE_DCGM_LOG",
        NoEffect(
            "there is no DCGM library to log: NVML failures are logged and counted in \
             algalon_nvml_errors_total",
        ),
    ),
    opt(
        "dcgm-log-level",
        None,
        "DCGM_EXPORTER_DCGM_LOG_LEVEL",
        NoEffect("there is no DCGM library to log (the level is checked: NONE … VERB)"),
    ),
    opt(
        "log-format",
        None,
        "DCGM_EXPORTER_LOG_FORMAT",
        Same("`text` or `json`"),
    ),
    opt(
        "pod-resources-kubelet-socket",
        None,
        "DCGM_POD_RESOURCES_KUBELET_SOCKET",
        K8s(SOCKET),
    ),
    opt(
        "hpc-job-mapping-dir",
        None,
        "DCGM_HPC_JOB_MAPPING_DIR",
        Same(
            "a file per GPU index listing its jobs, one per line: each series of the GPU is \
             served once per job with an `hpc_job` label; read at every sample (MIG instance \
             files `GPU.INSTANCE` are skipped)",
        ),
    ),
    opt(
        "nvidia-resource-names",
        None,
        "NVIDIA_RESOURCE_NAMES",
        K8s("resource names counted as GPUs besides `nvidia.com/gpu` and `nvidia.com/mig-*`"),
    ),
    opt(
        "kubernetes-virtual-gpus",
        None,
        "KUBERNETES_VIRTUAL_GPUS",
        K8s(
            "time-slicing and MPS replicas (`GPU-…::N`): a GPU shared by several pods is served \
             once per pod, each with a `vgpu` label (the replica number)",
        ),
    ),
    opt(
        "dump-enabled",
        None,
        "DCGM_EXPORTER_DUMP_ENABLED",
        NoEffect(NO_DUMPS),
    ),
    opt(
        "dump-directory",
        None,
        "DCGM_EXPORTER_DUMP_DIRECTORY",
        NoEffect(NO_DUMPS),
    ),
    opt(
        "dump-retention",
        None,
        "DCGM_EXPORTER_DUMP_RETENTION",
        NoEffect(NO_DUMPS),
    ),
    opt(
        "dump-compression",
        None,
        "DCGM_EXPORTER_DUMP_COMPRESSION",
        NoEffect(NO_DUMPS),
    ),
    opt(
        "kubernetes-enable-dra",
        None,
        "KUBERNETES_ENABLE_DRA",
        NoEffect(
            "GPUs handed out through Dynamic Resource Allocation are not mapped to pods yet: \
             they are served without pod labels",
        ),
    ),
    opt(
        "disable-startup-validate",
        None,
        "DISABLE_STARTUP_VALIDATE",
        NoEffect(
            "dcgm-exporter's checks are DCGM's; Algalon's (NVML loads, the port binds, a first \
             sample) are what it needs to serve",
        ),
    ),
    opt(
        "enable-gpu-bind-unbind-watch",
        None,
        "DCGM_EXPORTER_ENABLE_GPU_BIND_UNBIND_WATCH",
        NoEffect(NO_BIND_WATCH),
    ),
    opt(
        "gpu-bind-unbind-poll-interval",
        None,
        "DCGM_EXPORTER_GPU_BIND_UNBIND_POLL_INTERVAL",
        NoEffect(NO_BIND_WATCH),
    ),
    opt(
        "enable-pprof",
        None,
        "DCGM_EXPORTER_ENABLE_PPROF",
        NoEffect(
            "Go's profiler; Algalon's costs are measured by `make bench` and `make bench-own-work`",
        ),
    ),
    opt(
        "web-systemd-socket",
        None,
        "DCGM_EXPORTER_SYSTEMD_SOCKET",
        Same(
            "systemd socket activation: the listening socket is the one systemd passes \
             (LISTEN_FDS, LISTEN_PID), --address is not bound; dcgm-exporter serves every \
             socket passed, Algalon the first TCP one (a warning names the others)",
        ),
    ),
];

/// Algalon's own variables: (option, variable). Where an option has a
/// dcgm-exporter variable too, this one wins when both are set.
pub static ALGALON_ENV: &[(&str, &str)] = &[
    ("collectors", "ALGALON_COLLECTORS"),
    ("address", "ALGALON_ADDRESS"),
    ("collect-interval", "ALGALON_COLLECT_INTERVAL"),
    ("devices", "ALGALON_DEVICES"),
    ("no-hostname", "ALGALON_NO_HOSTNAME"),
    ("nvml-lib", "ALGALON_NVML_LIB"),
    ("proc-root", "ALGALON_PROC_ROOT"),
    ("processes", "ALGALON_PROCESSES"),
    ("web-config-file", "ALGALON_WEB_CONFIG_FILE"),
    ("log-format", "ALGALON_LOG_FORMAT"),
    ("log-level", "ALGALON_LOG_LEVEL"),
    ("health-stale-after", "ALGALON_HEALTH_STALE_AFTER"),
    ("max-connections", "ALGALON_MAX_CONNECTIONS"),
    ("hostname-label", "ALGALON_HOSTNAME_LABEL"),
    ("kubernetes-pod-logs-dir", "ALGALON_KUBERNETES_POD_LOGS_DIR"),
    (
        "kubernetes-service-account-dir",
        "ALGALON_KUBERNETES_SERVICE_ACCOUNT_DIR",
    ),
];

/// The variables option `long` reads, in precedence order (`ALGALON_*` first).
pub fn variables(long: &str) -> impl Iterator<Item = &'static str> + '_ {
    ALGALON_ENV
        .iter()
        .filter(move |(l, _)| *l == long)
        .map(|(_, v)| *v)
        .chain(
            DCGM_OPTIONS
                .iter()
                .filter(move |o| o.long == long)
                .map(|o| o.env),
        )
}

/// Every variable the exporter reads for its options.
pub fn all_variables() -> Vec<&'static str> {
    ALGALON_ENV
        .iter()
        .map(|(_, v)| *v)
        .chain(DCGM_OPTIONS.iter().map(|o| o.env))
        .collect()
}

/// The options that read variables, each once.
pub(crate) fn options_with_variables() -> Vec<&'static str> {
    let mut longs: Vec<&'static str> = ALGALON_ENV.iter().map(|(l, _)| *l).collect();
    for o in DCGM_OPTIONS {
        if !longs.contains(&o.long) {
            longs.push(o.long);
        }
    }
    longs
}

/// The dcgm-exporter option `long`, if it is one.
pub fn dcgm_option(long: &str) -> Option<&'static DcgmOption> {
    DCGM_OPTIONS.iter().find(|o| o.long == long)
}

/// Where an option's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The command line.
    CommandLine,
    /// This variable.
    Env(&'static str),
}

/// A dcgm-exporter option that was set, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// Its long name.
    pub long: &'static str,
    /// Where its value came from.
    pub origin: Origin,
    /// Whether the value differs from the default.
    pub changes_default: bool,
    /// A set variable that lost to `origin` (a dcgm-exporter variable under
    /// an `ALGALON_*` one, or either under the command line).
    pub shadowed: Option<&'static str>,
}

/// How an option is written in a log line: `-r/--remote-hostengine-info`
/// (or `DCGM_REMOTE_HOSTENGINE_INFO` when it came from there).
fn display(o: &DcgmOption, origin: Origin) -> String {
    match (origin, o.alias) {
        (Origin::Env(var), _) => format!("{var} (--{})", o.long),
        (Origin::CommandLine, Some(a)) if a.len() == 1 => format!("-{a}/--{}", o.long),
        (Origin::CommandLine, _) => format!("--{}", o.long),
    }
}

/// One start-up line per dcgm-exporter option that is set but has no
/// effect, one for the Kubernetes options, one
/// naming the dcgm-exporter variables in use, and one per variable that
/// another source overrides.
pub fn log_start_notes(cli: &Cli) {
    for line in start_notes(cli) {
        match line {
            Note::Info(text) => tracing::info!("{text}"),
            Note::Warn(text) => tracing::warn!("{text}"),
        }
    }
}

/// A start-up note and its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Worth knowing.
    Info(String),
    /// Behaviour differs from what the option asks for.
    Warn(String),
}

/// The notes [`log_start_notes`] writes.
pub fn start_notes(cli: &Cli) -> Vec<Note> {
    let mut notes = Vec::new();
    let from_dcgm_env: Vec<String> = cli
        .given
        .iter()
        .filter_map(|g| match g.origin {
            Origin::Env(var) if !var.starts_with("ALGALON_") => {
                Some(format!("{var} (--{})", g.long))
            }
            _ => None,
        })
        .collect();
    if !from_dcgm_env.is_empty() {
        notes.push(Note::Info(format!(
            "dcgm-exporter variables in use: {}",
            from_dcgm_env.join(", ")
        )));
    }
    for g in &cli.given {
        if let Some(lost) = g.shadowed {
            let winner = match g.origin {
                Origin::Env(var) => var.to_owned(),
                Origin::CommandLine => format!("--{} on the command line", g.long),
            };
            notes.push(Note::Info(format!("{winner} wins over {lost}")));
        }
    }
    let mut kubernetes_options = Vec::new();
    for g in cli.given.iter().filter(|g| g.changes_default) {
        let Some(o) = dcgm_option(g.long) else {
            continue;
        };
        match o.support {
            Same(_) => {}
            NoEffect(why) => notes.push(Note::Warn(format!(
                "{} has no effect in Algalon: {why}",
                display(o, g.origin)
            ))),
            K8s(_) if o.long == "kubernetes" => {}
            K8s(_) => kubernetes_options.push(display(o, g.origin)),
        }
    }
    if !cli.kubernetes.enabled && !kubernetes_options.is_empty() {
        notes.push(Note::Info(format!(
            "without --kubernetes these have no effect, as in dcgm-exporter: {}",
            kubernetes_options.join(", ")
        )));
    }
    for pattern in &cli.kubernetes.pod_label_allowlist_regex {
        if let Err(e) = regex::Regex::new(pattern) {
            let e = e.to_string().replace('\n', " ");
            notes.push(Note::Warn(format!(
                "--kubernetes-pod-label-allowlist-regex: pattern {pattern:?} does not compile and \
                 is skipped, as dcgm-exporter skips it: {}",
                e.split_whitespace().collect::<Vec<_>>().join(" ")
            )));
        }
    }
    if cli.device_instances_only {
        notes.push(Note::Warn(
            "-d/--devices names MIG instances alone (`i`, `i:LIST`): their series are written, \
             and so are every whole GPU's, as for `g+i`"
                .to_owned(),
        ));
    }
    let poll = &cli.no_effect.gpu_bind_unbind_poll_interval;
    if !poll.is_empty() && go_duration(poll).is_none() {
        notes.push(Note::Warn(format!(
            "--gpu-bind-unbind-poll-interval {poll:?} is not a Go duration (e.g. 1s, 500ms); \
             dcgm-exporter would use 1s"
        )));
    }
    notes
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers, each with a
/// unit (ns, us, µs, ms, s, m, h), optionally signed; `0` alone is allowed.
pub fn go_duration(text: &str) -> Option<std::time::Duration> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned == "0" {
        return Some(std::time::Duration::ZERO);
    }
    if unsigned.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = unsigned;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() || number == "." {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = next;
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

/// README's "Coming from dcgm-exporter" table: every option and variable of
/// dcgm-exporter, and what Algalon does with it.
pub fn markdown_table() -> String {
    let mut out = String::from("| dcgm-exporter option | variable | in Algalon |\n|---|---|---|\n");
    for o in DCGM_OPTIONS {
        let names = match o.alias {
            Some(a) if a.len() == 1 => format!("`-{a}, --{}`", o.long),
            Some(a) => format!("`--{}, -{a}`", o.long),
            None => format!("`--{}`", o.long),
        };
        let mut vars = format!("`{}`", o.env);
        for own in ALGALON_ENV.iter().filter(|(l, _)| *l == o.long) {
            vars.push_str(&format!(" (`{}` wins)", own.1));
        }
        let what = match o.support {
            Same(text) => format!("same: {text}"),
            NoEffect(text) => format!("accepted, no effect (logged): {text}"),
            K8s(text) => format!("same, with --kubernetes: {text}"),
        };
        out.push_str(&format!(
            "| {names} | {vars} | {} |\n",
            what.replace('|', "\\|")
        ));
    }
    out.push_str(
        "| `-h, --help` | | same |\n\
         | `-v, --version` | | same (also `-V`): version, git commit and the NVML it loads |\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        use std::time::Duration;
        assert_eq!(go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "1", "s", "1x", "1s2", "-"] {
            assert_eq!(go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn variables_have_the_names_scripts_filter_on() {
        // scripts/soak.py and benches/compare/compare.py drop these from the
        // exporter's environment so the caller's cannot change a run.
        let unprefixed = [
            "NVIDIA_RESOURCE_NAMES",
            "KUBERNETES_VIRTUAL_GPUS",
            "KUBERNETES_ENABLE_DRA",
            "DISABLE_STARTUP_VALIDATE",
        ];
        for var in all_variables() {
            assert!(
                var.starts_with("ALGALON_")
                    || var.starts_with("DCGM_")
                    || unprefixed.contains(&var),
                "{var}: add it to the scripts' filters"
            );
        }
    }

    #[test]
    fn every_option_has_one_row_and_every_variable_one_option() {
        let mut longs = std::collections::HashSet::new();
        let mut vars = std::collections::HashSet::new();
        for o in DCGM_OPTIONS {
            assert!(longs.insert(o.long), "{} twice", o.long);
            assert!(vars.insert(o.env), "{} twice", o.env);
        }
        for (long, var) in ALGALON_ENV {
            assert!(var.starts_with("ALGALON_"), "{var}");
            assert!(vars.insert(var), "{var} twice");
            assert!(
                crate::cli::command()
                    .get_arguments()
                    .any(|a| a.get_long() == Some(long)),
                "{long} is not an option"
            );
        }
    }
}
