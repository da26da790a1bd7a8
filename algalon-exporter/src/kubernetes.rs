//! `--kubernetes`: dcgm-exporter's pod attribution, from the kubelet's
//! pod-resources API through `algalon-kubernetes`' background refresher.
//!
//! The refresher runs on its own thread and runtime and publishes a
//! [`algalon_kubernetes::PodMap`] every sampling interval; the sampler's
//! encoder reads the latest one through [`PodLabels`], a
//! [`crate::sampling::Labeller`], which turns it into the core's generic
//! per-GPU label sets and per-process labels. The kubelet is never on the
//! scrape path: a scrape serves the body encoded after the last sample.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use algalon_core::{Extras, LabelSet, Snapshot};
use algalon_kubernetes::apiserver::InCluster;
use algalon_kubernetes::{
    GpuIdType, GpuRef, Kubernetes, LabelFilter, LabelStyle, MappingOptions, MetadataOptions,
    MigRef, Options,
};

use crate::cli;
use crate::error::StartError;

/// The pod labels of GPU and process series, from the running refresher.
pub struct PodLabels {
    k8s: Kubernetes,
    style: LabelStyle,
    /// Keeps the refresher's runtime alive.
    _runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for PodLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLabels").finish_non_exhaustive()
    }
}

impl PodLabels {
    /// Starts the refresher for `--kubernetes` and its options; `None`
    /// without `--kubernetes`.
    pub fn start(cli: &cli::Cli) -> Result<Option<Arc<PodLabels>>, StartError> {
        let k = &cli.kubernetes;
        if !k.enabled {
            return Ok(None);
        }
        let mut options = Options::new();
        options.socket = k.pod_resources_kubelet_socket.clone();
        options.interval = cli.interval();
        options.pod_logs_dir = k.pod_logs_dir.is_dir().then(|| k.pod_logs_dir.clone());
        options.mapping = MappingOptions {
            gpu_id_type: match k.gpu_id_type {
                cli::GpuIdType::Uid => GpuIdType::Uid,
                cli::GpuIdType::DeviceName => GpuIdType::DeviceName,
            },
            resource_names: k.nvidia_resource_names.clone(),
            virtual_gpus: k.virtual_gpus,
        };
        if k.enable_pod_labels || k.enable_pod_uid {
            let labels = if k.enable_pod_labels {
                Some(
                    // A pattern that does not compile is skipped, as
                    // dcgm-exporter skips it (compat.rs logs the warning).
                    LabelFilter::new(&compiling(&k.pod_label_allowlist_regex)).map_err(|e| {
                        StartError::Kubernetes(format!(
                            "--kubernetes-pod-label-allowlist-regex: {e}"
                        ))
                    })?,
                )
            } else {
                None
            };
            let in_cluster =
                InCluster::from_parts(|name| std::env::var(name).ok(), &k.service_account_dir);
            match in_cluster {
                Ok(in_cluster) => options.metadata = Some(MetadataOptions::new(in_cluster, labels)),
                // dcgm-exporter reads pod UIDs and labels from the API server
                // only inside a cluster; outside one the series keep their
                // pod, namespace and container labels.
                Err(e) => tracing::warn!(
                    "--kubernetes-enable-pod-labels/-uid: no API server ({e}); pod labels and UIDs are left out"
                ),
            }
        }
        // Its own runtime and worker thread: the kubelet's calls never share
        // a thread with the HTTP server or the sampler.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .enable_all()
            .thread_name("algalon-kubernetes")
            .build()
            .map_err(|e| StartError::Kubernetes(format!("its runtime: {e}")))?;
        let k8s = Kubernetes::start(options, runtime.handle())
            .map_err(|e| StartError::Kubernetes(e.to_string()))?;
        Ok(Some(Arc::new(PodLabels {
            k8s,
            style: LabelStyle {
                pod_uid: k.enable_pod_uid,
                old_names: cli.use_old_namespace,
            },
            _runtime: runtime,
        })))
    }

    /// `algalon_kubernetes_up` and the `/health` line.
    pub fn status(&self) -> (bool, String) {
        let view = self.k8s.view();
        (view.status.up(), view.status.summary(Instant::now()))
    }
}

/// Label names a pod label may not take: the GPU series' own.
const RESERVED: &[&str] = &[
    "gpu",
    "UUID",
    "uuid",
    "pci_bus_id",
    "device",
    "modelName",
    "Hostname",
    "hostname",
    "hpc_job",
    "err_code",
    "err_msg",
];

fn owned(labels: Vec<(std::borrow::Cow<'static, str>, &str)>) -> LabelSet {
    labels
        .into_iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.to_owned()))
        .collect()
}

impl crate::sampling::Labeller for PodLabels {
    fn label(&self, snapshot: &Snapshot, extras: &mut Extras) {
        let map = self.k8s.map();
        let mut sets: BTreeMap<u32, Vec<LabelSet>> = BTreeMap::new();
        let mut processes: BTreeMap<u32, LabelSet> = BTreeMap::new();
        let mut instances: BTreeMap<(u32, u32), Vec<LabelSet>> = BTreeMap::new();
        for gpu in &snapshot.gpus {
            let at = GpuRef {
                uuid: &gpu.uuid,
                minor_number: gpu.minor_number,
            };
            let holders = map.gpu_series(at);
            if !holders.is_empty() {
                sets.insert(
                    gpu.index,
                    holders
                        .iter()
                        .map(|a| owned(a.labels(self.style)))
                        .collect(),
                );
            }
            // MIG devices (`MIG-…` ids, or GKE's `nvidiaN/giM`) label the
            // series of their instance (`-d g+i`).
            for m in &gpu.mig {
                let Some(gi) = m.gpu_instance_id else {
                    continue;
                };
                let mig = MigRef {
                    uuid: Some(&m.uuid),
                    gpu_instance_id: gi,
                };
                let holders = map.mig_series(at, mig);
                if !holders.is_empty() {
                    instances.insert(
                        (gpu.index, gi),
                        holders
                            .iter()
                            .map(|a| owned(a.labels(self.style)))
                            .collect(),
                    );
                }
            }
            let mig_uuids: Vec<&str> = gpu.mig.iter().map(|m| m.uuid.as_str()).collect();
            for p in &gpu.processes {
                let Some(uid) = p.identity.pod_uid.as_deref() else {
                    continue;
                };
                if let Some(holder) = map.process_holder(at, &mig_uuids, uid) {
                    // The process series already carry `pod_uid`.
                    let labels = holder.labels(LabelStyle {
                        pod_uid: false,
                        ..self.style
                    });
                    processes.insert(p.pid, owned(labels));
                } else if let Some(pod) = map.pod_by_uid(uid) {
                    processes.insert(
                        p.pid,
                        vec![
                            ("pod".into(), pod.name.clone()),
                            ("namespace".into(), pod.namespace.clone()),
                        ],
                    );
                }
            }
        }
        extras.gpu_label_sets = sets;
        extras.process_labels = processes;
        extras.instance_label_sets = instances;
    }
}

/// `algalon_kubernetes_up`: 1 while the last pod-resources `List` succeeded.
pub fn up_series(up: bool) -> String {
    format!(
        "# HELP algalon_kubernetes_up Whether the kubelet's pod-resources API answered the last List (1) or not (0): GPU series then carry no pod labels.\n# TYPE algalon_kubernetes_up gauge\nalgalon_kubernetes_up {}\n",
        u8::from(up)
    )
}

fn compiling(patterns: &[String]) -> Vec<&str> {
    patterns
        .iter()
        .map(String::as_str)
        .filter(|p| regex::Regex::new(p).is_ok())
        .collect()
}
