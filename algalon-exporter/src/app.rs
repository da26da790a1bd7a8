//! Start-up, signals and reloads.
//!
//! Everything that can fail at start-up is checked before anything is
//! logged — collectors CSV, web config (TLS key vs certificate), the listen
//! socket, NVML and the first sample — so a failure is exactly one line on
//! stderr.

use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use algalon_core::{CollectorConfig, SamplerOptions};
use arc_swap::ArcSwap;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::cli::Cli;
use crate::connections;
use crate::error::StartError;
use crate::routes::{self, AppState};
use crate::sampling::Sampling;
use crate::state;
use crate::telemetry::Telemetry;
use crate::webconfig::WebConfig;

/// Runs the exporter until SIGTERM / SIGINT.
pub fn run(cli: Cli) -> Result<(), StartError> {
    let collectors = load_collectors(cli.collectors.as_deref())?;
    let web = match &cli.web_config_file {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    };
    let listener = if cli.web_systemd_socket {
        systemd_listener()?
    } else {
        bind(&cli.address)?
    };
    let local = listener.local_addr().map_err(|source| StartError::Bind {
        address: cli.address.clone(),
        source,
        hint: "",
    })?;

    let published = state::shared();
    let options = SamplerOptions {
        nvml_lib: cli.nvml_lib.clone(),
        devices: cli.devices.selectors(),
        processes: cli.processes,
        instances: cli.device_instances.clone(),
        proc_root: cli.proc_root.clone(),
        hostname: cli.node_name.clone(),
        ..SamplerOptions::default()
    };
    let skipped = collectors.skipped.clone();
    let source = collectors.source.clone();
    let telemetry = Arc::new(Telemetry::default());
    let pod_labels = crate::kubernetes::PodLabels::start(&cli)?;
    let mut series = cli.series_options();
    series.labeller = pod_labels
        .clone()
        .map(|p| p as Arc<dyn crate::sampling::Labeller>);
    let sampling = Arc::new(Sampling::start(
        options,
        collectors,
        cli.interval(),
        series,
        Arc::clone(&published),
        Arc::clone(&telemetry),
    )?);

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(8)
        .thread_name("algalon-http")
        .enable_all()
        .build()
        .map_err(|source| StartError::Runtime {
            what: "the async runtime",
            source,
        })?;

    let web = Arc::new(ArcSwap::from_pointee(web));
    let app_state = Arc::new(AppState {
        published: Arc::clone(&published),
        web: Arc::clone(&web),
        stale_after: cli.stale_after(),
        telemetry: Arc::clone(&telemetry),
        sampling: Arc::clone(&sampling),
        kubernetes: pod_labels,
    });
    let reloader = Reloader {
        collectors: cli.collectors.clone(),
        web_config: cli.web_config_file.clone(),
        sampling: Arc::clone(&sampling),
        web: Arc::clone(&web),
        telemetry,
        serial: std::sync::Mutex::new(()),
    };
    let reload = reloader.start()?;

    let result = runtime.block_on(async {
        listener
            .set_nonblocking(true)
            .map_err(|source| StartError::Runtime {
                what: "the listener",
                source,
            })?;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| StartError::Runtime {
                what: "the listener",
                source,
            })?;
        let sig = |kind: SignalKind| {
            signal(kind).map_err(|source| StartError::Runtime {
                what: "signal handling",
                source,
            })
        };
        let mut hup = sig(SignalKind::hangup())?;
        let mut term = sig(SignalKind::terminate())?;
        let mut int = sig(SignalKind::interrupt())?;

        // From here on start-up has succeeded: log freely.
        for s in &skipped {
            // The built-in file is dcgm-exporter's verbatim: its rows that
            // NVML cannot serve are expected, not the operator's mistake.
            if cli.collectors.is_some() {
                tracing::warn!(
                    file = %source,
                    line = s.line,
                    metric = %s.name,
                    "{source}:{}: {} is not exported: {}",
                    s.line,
                    s.name,
                    s.reason,
                );
            } else {
                tracing::debug!(
                    file = %source,
                    line = s.line,
                    metric = %s.name,
                    "{source}:{}: {} is not exported: {}",
                    s.line,
                    s.name,
                    s.reason,
                );
            }
        }
        log_started(&cli, &sampling, &web.load(), local);
        crate::compat::log_start_notes(&cli);
        crate::watchdog::spawn(Arc::clone(&published), &sampling, cli.stale_after()).map_err(
            |source| StartError::Runtime {
                what: "the NVML watchdog",
                source,
            },
        )?;

        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(connections::serve(
            listener,
            routes::router(app_state),
            Arc::clone(&web),
            usize::try_from(cli.max_connections).unwrap_or(256),
            stop_rx,
        ));
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    // Never blocks: a burst of SIGHUPs becomes one reload
                    // after the one in progress.
                    if let Err(TrySendError::Disconnected(())) = reload.try_send(()) {
                        tracing::error!(
                            "SIGHUP ignored: the reload thread has stopped; \
                             restart algalon-exporter to reload"
                        );
                    }
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM: shutting down");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: shutting down");
                    break;
                }
            }
        }
        let _ = stop_tx.send(true);
        let _ = server.await;
        Ok::<(), StartError>(())
    });
    sampling.stop(Duration::from_secs(2));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result?;
    tracing::info!("stopped");
    Ok(())
}

fn log_started(cli: &Cli, sampling: &Sampling, web: &WebConfig, local: SocketAddr) {
    let snapshot = sampling.latest();
    let gpus = snapshot.as_ref().map_or(0, |s| s.gpus.len());
    let nvml = snapshot
        .as_ref()
        .and_then(|s| s.nvml_version.clone())
        .unwrap_or_else(|| "unknown".into());
    let driver = snapshot
        .as_ref()
        .and_then(|s| s.driver_version.clone())
        .unwrap_or_else(|| "unknown".into());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        revision = env!("ALGALON_GIT_HASH"),
        gpus,
        interval_ms = cli.collect_interval_ms,
        nvml_library = sampling.nvml_library(),
        nvml_version = %nvml,
        driver_version = %driver,
        processes = cli.processes,
        "algalon-exporter {} ({}): sampling {}",
        env!("CARGO_PKG_VERSION"),
        env!("ALGALON_GIT_HASH"),
        count(gpus, "GPU", "GPUs"),
    );
    if let Some(auth) = &web.auth {
        tracing::info!(users = %auth.users().join(","), "basic auth on");
    }
    for warning in &web.warnings {
        tracing::warn!("{warning}");
    }
    let url = format!("{}://{local}", web.scheme());
    tracing::info!(url = %url, "listening on {url}");
}

/// `1 GPU`, `4 GPUs`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn load_collectors(path: Option<&Path>) -> Result<CollectorConfig, StartError> {
    match path {
        Some(p) => Ok(CollectorConfig::from_path(p)?),
        None => Ok(CollectorConfig::default()),
    }
}

/// Binds `--address`: `:PORT` means every interface (IPv6 and IPv4 where
/// the host has IPv6, else IPv4), as in Go.
/// The listening socket systemd passed (socket activation: `LISTEN_FDS`
/// sockets from fd 3 on, for the process `LISTEN_PID`), as dcgm-exporter's
/// `--web-systemd-socket` takes it; `--address` is then not bound.
/// dcgm-exporter serves every socket passed; Algalon serves the first TCP
/// one and names the others in a warning.
fn systemd_listener() -> Result<StdListener, StartError> {
    let mut fds = listenfd::ListenFd::from_env();
    let count = fds.len();
    if count == 0 {
        return Err(StartError::SystemdSocket(
            "no socket was passed (LISTEN_FDS is unset or 0, or LISTEN_PID names another \
             process); start the exporter from a systemd .socket unit, or drop the option and \
             use -a/--address"
                .to_owned(),
        ));
    }
    let mut found = None;
    for i in 0..count {
        match fds.take_tcp_listener(i) {
            Ok(Some(l)) if found.is_none() => found = Some(l),
            Ok(Some(l)) => tracing::warn!(
                "--web-systemd-socket: systemd passed more than one socket; serving the first, \
                 ignoring {}",
                l.local_addr()
                    .map_or_else(|_| format!("fd {}", 3 + i), |a| a.to_string())
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                "--web-systemd-socket: socket {} (fd {}) is not a TCP listener: {e}",
                i + 1,
                3 + i
            ),
        }
    }
    found.ok_or_else(|| {
        StartError::SystemdSocket(format!(
            "none of the {count} sockets systemd passed is a TCP listening socket; the .socket \
             unit needs ListenStream=PORT"
        ))
    })
}

fn bind(address: &str) -> Result<StdListener, StartError> {
    let bad = |reason: String| StartError::Address {
        address: address.to_owned(),
        reason,
    };
    let candidates: Vec<SocketAddr> = if let Some(port) = address.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| bad(format!("{port:?} is not a port number")))?;
        vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]
    } else {
        address
            .to_socket_addrs()
            .map_err(|e| bad(format!("{e} (expected :PORT, HOST:PORT or [IPv6]:PORT)")))?
            .collect()
    };
    let mut last: Option<(SocketAddr, std::io::Error)> = None;
    for addr in candidates {
        match listen(addr) {
            Ok(l) => return Ok(l),
            // Port in use or no permission: the next address would fail the
            // same way or hide the real problem.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Err(bind_error(addr, e));
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        Some((addr, e)) => Err(bind_error(addr, e)),
        None => Err(bad("resolves to no address".into())),
    }
}

/// A listening socket on `addr`. The IPv6 wildcard also accepts IPv4
/// (dual-stack) whatever `net.ipv6.bindv6only` says, as Go's `:PORT` does.
fn listen(addr: SocketAddr) -> std::io::Result<StdListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn bind_error(addr: SocketAddr, source: std::io::Error) -> StartError {
    let hint = match source.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another exporter — dcgm-exporter? — already listens there); stop it or choose \
             another port with -a/--address"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE); choose another port with \
             -a/--address"
        }
        _ => "",
    };
    StartError::Bind {
        address: addr.to_string(),
        source,
        hint,
    }
}

/// How long a configuration file must stay unchanged before a reload reads
/// it: a file being rewritten in place is read once it is complete.
const SETTLE: Duration = Duration::from_millis(100);
/// A reload gives up on a file still changing after this long.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// Reads `path` once it has stopped changing: the same size, modification
/// time and inode before and `SETTLE` after a read that returned exactly
/// that size. So a SIGHUP that arrives while an editor or a config manager
/// is still writing the file (in place, or by rename) sees the old file or
/// the finished new one, never a half-written one.
fn read_settled(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt as _;
    let stamp = |m: &std::fs::Metadata| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec());
    let deadline = std::time::Instant::now() + SETTLE_LIMIT;
    loop {
        let before = std::fs::metadata(path)?;
        let text = std::fs::read(path)?;
        std::thread::sleep(SETTLE);
        let after = std::fs::metadata(path)?;
        if stamp(&before) == stamp(&after) && text.len() as u64 == after.len() {
            return String::from_utf8(text).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8: {e}"))
            });
        }
        if std::time::Instant::now() >= deadline {
            return Err(std::io::Error::other(format!(
                "still being written after {} s",
                SETTLE_LIMIT.as_secs()
            )));
        }
    }
}

/// Re-reads the collectors CSV and web config on SIGHUP.
struct Reloader {
    collectors: Option<PathBuf>,
    web_config: Option<PathBuf>,
    sampling: Arc<Sampling>,
    web: Arc<ArcSwap<WebConfig>>,
    telemetry: Arc<Telemetry>,
    /// One reload at a time, whether a SIGHUP or a changed certificate.
    serial: std::sync::Mutex<()>,
}

/// How often the TLS files the web config names are checked for changes.
const TLS_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a file's content without reading it. Metadata follows
/// symlinks, so a Kubernetes secret's `..data` swap shows as a new inode.
type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

impl Reloader {
    /// Starts the reload thread, and, with a web config, the thread that
    /// watches its certificate files. Each message sent asks for one reload;
    /// the channel holds one, so SIGHUPs that arrive during a reload
    /// collapse into a single reload after it, which reads the files as they
    /// are then.
    fn start(self) -> Result<std::sync::mpsc::SyncSender<()>, StartError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let this = Arc::new(self);
        let reloader = Arc::clone(&this);
        std::thread::Builder::new()
            .name("algalon-reload".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    reloader.reload();
                }
            })
            .map_err(|source| StartError::Runtime {
                what: "the reload thread",
                source,
            })?;
        if this.web_config.is_some() {
            std::thread::Builder::new()
                .name("algalon-tls-watch".into())
                .spawn(move || this.watch_tls())
                .map_err(|source| StartError::Runtime {
                    what: "the certificate watcher",
                    source,
                })?;
        }
        Ok(tx)
    }

    /// Reloads the web config whenever a certificate, key or client CA file
    /// it names changes (rotation), without waiting for a SIGHUP.
    fn watch_tls(&self) {
        let Some(path) = &self.web_config else { return };
        let stamps = |paths: &[PathBuf]| -> Vec<(PathBuf, Stamp)> {
            paths.iter().map(|p| (p.clone(), stamp(p))).collect()
        };
        let mut seen = stamps(&self.web.load().watched);
        loop {
            std::thread::sleep(TLS_WATCH_INTERVAL);
            let now = stamps(&self.web.load().watched);
            let same_files =
                now.len() == seen.len() && now.iter().zip(&seen).all(|(a, b)| a.0 == b.0);
            if !same_files || now == seen {
                // A reload named other files: watch those from here on.
                seen = now;
                continue;
            }
            let changed: Vec<String> = now
                .iter()
                .zip(&seen)
                .filter(|(a, b)| a.1 != b.1)
                .map(|(a, _)| a.0.display().to_string())
                .collect();
            seen = now;
            let _serial = self.serial.lock().unwrap_or_else(PoisonError::into_inner);
            tracing::info!(
                files = %changed.join(","),
                "TLS files changed ({}): reloading the web config",
                changed.join(", ")
            );
            let ok = self.reload_web(path);
            self.telemetry.reloaded(ok);
        }
    }

    fn reload(&self) {
        let _serial = self.serial.lock().unwrap_or_else(PoisonError::into_inner);
        tracing::info!("SIGHUP: reloading configuration");
        if self.collectors.is_none() && self.web_config.is_none() {
            tracing::info!("nothing to reload: neither --collectors nor --web-config-file is set");
            self.telemetry.reloaded(true);
            return;
        }
        let mut ok = true;
        if let Some(path) = &self.collectors {
            let parsed = read_settled(path)
                .map_err(|source| algalon_core::Error::CollectorsIo {
                    path: path.clone(),
                    source,
                })
                .and_then(|text| CollectorConfig::parse(&text, &path.display().to_string()));
            let applied = parsed.and_then(|config| {
                for s in &config.skipped {
                    tracing::warn!(
                        file = %path.display(),
                        line = s.line,
                        metric = %s.name,
                        "{}:{}: {} is not exported: {}",
                        path.display(),
                        s.line,
                        s.name,
                        s.reason,
                    );
                }
                let metrics = config.metrics.len();
                self.sampling.apply(config).map(|()| metrics)
            });
            match applied {
                Ok(metrics) => tracing::info!(
                    file = %path.display(),
                    metrics,
                    "collectors reloaded from {}: {}",
                    path.display(),
                    count(metrics, "metric", "metrics"),
                ),
                Err(e) => {
                    ok = false;
                    tracing::error!(
                        file = %path.display(),
                        error = %e,
                        "collectors reload failed; the previous collectors keep serving"
                    );
                }
            }
        }
        if let Some(path) = &self.web_config {
            ok &= self.reload_web(path);
        }
        self.telemetry.reloaded(ok);
    }

    /// Re-reads the web config at `path`; false when it failed and the
    /// previous one keeps serving.
    fn reload_web(&self, path: &Path) -> bool {
        let loaded = read_settled(path)
            .map_err(|e| StartError::web(path, None, format!("cannot read: {e}")))
            .and_then(|text| WebConfig::parse(&text, path));
        match loaded {
            Ok(config) => {
                let scheme = config.scheme();
                let auth = if config.auth.is_some() { "on" } else { "off" };
                for warning in &config.warnings {
                    tracing::warn!("{warning}");
                }
                self.web.store(Arc::new(config));
                tracing::info!(
                    file = %path.display(),
                    scheme,
                    basic_auth = auth,
                    "web config reloaded from {}: serving {scheme}, basic auth {auth}",
                    path.display()
                );
                true
            }
            Err(e) => {
                tracing::error!(
                    file = %path.display(),
                    error = %e.one_line(),
                    "web config reload failed; the previous web config keeps serving"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_forms() {
        let l = bind("127.0.0.1:0").expect("loopback");
        let port = l.local_addr().expect("addr").port();
        let e = bind(&format!("127.0.0.1:{port}")).expect_err("in use");
        let msg = e.one_line();
        assert!(msg.contains("cannot listen on 127.0.0.1:"), "{msg}");
        assert!(msg.contains("--address"), "{msg}");
        assert!(bind(":notaport").is_err());
        assert!(bind("no-such-host.invalid:80").is_err());
        drop(l);
    }
}
