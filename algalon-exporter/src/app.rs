//! Start-up, signals and reloads.
//!
//! Everything that can fail at start-up is checked before anything is
//! logged — collectors CSV, web config (TLS key vs certificate), the listen
//! socket, NVML and the first sample — so a failure is exactly one line on
//! stderr.

use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use algalon_core::{CollectorConfig, SamplerOptions};
use arc_swap::ArcSwap;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::cli::Cli;
use crate::error::StartError;
use crate::sampling::Sampling;
use crate::server::{self, AppState};
use crate::state;
use crate::webconfig::WebConfig;

/// Runs the exporter until SIGTERM / SIGINT.
pub fn run(cli: Cli) -> Result<(), StartError> {
    let collectors = load_collectors(cli.collectors.as_deref())?;
    let web = match &cli.web_config_file {
        Some(path) => WebConfig::load(path)?,
        None => WebConfig::default(),
    };
    let listener = bind(&cli.address)?;
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
        proc_root: cli.proc_root.clone(),
        ..SamplerOptions::default()
    };
    let skipped = collectors.skipped.clone();
    let source = collectors.source.clone();
    let sampling = Arc::new(Sampling::start(
        options,
        collectors,
        cli.interval(),
        !cli.no_hostname,
        Arc::clone(&published),
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
        published,
        web: Arc::clone(&web),
        stale_after: cli.stale_after(),
    });
    let reloader = Arc::new(Reloader {
        collectors: cli.collectors.clone(),
        web_config: cli.web_config_file.clone(),
        sampling: Arc::clone(&sampling),
        web: Arc::clone(&web),
        lock: Mutex::new(()),
    });

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
                    "{source}:{}: {} is not exported: {}",
                    s.line,
                    s.name,
                    s.reason
                );
            } else {
                tracing::debug!(
                    "{source}:{}: {} is not exported: {}",
                    s.line,
                    s.name,
                    s.reason
                );
            }
        }
        log_started(&cli, &sampling, &web.load(), local);

        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(server::serve(
            listener,
            app_state,
            usize::try_from(cli.max_connections).unwrap_or(256),
            stop_rx,
        ));
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let reloader = Arc::clone(&reloader);
                    tokio::task::spawn_blocking(move || reloader.reload());
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
        "algalon-exporter {} ({}): sampling {gpus} GPUs every {} ms through {} (NVML {nvml}, driver {driver}){}",
        env!("CARGO_PKG_VERSION"),
        env!("ALGALON_GIT_HASH"),
        cli.collect_interval_ms,
        sampling.nvml_library(),
        if cli.processes {
            ", per-process metrics on"
        } else {
            ""
        },
    );
    if let Some(auth) = &web.auth {
        tracing::info!("basic auth on: {auth:?}");
    }
    tracing::info!("listening on {}://{local}", web.scheme());
}

fn load_collectors(path: Option<&Path>) -> Result<CollectorConfig, StartError> {
    match path {
        Some(p) => Ok(CollectorConfig::from_path(p)?),
        None => Ok(CollectorConfig::default()),
    }
}

/// Binds `--address`: `:PORT` means every interface (IPv6 and IPv4 where
/// the host has IPv6, else IPv4), as in Go.
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

/// Re-reads the collectors CSV and web config on SIGHUP.
struct Reloader {
    collectors: Option<PathBuf>,
    web_config: Option<PathBuf>,
    sampling: Arc<Sampling>,
    web: Arc<ArcSwap<WebConfig>>,
    lock: Mutex<()>,
}

impl Reloader {
    fn reload(&self) {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        tracing::info!("SIGHUP: reloading configuration");
        if self.collectors.is_none() && self.web_config.is_none() {
            tracing::info!("nothing to reload: neither --collectors nor --web-config-file is set");
            return;
        }
        if let Some(path) = &self.collectors {
            match CollectorConfig::from_path(path) {
                Ok(config) => {
                    for s in &config.skipped {
                        tracing::warn!(
                            "{}:{}: {} is not exported: {}",
                            path.display(),
                            s.line,
                            s.name,
                            s.reason
                        );
                    }
                    let metrics = config.metrics.len();
                    match self.sampling.apply(config) {
                        Ok(()) => tracing::info!(
                            "collectors reloaded from {}: {metrics} metrics",
                            path.display()
                        ),
                        Err(e) => tracing::error!(
                            "collectors reload failed: {e}; the previous collectors keep serving"
                        ),
                    }
                }
                Err(e) => tracing::error!(
                    "collectors reload failed: {e}; the previous collectors keep serving"
                ),
            }
        }
        if let Some(path) = &self.web_config {
            match WebConfig::load(path) {
                Ok(config) => {
                    let scheme = config.scheme();
                    let auth = if config.auth.is_some() { "on" } else { "off" };
                    self.web.store(Arc::new(config));
                    tracing::info!(
                        "web config reloaded from {}: serving {scheme}, basic auth {auth}",
                        path.display()
                    );
                }
                Err(e) => tracing::error!(
                    "web config reload failed: {}; the previous web config keeps serving",
                    e.one_line()
                ),
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
