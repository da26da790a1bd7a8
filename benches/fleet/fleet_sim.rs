//! A fleet of GPU workers in one process, for measuring one VMAgent and one
//! VictoriaMetrics at fleet scale (`benches/fleet/fleet.py`, BENCHMARKS.md).
//!
//! Each worker is an 8-GPU node with its own listener (`127.77.X.Y:PORT`, one
//! loopback address per worker, so VMAgent sees distinct `instance`s) serving
//! `/metrics` as algalon-exporter does: a pre-encoded Prometheus text body and
//! its gzip twin (level 6 by default, the exporter's). The bodies come from Algalon's own
//! encoder over one real snapshot of the fake NVML (`ALGALON_FAKE_NVML_SCENARIO`,
//! `compose/worker/collectors.csv`, processes on). Every interval each worker's
//! readings move (gauges jitter around the snapshot's, counters rise) and its
//! body is encoded and compressed again; workers are spread over the interval
//! like independent exporters.
//!
//! Control on stdin, one command a line; every answer is one JSON line on stdout:
//!
//! ```text
//! workers N   serve N workers (listeners 0..N) and write the targets file
//! stats       scrapes served, encodes done, late encodes
//! ```

use std::collections::HashSet;
use std::convert::Infallible;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use algalon_core::{
    CollectorConfig, Encoder, Field, Format, Kind, Sampler, SamplerOptions, Snapshot, Value,
};
use arc_swap::ArcSwap;
use bytes::Bytes;
use clap::Parser;
use flate2::Compression;
use flate2::write::GzEncoder;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

/// Gauges that move from sample to sample on a busy GPU; the rest (limits,
/// totals, link widths, P-state) stay as the snapshot has them.
const LIVE_GAUGES: &[&str] = &[
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_PCIE_TX_THROUGHPUT",
    "DCGM_FI_DEV_PCIE_RX_THROUGHPUT",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_FAN_SPEED",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_SM_ACTIVE",
    "DCGM_FI_PROF_SM_OCCUPANCY",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "DCGM_FI_PROF_DRAM_ACTIVE",
    "DCGM_FI_PROF_PIPE_FP64_ACTIVE",
    "DCGM_FI_PROF_PIPE_FP32_ACTIVE",
    "DCGM_FI_PROF_PIPE_FP16_ACTIVE",
    "DCGM_FI_PROF_PCIE_TX_BYTES",
    "DCGM_FI_PROF_PCIE_RX_BYTES",
];

#[derive(Debug, Parser)]
#[command(about = "Many simulated 8-GPU algalon-exporters in one process (benches/fleet)")]
struct Args {
    /// Listeners to bind (the most workers a later `workers N` may ask for).
    #[arg(long)]
    max_workers: usize,
    /// Workers served from the start.
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Loopback block of the workers' addresses: 250 workers per /24 from
    /// base + 1.1 on (127.77.1.1 … 127.77.1.250, 127.77.2.1, …).
    #[arg(long, default_value = "127.77.0.0")]
    base_ip: Ipv4Addr,
    /// Port every worker listens on; 0 picks one free on the first address.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Milliseconds between two samples of a worker (algalon-exporter's default).
    #[arg(long, default_value_t = 5000)]
    interval_ms: u64,
    /// Collectors file of the workers.
    #[arg(long, default_value = "compose/worker/collectors.csv")]
    collectors: PathBuf,
    /// NVML library the template snapshot is taken through.
    #[arg(
        long,
        env = "ALGALON_TEST_NVML_LIB",
        default_value = "target/fake-nvml/libnvidia-ml.so.1"
    )]
    nvml_lib: PathBuf,
    /// VMAgent file_sd targets file, rewritten (atomically) on every `workers N`.
    #[arg(long)]
    targets_file: PathBuf,
    /// `cluster` label of the targets file's group.
    #[arg(long, default_value = "fleet-sim")]
    cluster: String,
    /// gzip level of the compressed bodies: 6 is algalon-exporter's; a lower
    /// one leaves more of a shared machine's CPU to the scraper and database
    /// (vmagent decompresses either in about the same time).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    gzip_level: u32,
    /// Threads serving HTTP.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// What the listeners serve for one worker.
struct Bodies {
    plain: Bytes,
    gzip: Bytes,
}

struct Shared {
    bodies: Vec<ArcSwap<Option<Bodies>>>,
    scrapes: Vec<AtomicU64>,
}

/// splitmix64: a worker's own reproducible stream of jitter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One simulated node: its snapshot (moved every interval) and jitter stream.
struct Worker {
    snapshot: Snapshot,
    rng: Rng,
    due: Instant,
}

struct Template {
    snapshot: Snapshot,
    live: Vec<Field>,
    counters: Vec<Field>,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("fleet-sim: {msg}");
    std::process::exit(2)
}

fn worker_addr(base: Ipv4Addr, i: usize, port: u16) -> SocketAddr {
    let n = u32::from(base) + 256 + (i as u32 / 250) * 256 + (i as u32 % 250) + 1;
    SocketAddr::from((Ipv4Addr::from(n), port))
}

fn template(args: &Args, config: &CollectorConfig) -> Template {
    if std::env::var_os("ALGALON_FAKE_NVML_SCENARIO").is_none() {
        fail(
            "ALGALON_FAKE_NVML_SCENARIO is not set: point it at a scenario, e.g. testing/scenarios/h100x8.json",
        );
    }
    if !args.nvml_lib.exists() {
        fail(format!(
            "{}: no such NVML library; run `make fake-nvml` or pass --nvml-lib",
            args.nvml_lib.display()
        ));
    }
    let mut sampler = Sampler::new(SamplerOptions {
        nvml_lib: Some(args.nvml_lib.clone()),
        processes: true,
        xid_events: false,
        hostname: Some("template".into()),
        ..SamplerOptions::default().with_collectors(config)
    })
    .unwrap_or_else(|e| fail(format!("sampler on {}: {e}", args.nvml_lib.display())));
    // The first sample has no GPM interval yet; the second is complete.
    sampler.sample();
    let snapshot = sampler.sample();
    if snapshot.gpus.is_empty() {
        fail("the scenario has no GPUs");
    }
    let live = LIVE_GAUGES
        .iter()
        .map(|n| Field::from_name(n).unwrap_or_else(|| fail(format!("unknown field {n}"))))
        .collect();
    let counters = Field::all()
        .filter(|f| f.def().kind == Kind::Counter)
        .collect();
    Template {
        snapshot,
        live,
        counters,
    }
}

/// Worker i's node: the template with its own host name and GPU UUIDs.
fn new_worker(t: &Template, i: usize, interval: Duration, now: Instant) -> Worker {
    let mut snapshot = t.snapshot.clone();
    snapshot.hostname = format!("gpu-node-{i:05}");
    for gpu in &mut snapshot.gpus {
        let prefix = gpu.uuid.rsplit_once('-').map_or("GPU-0", |(p, _)| p);
        gpu.uuid = format!("{prefix}-{:012x}", i * 64 + gpu.index as usize);
    }
    // Exporters start at arbitrary moments: spread the workers over the
    // interval (golden-ratio sequence) so that encodes do not come in bursts.
    let phase = (i as f64 * 0.618_033_988_75).fract();
    Worker {
        snapshot,
        rng: Rng(0x5eed_0000 + i as u64),
        due: now + interval.mul_f64(phase),
    }
}

/// The next sample of a worker: gauges within ±10 % of the template's reading
/// (percentages and ratios kept in range, free memory following used), counters up.
fn advance(w: &mut Worker, t: &Template, interval: Duration) {
    for (gpu, base) in w.snapshot.gpus.iter_mut().zip(&t.snapshot.gpus) {
        for &f in &t.live {
            let Some(v) = base.get(f) else { continue };
            let x = v.as_f64() * (0.9 + 0.2 * w.rng.unit());
            let x = match f.def().unit {
                "%" => x.min(100.0),
                "ratio" => x.min(1.0),
                _ => x,
            };
            gpu.set(
                f,
                Some(match v {
                    Value::Int(_) => Value::Int(x.round() as u64),
                    Value::Float(_) => Value::Float(x),
                }),
            );
        }
        if let (Some(Value::Int(total)), Some(Value::Int(used)), Some(Value::Int(reserved))) = (
            gpu.get(Field::FbTotal),
            gpu.get(Field::FbUsed),
            gpu.get(Field::FbReserved),
        ) {
            let used = used.min(total.saturating_sub(reserved));
            gpu.set(Field::FbUsed, Some(Value::Int(used)));
            gpu.set(
                Field::FbFree,
                Some(Value::Int(total.saturating_sub(reserved + used))),
            );
        }
        for &f in &t.counters {
            let Some(v) = gpu.get(f) else { continue };
            let Some(Value::Int(b)) = base.get(f) else {
                continue;
            };
            // A counter that was 0 (ECC errors, XIDs) stays 0; one that runs
            // (energy, violation time, PCIe/NVLink bytes) rises by up to 0.1 %
            // of its starting value per interval.
            if b == 0 {
                continue;
            }
            let step = ((b as f64 * 1e-3 * w.rng.unit()) as u64).max(1);
            if let Value::Int(cur) = v {
                gpu.set(f, Some(Value::Int(cur.saturating_add(step))));
            }
        }
    }
    w.snapshot.taken_at = SystemTime::now();
    w.snapshot.seq += 1;
    w.snapshot.duration = Duration::from_millis(3);
    w.due += interval;
}

fn encode(encoder: &Encoder, snapshot: &Snapshot, level: u32) -> (Bodies, usize) {
    let text = encoder.encode(&Arc::new(snapshot.clone()), Format::PrometheusText);
    let samples = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let mut gz = GzEncoder::new(Vec::with_capacity(text.len() / 8), Compression::new(level));
    gz.write_all(text.as_bytes())
        .unwrap_or_else(|e| fail(format!("gzip: {e}")));
    let gzip = gz.finish().unwrap_or_else(|e| fail(format!("gzip: {e}")));
    (
        Bodies {
            plain: Bytes::from(text),
            gzip: Bytes::from(gzip),
        },
        samples,
    )
}

fn write_targets(path: &Path, cluster: &str, addrs: &[SocketAddr]) {
    let mut doc = format!("- labels: {{cluster: {cluster}}}\n  targets:\n");
    if addrs.is_empty() {
        doc = String::from("[]\n");
    }
    for a in addrs {
        doc.push_str(&format!("    - {a}\n"));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc)
        .and_then(|()| std::fs::rename(&tmp, path))
        .unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
}

enum Command {
    Workers(usize),
    Stats,
}

fn read_commands(tx: mpsc::Sender<Command>) {
    for (lineno, line) in std::io::stdin().lock().lines().enumerate() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let cmd = match words.as_slice() {
            ["workers", n] => match n.parse() {
                Ok(n) => Command::Workers(n),
                Err(_) => {
                    eprintln!(
                        "fleet-sim: stdin line {}: `{line}`: N is not a number",
                        lineno + 1
                    );
                    continue;
                }
            },
            ["stats"] => Command::Stats,
            [] => continue,
            _ => {
                eprintln!(
                    "fleet-sim: stdin line {}: unknown command `{line}` (workers N | stats)",
                    lineno + 1
                );
                continue;
            }
        };
        if tx.send(cmd).is_err() {
            break;
        }
    }
    // stdin closed: the driver is gone, so is the fleet.
    std::process::exit(0)
}

fn say(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// Samples and encodes every active worker on its own schedule; answers the commands.
fn run_fleet(
    args: &Args,
    addrs: &[SocketAddr],
    shared: &Shared,
    commands: &mpsc::Receiver<Command>,
) -> ! {
    let config = CollectorConfig::from_path(&args.collectors)
        .unwrap_or_else(|e| fail(format!("{}: {e}", args.collectors.display())));
    let t = template(args, &config);
    let encoder = Encoder::new(config);
    let interval = Duration::from_millis(args.interval_ms);
    let mut workers: Vec<Worker> = Vec::new();
    let mut samples: Vec<usize> = Vec::new();
    let mut encodes = 0u64;
    let mut late = 0u64;
    let mut pending = vec![Command::Workers(args.workers)];
    loop {
        for cmd in pending.drain(..) {
            match cmd {
                Command::Workers(n) if n > addrs.len() => eprintln!(
                    "fleet-sim: workers {n}: only {} listeners (--max-workers)",
                    addrs.len()
                ),
                Command::Workers(n) => {
                    let now = Instant::now();
                    while workers.len() < n {
                        let i = workers.len();
                        let mut w = new_worker(&t, i, interval, now);
                        let due = w.due;
                        advance(&mut w, &t, interval);
                        w.due = due;
                        let (bodies, count) = encode(&encoder, &w.snapshot, args.gzip_level);
                        shared.bodies[i].store(Arc::new(Some(bodies)));
                        samples.push(count);
                        workers.push(w);
                    }
                    workers.truncate(n);
                    samples.truncate(n);
                    for b in &shared.bodies[n..] {
                        b.store(Arc::new(None));
                    }
                    write_targets(&args.targets_file, &args.cluster, &addrs[..n]);
                    say(json!({
                        "workers": n,
                        "gpus": n * t.snapshot.gpus.len(),
                        "gpus_per_worker": t.snapshot.gpus.len(),
                        "samples_per_scrape": samples.iter().sum::<usize>(),
                        "body_bytes": shared.bodies.first().map(|b| b.load().as_ref().as_ref().map_or(0, |b| b.plain.len())),
                        "gzip_bytes": shared.bodies.first().map(|b| b.load().as_ref().as_ref().map_or(0, |b| b.gzip.len())),
                        "targets_file": args.targets_file,
                        "first": addrs.first(),
                    }));
                }
                Command::Stats => {
                    let served: Vec<u64> = shared.scrapes[..workers.len()]
                        .iter()
                        .map(|s| s.load(Ordering::Relaxed))
                        .collect();
                    say(json!({
                        "scrapes": served.iter().sum::<u64>(),
                        "scrapes_min": served.iter().min(),
                        "scrapes_max": served.iter().max(),
                        "encodes": encodes,
                        "late": late,
                    }));
                }
            }
        }
        let now = Instant::now();
        for (i, w) in workers.iter_mut().enumerate() {
            if w.due > now {
                continue;
            }
            if now - w.due > interval {
                // Fell a whole interval behind (the machine is saturated):
                // count it and re-phase instead of encoding in a burst.
                late += 1;
                w.due = now;
            }
            advance(w, &t, interval);
            let (bodies, _) = encode(&encoder, &w.snapshot, args.gzip_level);
            shared.bodies[i].store(Arc::new(Some(bodies)));
            encodes += 1;
        }
        match commands.recv_timeout(Duration::from_millis(20)) {
            Ok(cmd) => pending.push(cmd),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::process::exit(0),
        }
    }
}

async fn serve(shared: Arc<Shared>, i: usize, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    if req.uri().path() != "/metrics" {
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    }
    let current = shared.bodies[i].load();
    let Some(bodies) = current.as_ref() else {
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return resp;
    };
    shared.scrapes[i].fetch_add(1, Ordering::Relaxed);
    let gzip = req
        .headers()
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(Format::PrometheusText.content_type()),
    );
    if gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        *resp.body_mut() = Full::new(bodies.gzip.clone());
    } else {
        *resp.body_mut() = Full::new(bodies.plain.clone());
    }
    resp
}

fn bind(args: &Args) -> (Vec<StdListener>, Vec<SocketAddr>) {
    let first = worker_addr(args.base_ip, 0, args.port);
    let l0 = StdListener::bind(first).unwrap_or_else(|e| fail(format!("bind {first}: {e}")));
    let port = l0
        .local_addr()
        .unwrap_or_else(|e| fail(format!("{first}: {e}")))
        .port();
    let mut listeners = vec![l0];
    for i in 1..args.max_workers {
        let a = worker_addr(args.base_ip, i, port);
        listeners.push(StdListener::bind(a).unwrap_or_else(|e| {
            fail(format!(
                "bind {a}: {e} (each worker needs a descriptor: raise `ulimit -n`)"
            ))
        }));
    }
    let addrs: Vec<SocketAddr> = (0..args.max_workers)
        .map(|i| worker_addr(args.base_ip, i, port))
        .collect();
    debug_assert_eq!(addrs.iter().collect::<HashSet<_>>().len(), addrs.len());
    (listeners, addrs)
}

fn main() {
    let args = Args::parse();
    if args.max_workers == 0 || args.max_workers > 250 * 250 {
        fail("--max-workers must be 1..=62500");
    }
    if args.workers > args.max_workers {
        fail("--workers must be at most --max-workers");
    }
    let (listeners, addrs) = bind(&args);
    let shared = Arc::new(Shared {
        bodies: (0..args.max_workers)
            .map(|_| ArcSwap::from_pointee(None))
            .collect(),
        scrapes: (0..args.max_workers).map(|_| AtomicU64::new(0)).collect(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("tokio runtime: {e}")));
    for (i, l) in listeners.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        runtime.spawn(async move {
            l.set_nonblocking(true)
                .unwrap_or_else(|e| fail(format!("listener {i}: {e}")));
            let l = tokio::net::TcpListener::from_std(l)
                .unwrap_or_else(|e| fail(format!("listener {i}: {e}")));
            loop {
                let Ok((stream, _)) = l.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(serve(shared, i, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || read_commands(tx));
    run_fleet(&args, &addrs, &shared, &rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use algalon_core::GpuSample;

    fn template() -> Template {
        let mut gpu = GpuSample::new(
            0,
            "GPU-5e4b2a3c-9d1f-4c7e-8a6b-1f2e3d4c5b60".into(),
            "00000000:18:00.0".into(),
            "NVIDIA H100 80GB HBM3".into(),
        );
        gpu.set(Field::GpuUtil, Some(Value::Int(97)));
        gpu.set(Field::FbTotal, Some(Value::Int(81559)));
        gpu.set(Field::FbReserved, Some(Value::Int(549)));
        gpu.set(Field::FbUsed, Some(Value::Int(80000)));
        gpu.set(Field::FbFree, Some(Value::Int(1010)));
        gpu.set(Field::PowerUsage, Some(Value::Float(650.0)));
        gpu.set(Field::TotalEnergyConsumption, Some(Value::Int(1_000_000)));
        gpu.set(Field::EccDbeVolTotal, Some(Value::Int(0)));
        let snapshot = Snapshot {
            hostname: "template".into(),
            driver_version: None,
            nvml_version: None,
            cuda_driver_version: None,
            taken_at: SystemTime::now(),
            duration: Duration::ZERO,
            seq: 1,
            gpus: vec![gpu],
            errors: Vec::new(),
        };
        Template {
            snapshot,
            live: LIVE_GAUGES
                .iter()
                .filter_map(|n| Field::from_name(n))
                .collect(),
            counters: Field::all()
                .filter(|f| f.def().kind == Kind::Counter)
                .collect(),
        }
    }

    #[test]
    fn readings_move_within_their_ranges_and_counters_only_rise() {
        let t = template();
        let interval = Duration::from_secs(5);
        let mut w = new_worker(&t, 7, interval, Instant::now());
        assert_eq!(w.snapshot.hostname, "gpu-node-00007");
        assert_eq!(
            w.snapshot.gpus[0].uuid,
            "GPU-5e4b2a3c-9d1f-4c7e-8a6b-0000000001c0"
        );
        let mut energy = 1_000_000;
        let mut powers = HashSet::new();
        for _ in 0..200 {
            advance(&mut w, &t, interval);
            let g = &w.snapshot.gpus[0];
            let util = g.get_f64(Field::GpuUtil).expect("util");
            assert!((87.0..=100.0).contains(&util), "utilization {util}");
            let power = g.get_f64(Field::PowerUsage).expect("power");
            assert!((585.0..=715.0).contains(&power), "power {power}");
            powers.insert(power.to_bits());
            let [used, free, reserved, total] = [
                Field::FbUsed,
                Field::FbFree,
                Field::FbReserved,
                Field::FbTotal,
            ]
            .map(|f| g.get_f64(f).expect("memory field"));
            assert_eq!(used + free + reserved, total);
            let e = match g.get(Field::TotalEnergyConsumption) {
                Some(Value::Int(e)) => e,
                other => panic!("energy {other:?}"),
            };
            assert!(e > energy, "energy counter went from {energy} to {e}");
            energy = e;
            assert_eq!(g.get(Field::EccDbeVolTotal), Some(Value::Int(0)));
        }
        assert!(powers.len() > 100, "readings barely move: {}", powers.len());
        assert_eq!(w.snapshot.seq, 201);
    }

    #[test]
    fn workers_get_distinct_loopback_addresses() {
        let base = Ipv4Addr::new(127, 77, 0, 0);
        let addrs: HashSet<_> = (0..10_000).map(|i| worker_addr(base, i, 9400)).collect();
        assert_eq!(addrs.len(), 10_000);
        assert_eq!(worker_addr(base, 0, 9400).to_string(), "127.77.1.1:9400");
        assert_eq!(worker_addr(base, 250, 9400).to_string(), "127.77.2.1:9400");
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn a_body_is_the_encoders_text_and_its_gzip() {
        let t = template();
        let encoder = Encoder::new(CollectorConfig::default());
        let (bodies, samples) = encode(&encoder, &t.snapshot, 6);
        let text = std::str::from_utf8(&bodies.plain).expect("utf-8");
        assert!(text.contains("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\""), "{text}");
        assert!(samples > 5, "{samples} samples");
        let mut plain = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&bodies.gzip[..]),
            &mut plain,
        )
        .expect("gunzip");
        assert_eq!(plain, text);
    }
}
