//! Command line: every dcgm-exporter 4.x option under its names (long, short
//! and alias), Algalon's own options, and the environment.
//!
//! dcgm-exporter's options are read from its variables (`DCGM_EXPORTER_*`
//! and the few it reads without that prefix); Algalon's own `ALGALON_*`
//! variables win over them when both are set; the command line wins over
//! both; an empty variable counts as unset. [`crate::compat`] holds the table
//! of dcgm-exporter's options and variables and what Algalon does with each.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory as _, FromArgMatches as _, Parser, ValueEnum};

use crate::args;
use crate::compat::Given;

/// Algalon's GPU exporter: serves every NVIDIA GPU's NVML readings as
/// Prometheus metrics under dcgm-exporter's names and labels.
///
/// NVML is read on a background thread every --collect-interval; a scrape
/// returns the last pre-encoded body, so it never waits on the driver.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "algalon-exporter",
    disable_version_flag = true,
    after_help = "Endpoints: /metrics (Prometheus text, or OpenMetrics when the Accept header asks; \
                  gzip when accepted), /health (200 while samples are fresh, 503 with the reason \
                  otherwise), /api/v1/gpus (the last sample as JSON), /api/v1/fields (what the \
                  collectors CSV exports and what it cannot, with why), / (a live page of every GPU).\n\
                  Signals: SIGHUP re-reads --collectors and --web-config-file once each file has \
                  stopped changing for 0.1 s (a bad, unreadable or half-written file is logged with \
                  file:line and the last good configuration keeps serving; a burst of SIGHUPs is \
                  one reload); SIGTERM / SIGINT shut down gracefully.\n\
                  Environment: each option reads the variables named in its help; ALGALON_* wins \
                  over dcgm-exporter's, the command line wins over both, an empty variable counts \
                  as unset. Options are also accepted Go-style, with one dash (-collectors), and \
                  booleans as --flag=false."
)]
pub struct Cli {
    /// dcgm-exporter collectors CSV naming the fields to export (`DCGM field, type,
    /// help` rows; any DCGM name of a field, including deprecated and dcgm-exporter 1.x
    /// names). Default: the built-in copy of dcgm-exporter's default-counters.csv.
    #[arg(short = 'f', long = "collectors", value_name = "CSV")]
    pub collectors: Option<PathBuf>,

    /// Address to listen on: `:PORT` (every interface), `HOST:PORT`, `IP:PORT`
    /// or `[IPv6]:PORT`. Port 0 picks a free port (logged at start).
    #[arg(
        short = 'a',
        long = "address",
        default_value = ":9400",
        value_name = "ADDR"
    )]
    pub address: String,

    /// Milliseconds between two samples of every GPU. Algalon's default is 5000
    /// (fresh data every 5 s); dcgm-exporter's is 30000.
    #[arg(
        short = 'c',
        long = "collect-interval",
        default_value_t = 5000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(10..=3_600_000)
    )]
    pub collect_interval_ms: u64,

    /// GPUs to watch: `f` or `all` (every GPU, the default), or a comma-separated
    /// list of NVML indices, index ranges and UUIDs (a unique UUID prefix is
    /// enough, any case), optionally after dcgm-exporter's `g:` prefix: `0,1`,
    /// `g:0-3`, `g+i`, `GPU-5e2d…`.
    #[arg(
        short = 'd',
        long = "devices",
        default_value = "f",
        value_name = "DEVICES",
        value_parser = parse_devices
    )]
    pub devices: Devices,

    /// Leave the `Hostname` label off every series.
    #[arg(short = 'n', long = "no-hostname")]
    pub no_hostname: bool,

    /// NVML library to load instead of the system's libnvidia-ml.so.1.
    #[arg(long = "nvml-lib", value_name = "PATH")]
    pub nvml_lib: Option<PathBuf>,

    /// Where the host's /proc is mounted, for process names and Slurm / pod
    /// identities (`/host/proc` in a container with the host's /proc mounted).
    #[arg(long = "proc-root", default_value = "/proc", value_name = "DIR")]
    pub proc_root: PathBuf,

    /// Export per-process metrics (GPU memory, SM and memory utilization per
    /// PID, with the process name and its Slurm job or Kubernetes pod when
    /// known). Needs the host's PID namespace in a container.
    #[arg(long = "processes")]
    pub processes: bool,

    /// Prometheus exporter-toolkit web config (YAML): `tls_server_config`
    /// (cert_file, key_file, client_auth_type, client_ca_file, min_version,
    /// max_version) and `basic_auth_users` (user: bcrypt hash). Relative paths
    /// are read from the file's directory. /health stays open without a password
    /// so container health checks work.
    #[arg(long = "web-config-file", value_name = "YAML")]
    pub web_config_file: Option<PathBuf>,

    /// Log format.
    #[arg(long = "log-format", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Most verbose log level written.
    #[arg(long = "log-level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Log at debug level (dcgm-exporter's switch; --log-level trace stays trace).
    #[arg(long = "debug")]
    pub debug: bool,

    /// /health answers 503 when the last sample is older than this many
    /// milliseconds. Default: the larger of 3 intervals and one interval + 10 s.
    #[arg(long = "health-stale-after", value_name = "MS")]
    pub health_stale_after_ms: Option<u64>,

    /// Most client connections open at once. When all are taken, a new
    /// connection closes the one idle the longest (still sending its request
    /// head, in its TLS handshake, or parked between keep-alive requests) and
    /// takes its place, so slow or idle clients cannot lock a scraper out;
    /// only when every connection is busy with a request does a new one get
    /// an immediate 503 (plain HTTP) or get closed (TLS). A request head must
    /// arrive within 10 s, however slowly its bytes trickle in.
    #[arg(
        long = "max-connections",
        default_value_t = 256,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=65_536)
    )]
    pub max_connections: u32,

    /// dcgm-exporter 1.x's namespace: the GPU UUID label is `uuid`, not `UUID`
    /// (series keep the names the collectors CSV gives them, so NVIDIA's
    /// 1.x-compatibility-metrics.csv serves the `dcgm_*` names).
    #[arg(short = 'o', long = "use-old-namespace")]
    pub use_old_namespace: bool,

    /// Window, in milliseconds, of the DCGM_EXP_XID_ERRORS_COUNT series (XIDs per
    /// GPU in the window, `xid` label) when the collectors CSV lists it.
    #[arg(
        short = 'x',
        long = "xid-count-window-size",
        default_value_t = 300_000,
        value_name = "MS"
    )]
    pub xid_count_window_ms: u64,

    /// Window, in milliseconds, of the DCGM_EXP_CLOCK_EVENTS_COUNT series (samples
    /// per clock-event reason in the window, `clock_event` label) when the
    /// collectors CSV lists it.
    #[arg(
        long = "clock-events-count-window-size",
        default_value_t = 300_000,
        value_name = "MS"
    )]
    pub clock_events_count_window_ms: u64,

    /// Replace the blanks in the `modelName` label with dashes
    /// (`NVIDIA-H100-80GB-HBM3`).
    #[arg(long = "replace-blanks-in-model-name", alias = "rbmn")]
    pub replace_blanks_in_model_name: bool,

    /// Take the listening socket from systemd socket activation (LISTEN_FDS,
    /// LISTEN_PID) instead of binding --address.
    #[arg(long = "web-systemd-socket")]
    pub web_systemd_socket: bool,

    /// dcgm-exporter's HPC job mapping directory: a file per GPU index listing the
    /// jobs on it, one per line; each series of such a GPU is served once per job
    /// with an `hpc_job` label. Read at every sample.
    #[arg(long = "hpc-job-mapping-dir", value_name = "DIR")]
    pub hpc_job_mapping_dir: Option<PathBuf>,

    /// The name of the host label on every GPU series: `Hostname` (dcgm-exporter's
    /// releases up to 4.8.2) or `hostname` (its main branch since). Its value is
    /// NODE_NAME when set (as in dcgm-exporter), else the host's name.
    #[arg(long = "hostname-label", value_enum, default_value_t = HostnameLabel::Hostname)]
    pub hostname_label: HostnameLabel,

    /// Do not serve: GET this URL (http:// or https://, certificate not
    /// verified) and exit 0 when it answers 200, 1 otherwise. For container
    /// HEALTHCHECKs in images without curl. `auto`: the /health of an exporter
    /// with this --address and --web-config-file, on loopback.
    #[arg(long = "healthcheck", value_name = "URL")]
    pub healthcheck: Option<String>,

    /// Do not serve: check the collectors CSV (-f) and the web config
    /// (--web-config-file) offline, print what would be exported (each
    /// metric's name, type and help) and exit 0, or print each error with
    /// its file and line and exit 1. NVML is not loaded.
    #[arg(long = "check-config")]
    pub check_config: bool,

    /// Print the version, git commit and NVML version, then exit.
    #[arg(short = 'V', short_alias = 'v', long = "version", action = ArgAction::SetTrue)]
    pub version: bool,

    /// dcgm-exporter's Kubernetes options.
    #[command(flatten, next_help_heading = "Kubernetes (dcgm-exporter's options)")]
    pub kubernetes: Kubernetes,

    /// dcgm-exporter's options that mean nothing for Algalon (hidden from --help).
    #[command(flatten)]
    pub no_effect: NoEffect,

    /// Which dcgm-exporter options were set, and where (for start-up notes).
    #[arg(skip)]
    pub given: Vec<Given>,

    /// The NODE_NAME variable (Kubernetes' downward API), when set and not
    /// empty: dcgm-exporter's host label value.
    #[arg(skip)]
    pub node_name: Option<String>,

    /// The MIG instances -d names (`g+i`, `i:LIST`, `g:0+i:1`): read on
    /// every GPU in MIG mode and written with `GPU_I_PROFILE`/`GPU_I_ID`.
    /// `f`, `all` and no -d read none (whole-GPU series only).
    #[arg(skip)]
    pub device_instances: algalon_core::devices::InstanceSet,
    /// Whether -d names instances alone (`i`, `i:LIST`): whole GPUs are
    /// still watched and written, with a warning.
    #[arg(skip)]
    pub device_instances_only: bool,
}

/// dcgm-exporter's Kubernetes pod mapping options (see `crate::kubernetes`).
#[derive(Debug, Clone, Args)]
pub struct Kubernetes {
    /// Map GPUs to the pods that hold them (pod, namespace and container labels),
    /// from the kubelet's pod-resources API, asked in the background.
    #[arg(short = 'k', long = "kubernetes")]
    pub enabled: bool,

    /// Add the pod's Kubernetes labels (with --kubernetes).
    #[arg(long = "kubernetes-enable-pod-labels")]
    pub enable_pod_labels: bool,

    /// Add the pod's UID (with --kubernetes).
    #[arg(long = "kubernetes-enable-pod-uid")]
    pub enable_pod_uid: bool,

    /// How the kubelet names a GPU in pod resources: `uid` (GPU UUID) or
    /// `device-name` (nvidiaN).
    #[arg(long = "kubernetes-gpu-id-type", value_enum, default_value_t = GpuIdType::Uid)]
    pub gpu_id_type: GpuIdType,

    /// Regular expressions (comma-separated) choosing which pod labels to add;
    /// empty means all. A pattern that does not compile is skipped with a warning,
    /// as in dcgm-exporter.
    #[arg(
        long = "kubernetes-pod-label-allowlist-regex",
        value_delimiter = ',',
        value_name = "REGEX,…"
    )]
    pub pod_label_allowlist_regex: Vec<String>,

    /// The kubelet's pod-resources socket.
    #[arg(
        long = "pod-resources-kubelet-socket",
        default_value = "/var/lib/kubelet/pod-resources/kubelet.sock",
        value_name = "PATH"
    )]
    pub pod_resources_kubelet_socket: PathBuf,

    /// Extra resource names that are NVIDIA GPUs (comma-separated), e.g.
    /// nvidia.com/a100.
    #[arg(
        long = "nvidia-resource-names",
        value_delimiter = ',',
        value_name = "NAME,…"
    )]
    pub nvidia_resource_names: Vec<String>,

    /// Map the virtual GPUs of GPU sharing (time-slicing, MPS) to their pods.
    #[arg(long = "kubernetes-virtual-gpus")]
    pub virtual_gpus: bool,

    /// Where the kubelet keeps pod logs (`NAMESPACE_NAME_UID` directories):
    /// pod UIDs for the per-process series' pod labels without the API
    /// server. Ignored when it is not a directory (Algalon's own option).
    #[arg(
        long = "kubernetes-pod-logs-dir",
        default_value = "/var/log/pods",
        value_name = "DIR"
    )]
    pub pod_logs_dir: PathBuf,

    /// The service-account mount (`token`, `ca.crt`) the API server is asked
    /// with, for --kubernetes-enable-pod-labels/-uid (Algalon's own option).
    #[arg(
        long = "kubernetes-service-account-dir",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount",
        value_name = "DIR"
    )]
    pub service_account_dir: PathBuf,

    /// Map GPUs handed out through Dynamic Resource Allocation to their pods.
    #[arg(long = "kubernetes-enable-dra")]
    pub enable_dra: bool,
}

/// dcgm-exporter options with no meaning for Algalon (no DCGM host engine,
/// no Go runtime, GPUs only): accepted and checked as dcgm-exporter checks
/// them, and named in one start-up line each when set. Hidden from --help;
/// README's "Coming from dcgm-exporter" lists them with the reasons.
#[derive(Debug, Clone, Args)]
pub struct NoEffect {
    /// Remote DCGM host engine.
    #[arg(short = 'r', long = "remote-hostengine-info", hide = true)]
    pub remote_hostengine_info: Option<String>,

    /// Kubernetes ConfigMap with the collectors CSV.
    #[arg(
        short = 'm',
        long = "configmap-data",
        default_value = "none",
        value_parser = parse_configmap_data,
        hide = true
    )]
    pub configmap_data: String,

    /// Grace CPUs to watch.
    #[arg(short = 'p', long = "cpu-devices", default_value = "f", value_parser = parse_entity_devices, hide = true)]
    pub cpu_devices: String,

    /// NVSwitches to watch.
    #[arg(short = 's', long = "switch-devices", default_value = "f", value_parser = parse_entity_devices, hide = true)]
    pub switch_devices: String,

    /// DCGM's fake GPUs.
    #[arg(long = "fake-gpus", hide = true)]
    pub fake_gpus: bool,

    /// DCGM's own log on stdout.
    #[arg(long = "enable-dcgm-log", hide = true)]
    pub enable_dcgm_log: bool,

    /// DCGM's log level.
    #[arg(long = "dcgm-log-level", default_value = "NONE", value_parser = ["NONE", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "VERB"], hide = true)]
    pub dcgm_log_level: String,

    /// Debug dumps.
    #[arg(long = "dump-enabled", hide = true)]
    pub dump_enabled: bool,

    /// Debug dump directory.
    #[arg(
        long = "dump-directory",
        default_value = "/tmp/dcgm-exporter-debug",
        hide = true
    )]
    pub dump_directory: PathBuf,

    /// Debug dump retention, in hours.
    #[arg(long = "dump-retention", default_value_t = 24, hide = true)]
    pub dump_retention: i64,

    /// Compress debug dumps.
    #[arg(
        long = "dump-compression",
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        hide = true
    )]
    pub dump_compression: bool,

    /// Skip dcgm-exporter's start-up checks.
    #[arg(long = "disable-startup-validate", hide = true)]
    pub disable_startup_validate: bool,

    /// Watch for GPU bind and unbind events.
    #[arg(long = "enable-gpu-bind-unbind-watch", hide = true)]
    pub enable_gpu_bind_unbind_watch: bool,

    /// Poll interval of the bind/unbind watch (a Go duration).
    #[arg(
        long = "gpu-bind-unbind-poll-interval",
        default_value = "1s",
        hide = true
    )]
    pub gpu_bind_unbind_poll_interval: String,

    /// Go's pprof endpoints.
    #[arg(long = "enable-pprof", hide = true)]
    pub enable_pprof: bool,
}

impl Cli {
    /// Parses the process's arguments and environment.
    pub fn from_env() -> Result<Cli, clap::Error> {
        Cli::parse_from_env(std::env::args_os(), |name| std::env::var_os(name))
    }

    /// Parses `args` (the first is the program name) with `var` as the
    /// environment: Go-style single-dash long options are read as
    /// double-dash ones; an option not on the command line takes the first
    /// non-empty of its variables (`ALGALON_*` first, then dcgm-exporter's).
    pub fn parse_from_env<I, T>(
        args: I,
        var: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let cmd = command();
        let mut args = args::go_style_args(&cmd, args.into_iter().map(Into::into).collect());
        if args.is_empty() {
            args.push(OsString::from("algalon-exporter"));
        }
        let first = cmd.clone().try_get_matches_from(&args)?;
        let (from_env, origins) = args::env_args(&cmd, &first, &args[0], &var)?;
        let mut all = Vec::with_capacity(args.len() + from_env.len());
        all.push(args[0].clone());
        all.extend(from_env);
        all.extend(args.into_iter().skip(1));
        let matches = cmd.clone().try_get_matches_from(&all)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.given = args::given(&cmd, &matches, &origins);
        let devices_text = matches
            .get_raw("devices")
            .and_then(|mut v| v.next())
            .and_then(|v| v.to_str());
        (cli.device_instances, cli.device_instances_only) = devices_text.map_or(
            (algalon_core::devices::InstanceSet::None, false),
            named_instances,
        );
        cli.node_name = var("NODE_NAME")
            .and_then(|v| v.into_string().ok())
            .filter(|v| !v.is_empty());
        Ok(cli)
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.collect_interval_ms)
    }

    /// How old the last sample may be before /health says 503.
    pub fn stale_after(&self) -> Duration {
        match self.health_stale_after_ms {
            Some(ms) => Duration::from_millis(ms),
            None => default_stale_after(self.interval()),
        }
    }

    /// How GPU series are labelled and annotated, from dcgm-exporter's options.
    pub fn series_options(&self) -> crate::sampling::SeriesOptions {
        use algalon_core::{HostLabel, LabelStyle};
        let hostname = match (self.no_hostname, self.hostname_label) {
            (true, _) => HostLabel::Off,
            (false, HostnameLabel::Hostname) => HostLabel::Hostname,
            (false, HostnameLabel::Lowercase) => HostLabel::Lowercase,
        };
        crate::sampling::SeriesOptions {
            style: LabelStyle {
                hostname,
                old_namespace: self.use_old_namespace,
                replace_blanks_in_model_name: self.replace_blanks_in_model_name,
            },
            xid_window: Duration::from_millis(self.xid_count_window_ms),
            clock_events_window: Duration::from_millis(self.clock_events_count_window_ms),
            hpc_job_mapping_dir: self.hpc_job_mapping_dir.clone(),
            labeller: None,
        }
    }

    /// The log level: --log-level, raised to debug by --debug.
    pub fn log_level(&self) -> LogLevel {
        if self.debug && self.log_level < LogLevel::Debug {
            LogLevel::Debug
        } else {
            self.log_level
        }
    }
}

/// The command line as clap sees it: [`Cli`]'s options, with dcgm-exporter's
/// boolean syntax (`--kubernetes`, `--kubernetes=false`) and each option's
/// variables named in its help.
pub fn command() -> clap::Command {
    args::decorate(Cli::command())
}

/// A clap error as one line, for stderr (usage errors are not multi-line
/// essays: "what was wrong, where, what to do").
pub fn one_line_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:")
        })
        .collect();
    let joined = parts.join("; ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}

/// max(3 × interval, interval + 10 s): three missed samples, and never less
/// than 10 s of slack for a slow NVML call at short intervals.
pub fn default_stale_after(interval: Duration) -> Duration {
    (interval * 3).max(interval + Duration::from_secs(10))
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Start-up, reloads and state changes.
    Info,
    /// Per-sample detail.
    Debug,
    /// Everything.
    Trace,
}

/// The host label's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostnameLabel {
    /// `Hostname`, as dcgm-exporter's releases up to 4.8.2 write it.
    #[value(name = "Hostname")]
    Hostname,
    /// `hostname`, as dcgm-exporter's main branch writes it.
    #[value(name = "hostname")]
    Lowercase,
}

/// How the kubelet's pod resources name a GPU (dcgm-exporter's
/// `--kubernetes-gpu-id-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GpuIdType {
    /// The GPU's UUID.
    #[value(name = "uid")]
    Uid,
    /// The device name (`nvidia0`).
    #[value(name = "device-name")]
    DeviceName,
}

/// `--configmap-data`: `none`, or `NAMESPACE:NAME` (dcgm-exporter rejects
/// anything else when it reads the ConfigMap).
fn parse_configmap_data(text: &str) -> Result<String, String> {
    if text == "none" {
        return Ok(text.to_owned());
    }
    match text.split(':').collect::<Vec<_>>()[..] {
        [ns, name] if !ns.is_empty() && !name.is_empty() => Ok(text.to_owned()),
        _ => Err(format!("expected NAMESPACE:NAME or none, found {text:?}")),
    }
}

/// `--cpu-devices` / `--switch-devices`: dcgm-exporter's device grammar
/// (`f`, `g[:LIST]`, `i[:LIST]`, LIST = numbers and `A-B` ranges), checked
/// as dcgm-exporter checks it; the value itself is not used.
fn parse_entity_devices(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (letter, list) = match parts[..] {
        [letter] => (letter, None),
        [letter, list] => (letter, Some(list)),
        _ => return Err(format!("{text:?}: only one `:LIST` may follow the letter")),
    };
    match (letter, list) {
        ("f", None) | ("g" | "i", None) => return Ok(text.to_owned()),
        ("f", Some(_)) => return Err("no list may follow `f`".to_owned()),
        ("g" | "i", Some(_)) => {}
        _ => {
            return Err(format!(
                "{text:?}: expected f, g[:LIST] or i[:LIST] (LIST: numbers and A-B ranges)"
            ));
        }
    }
    for item in list.unwrap_or_default().split(',') {
        let ok = match item.split('-').collect::<Vec<_>>()[..] {
            [n] => n.parse::<i64>().is_ok(),
            [a, b] => a.parse::<i64>().is_ok() && b.parse::<i64>().is_ok(),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "{text:?}: {item:?} is not a number or an A-B range"
            ));
        }
    }
    Ok(text.to_owned())
}

/// The MIG instances a `-d` value selects explicitly (`g+i`, `i`,
/// `i:LIST`, `g:0+i:1`), and whether it selects instances alone; `f` and
/// `all` select everything without naming instances, and read none.
fn named_instances(text: &str) -> (algalon_core::devices::InstanceSet, bool) {
    use algalon_core::devices::{DeviceSpec, GpuSet, InstanceSet};
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("f") || t.eq_ignore_ascii_case("all") {
        return (InstanceSet::None, false);
    }
    match DeviceSpec::parse(t) {
        Ok(spec) if spec.instances != InstanceSet::None => {
            (spec.instances, spec.gpus == GpuSet::None)
        }
        _ => (InstanceSet::None, false),
    }
}

/// Which GPUs to sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// Every GPU NVML reports.
    All,
    /// NVML indices and UUIDs (or unique UUID prefixes), as given.
    List(Vec<String>),
}

impl Devices {
    /// The selectors for `SamplerOptions::devices`.
    pub fn selectors(&self) -> Option<Vec<String>> {
        match self {
            Devices::All => None,
            Devices::List(list) => Some(list.clone()),
        }
    }
}

/// Parses `--devices` by the core's device grammar
/// ([`algalon_core::devices::DeviceSpec`]: dcgm-exporter's `f`, `g`,
/// `g:0-3`, `g:0,2`, `g+i`, plus `all`, UUIDs and a list without `g:`).
/// Whole GPUs are sampled; the instance part ([`Cli::device_instances`])
/// says which of their MIG instances are also read. Selecting instances
/// alone (`i`, `i:LIST`) watches every GPU, with a start-up warning.
pub fn parse_devices(text: &str) -> Result<Devices, String> {
    use algalon_core::devices::{DeviceSpec, GpuSet};
    let spec = DeviceSpec::parse(text).map_err(|e| e.to_string())?;
    match spec.gpus {
        GpuSet::All => Ok(Devices::All),
        GpuSet::List(list) => Ok(Devices::List(
            list.iter().map(ToString::to_string).collect(),
        )),
        // `i`, `i:LIST`: every GPU, whose instances are read; a start-up
        // warning says so.
        GpuSet::None => Ok(Devices::All),
    }
}

#[cfg(test)]
mod tests;
