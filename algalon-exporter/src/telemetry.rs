//! The exporter's own series, appended to every `/metrics` body: HTTP
//! requests by handler and code, failed basic-auth checks, the outcome of
//! the last configuration reload (under Prometheus' names), the
//! distribution of sample durations (the core's gauge shows only the last),
//! and the process metrics Go exporters carry (`process_*`, read from
//! `/proc/self`). Encoded per scrape — a few hundred bytes, no NVML.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use algalon_core::{Format, unix_seconds};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Linux reports CPU time in clock ticks of `USER_HZ`, 100 on every
/// architecture Linux supports (as Go's procfs assumes too).
const USER_HZ: f64 = 100.0;

/// How long read process statistics are reused: scrapers a second apart or
/// less (several Prometheus replicas) share one read of `/proc/self`.
const PROCESS_STATS_FOR: Duration = Duration::from_secs(1);

/// The `handler` label values; any other path counts as `other`.
const HANDLERS: [&str; 4] = ["/metrics", "/health", "/api/v1/gpus", "/"];

/// Upper bounds of the sample duration buckets, seconds: a healthy 8-GPU
/// sample takes milliseconds; the top buckets catch hung NVML calls.
const SAMPLE_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Counters and gauges the exporter keeps about itself.
#[derive(Debug)]
pub struct Telemetry {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    auth_failures: AtomicU64,
    reload_ok: AtomicBool,
    /// Unix seconds (as `f64` bits) of the last successful (re)load.
    reload_success_at: AtomicU64,
    sample_durations: Histogram,
    proc_root: PathBuf,
    /// The last read of `/proc/self`, and when.
    process: Mutex<Option<(Instant, ProcessStats)>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new(Path::new("/proc"))
    }
}

impl Telemetry {
    /// Fresh counters; the configuration counts as loaded now (start-up
    /// refuses a bad one). `proc_root` is normally `/proc`.
    pub fn new(proc_root: &Path) -> Self {
        Telemetry {
            requests: Mutex::new(BTreeMap::new()),
            auth_failures: AtomicU64::new(0),
            reload_ok: AtomicBool::new(true),
            reload_success_at: AtomicU64::new(unix_seconds(SystemTime::now()).to_bits()),
            sample_durations: Histogram::new(SAMPLE_BUCKETS),
            proc_root: proc_root.to_owned(),
            process: Mutex::new(None),
        }
    }

    /// The `handler` label for a request path.
    pub fn handler(path: &str) -> &'static str {
        HANDLERS
            .iter()
            .find(|h| **h == path)
            .copied()
            .unwrap_or("other")
    }

    /// Counts one answered request.
    pub fn request(&self, handler: &'static str, code: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        *requests.entry((handler, code)).or_insert(0) += 1;
    }

    /// Counts a request refused for missing or wrong credentials.
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a configuration reload's outcome.
    pub fn reloaded(&self, ok: bool) {
        self.reload_ok.store(ok, Ordering::Relaxed);
        if ok {
            let now = unix_seconds(SystemTime::now());
            self.reload_success_at
                .store(now.to_bits(), Ordering::Relaxed);
        }
    }

    /// Records how long one sample of every GPU took.
    pub fn observe_sample(&self, duration: Duration) {
        self.sample_durations.observe(duration.as_secs_f64());
    }

    /// `/proc/self`'s statistics, read at most once per `PROCESS_STATS_FOR`.
    fn process_stats(&self) -> ProcessStats {
        let mut cached = self.process.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((at, stats)) if at.elapsed() < PROCESS_STATS_FOR => stats.clone(),
            _ => {
                let stats = ProcessStats::read(&self.proc_root.join("self"), &self.proc_root);
                *cached = Some((Instant::now(), stats.clone()));
                stats
            }
        }
    }

    /// The series in `format`; OpenMetrics ends with `# EOF`.
    pub fn encode(&self, format: Format) -> String {
        let snapshot = Encoded {
            requests: self
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            reload_ok: self.reload_ok.load(Ordering::Relaxed),
            reload_success_at: f64::from_bits(self.reload_success_at.load(Ordering::Relaxed)),
            sample_durations: self.sample_durations.clone(),
            process: self.process_stats(),
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(snapshot));
        let mut out = String::with_capacity(2048);
        let written = match format {
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "cannot encode the exporter's own series");
            out.clear();
            if format == Format::OpenMetrics {
                out.push_str("# EOF\n");
            }
        }
        out
    }
}

/// What one scrape encodes.
#[derive(Debug)]
struct Encoded {
    requests: BTreeMap<(&'static str, u16), u64>,
    auth_failures: u64,
    reload_ok: bool,
    reload_success_at: f64,
    sample_durations: Histogram,
    process: ProcessStats,
}

impl Collector for Encoded {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "algalon_http_requests",
            "HTTP requests answered, by handler and status code.",
            None,
            MetricType::Counter,
        )?;
        for ((handler, code), count) in &self.requests {
            let labels = [
                ("handler", (*handler).to_owned()),
                ("code", code.to_string()),
            ];
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(count, None)?;
        }
        encoder
            .encode_descriptor(
                "algalon_http_auth_failures",
                "Requests refused for missing or wrong basic-auth credentials.",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&self.auth_failures, None)?;
        encoder
            .encode_descriptor(
                "algalon_config_last_reload_successful",
                "Whether the last configuration reload (SIGHUP or a changed certificate) succeeded.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&i64::from(self.reload_ok))?;
        encoder
            .encode_descriptor(
                "algalon_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&self.reload_success_at)?;
        self.sample_durations.encode(encoder.encode_descriptor(
            "algalon_sample_latency_seconds",
            "Time each sample of all GPUs took, NVML calls included (algalon_sample_duration_seconds is the last one).",
            None,
            MetricType::Histogram,
        )?)?;
        self.process.encode(&mut encoder)
    }
}

/// `process_*` as Go's client library exports them; a value `/proc` does
/// not give is left out, not reported as 0.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, bytes.
    pub resident_bytes: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Unix time the process started, seconds.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `dir` (`/proc/self`) and, for the boot time, `proc_root/stat`.
    pub fn read(dir: &Path, proc_root: &Path) -> ProcessStats {
        let stat = std::fs::read_to_string(dir.join("stat")).ok();
        // Fields after the command name, which is in parentheses and may
        // itself hold spaces or parentheses: field 3 (state) is index 0.
        let fields: Vec<&str> = stat
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let cpu_seconds = match (field(14), field(15)) {
            (Some(u), Some(s)) => Some((u + s) as f64 / USER_HZ),
            _ => None,
        };
        let boot = std::fs::read_to_string(proc_root.join("stat"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            });
        let start_time_seconds = match (boot, field(22)) {
            (Some(boot), Some(ticks)) => Some(boot as f64 + ticks as f64 / USER_HZ),
            _ => None,
        };
        let status = std::fs::read_to_string(dir.join("status")).ok();
        let kib = |key: &str| {
            status.as_deref().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .map(|k| k * 1024)
            })
        };
        let open_fds = std::fs::read_dir(dir.join("fd"))
            .ok()
            .map(|d| d.filter(Result::is_ok).count() as u64);
        let max_fds = std::fs::read_to_string(dir.join("limits"))
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("Max open files"))?;
                line["Max open files".len()..]
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            });
        ProcessStats {
            cpu_seconds,
            resident_bytes: kib("VmRSS:"),
            virtual_bytes: kib("VmSize:"),
            open_fds,
            max_fds,
            start_time_seconds,
        }
    }

    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some(v) = self.cpu_seconds {
            encoder
                .encode_descriptor(
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds.",
                    None,
                    MetricType::Counter,
                )?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
        let gauges: [(&str, &str, Option<f64>); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                self.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                self.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                self.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                self.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                self.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                encoder
                    .encode_descriptor(name, help, None, MetricType::Gauge)?
                    .encode_gauge(&v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_stats_from_a_proc_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let me = root.path().join("self");
        std::fs::create_dir_all(me.join("fd")).expect("mkdir");
        for fd in ["0", "1", "2", "7"] {
            std::fs::write(me.join("fd").join(fd), "").expect("fd");
        }
        // A command name with a space and a parenthesis.
        std::fs::write(
            me.join("stat"),
            "4242 (algalon (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
             250 50 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615\n",
        )
        .expect("stat");
        std::fs::write(
            me.join("status"),
            "Name:\talgalon\nVmSize:\t  102400 kB\nVmRSS:\t    10240 kB\n",
        )
        .expect("status");
        std::fs::write(
            me.join("limits"),
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max open files            1024                 524288               files     \n",
        )
        .expect("limits");
        std::fs::write(root.path().join("stat"), "cpu 1 2 3\nbtime 1700000000\n").expect("stat");
        let stats = ProcessStats::read(&me, root.path());
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: Some(3.0),
                resident_bytes: Some(10240 * 1024),
                virtual_bytes: Some(102400 * 1024),
                open_fds: Some(4),
                max_fds: Some(1024),
                start_time_seconds: Some(1_700_000_123.45),
            }
        );
        // Nothing readable: every value absent, none invented.
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            ProcessStats::read(&empty.path().join("self"), empty.path()),
            ProcessStats::default()
        );
    }

    #[test]
    fn own_series_in_both_formats() {
        let t = Telemetry::default();
        t.request(Telemetry::handler("/metrics"), 200);
        t.request(Telemetry::handler("/metrics"), 200);
        t.request(Telemetry::handler("/nope"), 404);
        t.auth_failure();
        t.reloaded(false);
        t.observe_sample(Duration::from_millis(3));
        t.observe_sample(Duration::from_secs(70));
        let text = t.encode(Format::PrometheusText);
        assert!(
            text.contains("algalon_http_requests_total{handler=\"/metrics\",code=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("algalon_http_requests_total{handler=\"other\",code=\"404\"} 1\n"));
        assert!(
            text.contains("algalon_http_auth_failures_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("algalon_config_last_reload_successful 0\n"),
            "{text}"
        );
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(!text.contains("# EOF"));
        assert!(
            text.contains("algalon_sample_latency_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("algalon_sample_latency_seconds_bucket{le=\"60\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("algalon_sample_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("algalon_sample_latency_seconds_count 2\n"));
        let om = t.encode(Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"), "{om}");
    }
}
