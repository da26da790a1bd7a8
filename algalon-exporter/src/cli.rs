//! Command line: dcgm-exporter's flag names where they mean the same thing,
//! each with an `ALGALON_*` environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser, ValueEnum};

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
                  otherwise), /api/v1/gpus (the last sample as JSON), / (a live page of every GPU).\n\
                  Signals: SIGHUP re-reads --collectors and --web-config-file once each file has \
                  stopped changing for 0.1 s (a bad, unreadable or half-written file is logged with \
                  file:line and the last good configuration keeps serving; a burst of SIGHUPs is \
                  one reload); SIGTERM / SIGINT shut down gracefully."
)]
pub struct Cli {
    /// dcgm-exporter collectors CSV naming the fields to export (`DCGM field, type,
    /// help` rows). Default: the built-in copy of dcgm-exporter's default-counters.csv.
    #[arg(
        short = 'f',
        long = "collectors",
        env = "ALGALON_COLLECTORS",
        value_name = "CSV"
    )]
    pub collectors: Option<PathBuf>,

    /// Address to listen on: `:PORT` (every interface), `HOST:PORT`, `IP:PORT`
    /// or `[IPv6]:PORT`. Port 0 picks a free port (logged at start).
    #[arg(
        short = 'a',
        long = "address",
        env = "ALGALON_ADDRESS",
        default_value = ":9400",
        value_name = "ADDR"
    )]
    pub address: String,

    /// Milliseconds between two samples of every GPU.
    #[arg(
        short = 'c',
        long = "collect-interval",
        env = "ALGALON_COLLECT_INTERVAL",
        default_value_t = 5000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(10..=3_600_000)
    )]
    pub collect_interval_ms: u64,

    /// GPUs to watch: `f` or `all` (every GPU, the default), or a comma-separated
    /// list of NVML indices, index ranges and UUIDs (a unique UUID prefix is
    /// enough), optionally after dcgm-exporter's `g:` prefix: `0,1`, `g:0-3`,
    /// `GPU-5e2d…`.
    #[arg(
        short = 'd',
        long = "devices",
        env = "ALGALON_DEVICES",
        default_value = "f",
        value_name = "DEVICES",
        value_parser = parse_devices
    )]
    pub devices: Devices,

    /// Leave the `Hostname` label off every series.
    #[arg(
        short = 'n',
        long = "no-hostname",
        env = "ALGALON_NO_HOSTNAME",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub no_hostname: bool,

    /// NVML library to load instead of the system's libnvidia-ml.so.1.
    #[arg(long = "nvml-lib", env = "ALGALON_NVML_LIB", value_name = "PATH")]
    pub nvml_lib: Option<PathBuf>,

    /// Where the host's /proc is mounted, for process names and Slurm / pod
    /// identities (`/host/proc` in a container with the host's /proc mounted).
    #[arg(
        long = "proc-root",
        env = "ALGALON_PROC_ROOT",
        default_value = "/proc",
        value_name = "DIR"
    )]
    pub proc_root: PathBuf,

    /// Export per-process metrics (GPU memory, SM and memory utilization per
    /// PID, with the process name and its Slurm job or Kubernetes pod when
    /// known). Needs the host's PID namespace in a container.
    #[arg(
        long = "processes",
        env = "ALGALON_PROCESSES",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub processes: bool,

    /// Prometheus exporter-toolkit web config (YAML): `tls_server_config`
    /// (cert_file, key_file, client_auth_type, client_ca_file, min_version,
    /// max_version) and `basic_auth_users` (user: bcrypt hash). Relative paths
    /// are read from the file's directory. /health stays open without a password
    /// so container health checks work.
    #[arg(
        long = "web-config-file",
        env = "ALGALON_WEB_CONFIG_FILE",
        value_name = "YAML"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Log format.
    #[arg(
        long = "log-format",
        env = "ALGALON_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// Most verbose log level written.
    #[arg(
        long = "log-level",
        env = "ALGALON_LOG_LEVEL",
        value_enum,
        default_value_t = LogLevel::Info
    )]
    pub log_level: LogLevel,

    /// /health answers 503 when the last sample is older than this many
    /// milliseconds. Default: the larger of 3 intervals and one interval + 10 s.
    #[arg(
        long = "health-stale-after",
        env = "ALGALON_HEALTH_STALE_AFTER",
        value_name = "MS"
    )]
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
        env = "ALGALON_MAX_CONNECTIONS",
        default_value_t = 256,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=65_536)
    )]
    pub max_connections: u32,

    /// Do not serve: GET this URL (http:// or https://, certificate not
    /// verified) and exit 0 when it answers 200, 1 otherwise. For container
    /// HEALTHCHECKs in images without curl. `auto`: the /health of an exporter
    /// with this --address and --web-config-file, on loopback.
    #[arg(long = "healthcheck", value_name = "URL")]
    pub healthcheck: Option<String>,

    /// Print the version, git commit and NVML version, then exit.
    #[arg(short = 'V', long = "version", action = ArgAction::SetTrue)]
    pub version: bool,
}

impl Cli {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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

/// Parses `--devices`: `f`, `all`, `g`, or `[g:]SEL[,SEL…]` where SEL is an
/// index, an index range `A-B`, or a UUID (prefix).
pub fn parse_devices(text: &str) -> Result<Devices, String> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("f") || t.eq_ignore_ascii_case("all") {
        return Ok(Devices::All);
    }
    if t.eq_ignore_ascii_case("g") {
        return Ok(Devices::All);
    }
    if t.starts_with("i:") || t.eq_ignore_ascii_case("i") {
        return Err(
            "MIG instance selection (dcgm-exporter's `i:`) is not supported: select whole GPUs \
             with `g:INDEX,…` or GPU UUIDs"
                .to_owned(),
        );
    }
    let list = t
        .strip_prefix("g:")
        .or_else(|| t.strip_prefix("G:"))
        .unwrap_or(t);
    let mut out: Vec<String> = Vec::new();
    for item in list.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("empty entry in device list {text:?}"));
        }
        if let Some((a, b)) = item.split_once('-')
            && let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>())
        {
            if a > b {
                return Err(format!("device range {item:?} runs backwards"));
            }
            if b - a > 4096 {
                return Err(format!("device range {item:?} is too large"));
            }
            out.extend((a..=b).map(|i| i.to_string()));
            continue;
        }
        out.push(item.to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.clone()));
    Ok(Devices::List(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_forms() {
        assert_eq!(parse_devices("f"), Ok(Devices::All));
        assert_eq!(parse_devices("all"), Ok(Devices::All));
        assert_eq!(parse_devices("g"), Ok(Devices::All));
        assert_eq!(
            parse_devices("g:0,2-4"),
            Ok(Devices::List(vec![
                "0".into(),
                "2".into(),
                "3".into(),
                "4".into()
            ]))
        );
        assert_eq!(
            parse_devices("1, GPU-5e2d-aa"),
            Ok(Devices::List(vec!["1".into(), "GPU-5e2d-aa".into()]))
        );
        assert_eq!(parse_devices("0,0"), Ok(Devices::List(vec!["0".into()])));
        assert!(parse_devices("3-1").is_err());
        assert!(parse_devices("0,,1").is_err());
        assert!(parse_devices("i:0").is_err());
    }

    #[test]
    fn staleness_threshold() {
        assert_eq!(
            default_stale_after(Duration::from_secs(5)),
            Duration::from_secs(15)
        );
        assert_eq!(
            default_stale_after(Duration::from_secs(1)),
            Duration::from_secs(11)
        );
        assert_eq!(
            default_stale_after(Duration::from_secs(30)),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_dcgm_exporter() {
        let cli = Cli::try_parse_from(["algalon-exporter"]).expect("no flags parse");
        assert_eq!(cli.address, ":9400");
        assert_eq!(cli.collect_interval_ms, 5000);
        assert_eq!(cli.devices, Devices::All);
        assert!(!cli.no_hostname && !cli.processes);
    }
}
