//! What Algalon's `--kubernetes` sees on this node: asks the kubelet's
//! pod-resources API (and, with `--apiserver-in-cluster`, the API server)
//! once and prints which pod and container hold each GPU device.
//!
//! ```sh
//! cargo run -p algalon-kubernetes --example pod_resources -- \
//!     --socket /var/lib/kubelet/pod-resources/kubelet.sock --virtual-gpus
//! ```
//!
//! With `--measure N` it times N `List` calls and map builds instead, runs
//! the background refresher for N refreshes, and prints the figures as JSON
//! (`benches/scripts/kubelet-pods.py` drives it against the stand-in).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use algalon_kubernetes::apiserver::InCluster;
use algalon_kubernetes::mapping::Device;
use algalon_kubernetes::podresources::DEFAULT_SOCKET;
use algalon_kubernetes::{
    GpuIdType, Kubernetes, LabelFilter, LabelStyle, MappingOptions, MetadataOptions, Options,
    PodMap, PodResourcesClient,
};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// The kubelet's pod-resources socket.
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// `uid` or `device-name`.
    #[arg(long, default_value = "uid", value_parser = GpuIdType::parse)]
    gpu_id_type: GpuIdType,
    /// Resource names counted besides nvidia.com/gpu and nvidia.com/mig-*.
    #[arg(long, value_delimiter = ',')]
    nvidia_resource_names: Vec<String>,
    /// One series per holder of a shared GPU.
    #[arg(long)]
    virtual_gpus: bool,
    /// Pod labels and UIDs from the API server, with this pod's service account.
    #[arg(long)]
    apiserver_in_cluster: bool,
    /// Pod labels and UIDs from this API server (`https://HOST:PORT`) …
    #[arg(long, requires_all = ["token", "ca"])]
    apiserver: Option<String>,
    /// … with this bearer token file …
    #[arg(long)]
    token: Option<PathBuf>,
    /// … and this CA bundle.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Pod labels kept (regular expressions on the key).
    #[arg(long, value_delimiter = ',')]
    pod_label_allowlist_regex: Vec<String>,
    /// Deadline of each call, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Time N Lists and map builds and N background refreshes; print JSON.
    #[arg(long, value_name = "N")]
    measure: Option<u32>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mapping = MappingOptions {
        gpu_id_type: args.gpu_id_type,
        resource_names: args.nvidia_resource_names.clone(),
        virtual_gpus: args.virtual_gpus,
    };
    let in_cluster = match (&args.apiserver, args.apiserver_in_cluster) {
        (Some(url), _) => Some(InCluster {
            base_url: url.clone(),
            token_file: args.token.clone().unwrap_or_default(),
            ca_file: args.ca.clone().unwrap_or_default(),
        }),
        (None, true) => Some(InCluster::from_env()?),
        (None, false) => None,
    };
    let metadata = match in_cluster {
        Some(c) => Some(MetadataOptions::new(
            c,
            Some(LabelFilter::new(&args.pod_label_allowlist_regex)?),
        )),
        None => None,
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    let options = Options {
        socket: args.socket.clone(),
        mapping: mapping.clone(),
        call_timeout: timeout,
        metadata,
        ..Options::new()
    };
    match args.measure {
        Some(n) => runtime.block_on(measure(options, n.max(1), &runtime)),
        None => runtime.block_on(show(options, &runtime)),
    }
}

async fn show(
    options: Options,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Box<dyn std::error::Error>> {
    let k8s = Kubernetes::start(options, runtime.handle())?;
    k8s.refreshed(1).await;
    let view = k8s.view();
    println!("{}", view.status.summary(Instant::now()));
    for hint in &view.status.hints {
        println!("hint: {hint}");
    }
    let mut devices: Vec<_> = view.map.devices().collect();
    devices.sort_by_key(|(d, _)| format!("{d:?}"));
    for (device, holders) in devices {
        let name = match device {
            Device::Gpu(id) => id.clone(),
            Device::Mig(id) => id.clone(),
            Device::GpuInstance { minor, gi } => format!("nvidia{minor}/gi{gi}"),
        };
        for h in holders {
            let labels: Vec<String> = h
                .labels(LabelStyle {
                    pod_uid: true,
                    old_names: false,
                })
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            println!("{name}\t{}", labels.join(","));
        }
    }
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn measure(
    options: Options,
    n: u32,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Box<dyn std::error::Error>> {
    let rss_start = rss_kib();
    // The List call alone, then building the map from its answer.
    let mut client = PodResourcesClient::new(&options.socket, options.call_timeout);
    let mut list_times = Vec::new();
    let mut build_times = Vec::new();
    let mut last = None;
    for _ in 0..n {
        let t = Instant::now();
        let list = client.list().await?;
        list_times.push(t.elapsed());
        let t = Instant::now();
        let map = PodMap::build(&list, options.mapping.clone(), |_, _| None);
        build_times.push(t.elapsed());
        last = Some((list, map));
    }
    let (list, map) = last.ok_or("no List")?;
    let pods = list.pod_resources.len();
    let held = map.held_devices();
    let answer_bytes = prost::Message::encoded_len(&list);
    drop((client, list, map));
    list_times.sort();
    build_times.sort();

    // The refresher as the exporter runs it, with the API server's
    // metadata when given, back to back.
    let rss_before = rss_kib();
    let k8s = Kubernetes::start(
        Options {
            interval: Duration::from_millis(10),
            ..options
        },
        runtime.handle(),
    )?;
    let t = Instant::now();
    k8s.refreshed(1).await;
    let first = t.elapsed();
    let rss_first = rss_kib();
    let t = Instant::now();
    k8s.refreshed(u64::from(n) + 1).await;
    let per_refresh = t.elapsed() / n;
    let rss_after = rss_kib();
    let view = k8s.view();
    let labelled = view
        .map
        .pods()
        .iter()
        .filter(|p| !p.labels.is_empty())
        .count();
    let report = serde_json::json!({
        "pods": pods,
        "held_devices": held,
        "list_answer_bytes": answer_bytes,
        "list_ms": {"p50": percentile(&list_times, 0.5), "p95": percentile(&list_times, 0.95), "max": percentile(&list_times, 1.0)},
        "build_ms": {"p50": percentile(&build_times, 0.5), "p95": percentile(&build_times, 0.95), "max": percentile(&build_times, 1.0)},
        "refresher": {
            "first_refresh_ms": first.as_secs_f64() * 1000.0,
            "refresh_ms": per_refresh.as_secs_f64() * 1000.0,
            "pods_with_labels": labelled,
            "status": view.status.summary(Instant::now()),
        },
        "rss_kib": {"start": rss_start, "before_refresher": rss_before, "after_first_refresh": rss_first, "after_all": rss_after},
        "refreshes": n,
    });
    println!("{report}");
    Ok(())
}
