//! The background refresher: every interval, on its own task, `List` the
//! kubelet's pod resources (and the API server's metadata of pods not seen
//! before), build a [`PodMap`] and publish it behind an [`ArcSwap`]. A
//! scrape, or the sampler's encoder, only loads the latest one: the kubelet
//! is never on the scrape path, however slow it is.
//!
//! # When the kubelet does not answer
//!
//! The socket missing, permission denied, nothing listening (the kubelet
//! restarting) or no answer within the deadline: the state turns
//! [`State::Down`] at once (`algalon_kubernetes_up 0`), with one warning log
//! per change of state, not per refresh. The last good map is kept for
//! [`Options::keep_last_good_for`] (30 s by default): while the kubelet is
//! down no pod can start or stop on the node, so for a restart, which takes
//! a few seconds, the old map is still right, and the series keep their pod
//! labels instead of flapping. After that it is dropped: stale pod labels
//! are worse than none, because they would charge a GPU to a pod that may
//! have left it. dcgm-exporter, which asks the kubelet during each scrape,
//! drops them at the first failure and makes the scrape wait for the
//! answer.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::apiserver::{ApiError, ApiServer, InCluster};
use crate::labels::LabelFilter;
use crate::mapping::{Device, GpuIdType, MappingOptions, PodMap, PodMetadata, parse_device_id};
use crate::pb::v1::ListPodResourcesResponse;
use crate::podresources::{CallError, DEFAULT_SOCKET, PodResourcesClient};
use crate::{Error, podlogs};

/// First and longest pause after the API server fails.
const METADATA_BACKOFF_MIN: Duration = Duration::from_secs(10);
const METADATA_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What the refresher does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The kubelet's pod-resources socket (`--pod-resources-kubelet-socket`).
    pub socket: PathBuf,
    /// How device ids are matched.
    pub mapping: MappingOptions,
    /// Time between two refreshes (from the start of one to the start of
    /// the next; a slow one delays the next rather than overlapping it).
    pub interval: Duration,
    /// Deadline of each kubelet and API server call.
    pub call_timeout: Duration,
    /// How long the last good map keeps serving after the kubelet stops
    /// answering.
    pub keep_last_good_for: Duration,
    /// Where pod log directories give pod UIDs (`/var/log/pods`), if mounted.
    pub pod_logs_dir: Option<PathBuf>,
    /// Pod UIDs and labels from the API server.
    pub metadata: Option<MetadataOptions>,
}

impl Options {
    /// Defaults: dcgm-exporter's socket, GPU UUIDs, a refresh every 5 s
    /// (Algalon's sampling interval), dcgm-exporter's 10 s deadline, the
    /// last good map kept 30 s, no pod logs, no API server.
    pub fn new() -> Options {
        Options {
            socket: PathBuf::from(DEFAULT_SOCKET),
            mapping: MappingOptions::default(),
            interval: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            keep_last_good_for: Duration::from_secs(30),
            pod_logs_dir: None,
            metadata: None,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

/// Pod metadata from the API server.
#[derive(Debug, Clone)]
pub struct MetadataOptions {
    /// Where the API server is.
    pub in_cluster: InCluster,
    /// Which pod labels to keep; `None`: read UIDs only.
    pub labels: Option<LabelFilter>,
    /// A pod's metadata is read again after this long (labels can change).
    pub refetch_after: Duration,
    /// Most requests in flight at once.
    pub concurrency: usize,
}

impl MetadataOptions {
    /// Pod labels through `filter` (and UIDs), re-read every 5 minutes,
    /// at most 8 requests at once.
    pub fn new(in_cluster: InCluster, labels: Option<LabelFilter>) -> MetadataOptions {
        MetadataOptions {
            in_cluster,
            labels,
            refetch_after: Duration::from_secs(300),
            concurrency: 8,
        }
    }
}

/// Whether the kubelet answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No refresh has finished yet.
    Starting,
    /// The last `List` succeeded.
    Up,
    /// The last `List` failed, and why.
    Down(CallError),
}

/// Which map is being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// None yet, or dropped: series carry no pod labels.
    Nothing,
    /// From the last refresh.
    Fresh,
    /// From an earlier refresh, kept while the kubelet is down.
    Kept,
}

/// Whether the API server gives pod metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataState {
    /// Not asked for.
    Off,
    /// Every pod asked about was answered (or is gone).
    Up,
    /// The last failure.
    Failing(ApiError),
}

/// What `/health` and `algalon_kubernetes_up` report.
#[derive(Debug, Clone)]
pub struct Status {
    /// The kubelet's state.
    pub state: State,
    /// When it entered that state.
    pub since: Instant,
    /// When a `List` last succeeded.
    pub last_success: Option<Instant>,
    /// How long the last successful `List` took.
    pub last_list: Option<Duration>,
    /// Which map is served.
    pub serving: Serving,
    /// Pods in the served map.
    pub pods: usize,
    /// Devices held by a container in the served map.
    pub held_devices: usize,
    /// The API server's state.
    pub metadata: MetadataState,
    /// Refreshes finished, successful or not.
    pub refreshes: u64,
    /// Hints from comparing the kubelet's allocatable devices with the
    /// options (e.g. device names while `--kubernetes-gpu-id-type uid`).
    pub hints: Vec<String>,
}

impl Status {
    fn starting() -> Status {
        Status {
            state: State::Starting,
            since: Instant::now(),
            last_success: None,
            last_list: None,
            serving: Serving::Nothing,
            pods: 0,
            held_devices: 0,
            metadata: MetadataState::Off,
            refreshes: 0,
            hints: Vec::new(),
        }
    }

    /// `algalon_kubernetes_up`: the last `List` succeeded.
    pub fn up(&self) -> bool {
        self.state == State::Up
    }

    /// One line for `/health` and logs.
    pub fn summary(&self, now: Instant) -> String {
        let ago = |t: Instant| now.saturating_duration_since(t).as_secs_f64();
        let mut text = match &self.state {
            State::Starting => "kubernetes: waiting for the first pod-resources answer".to_owned(),
            State::Up => format!(
                "kubernetes: up, {} pods, {} GPU devices held (List took {:.0} ms)",
                self.pods,
                self.held_devices,
                self.last_list.map_or(0.0, |d| d.as_secs_f64() * 1000.0)
            ),
            State::Down(e) => {
                let serving = match (self.serving, self.last_success) {
                    (Serving::Kept, Some(t)) => {
                        format!("pod labels kept from {:.0} s ago", ago(t))
                    }
                    _ => "no pod labels".to_owned(),
                };
                format!(
                    "kubernetes: pod-resources down for {:.0} s: {e}; {serving}",
                    ago(self.since)
                )
            }
        };
        if let MetadataState::Failing(e) = &self.metadata {
            text.push_str(&format!("; pod metadata: {e}"));
        }
        text
    }
}

/// The latest map with the status it was published with.
#[derive(Debug, Clone)]
pub struct View {
    /// Device → holders.
    pub map: Arc<PodMap>,
    /// The refresher's state.
    pub status: Status,
}

/// The running refresher: read the latest [`View`] with [`Kubernetes::view`].
/// Dropping it stops the refresher.
#[derive(Debug)]
pub struct Kubernetes {
    view: Arc<ArcSwap<View>>,
    refreshed: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Kubernetes {
    /// Starts refreshing on `runtime`. Fails only on configuration the API
    /// server part cannot use (CA or token unreadable); the kubelet not
    /// answering is a state, never an error.
    pub fn start(options: Options, runtime: &tokio::runtime::Handle) -> Result<Kubernetes, Error> {
        let _enter = runtime.enter();
        let api = match &options.metadata {
            Some(m) => Some(ApiServer::new(&m.in_cluster, options.call_timeout)?),
            None => None,
        };
        let mut status = Status::starting();
        if options.metadata.is_some() {
            status.metadata = MetadataState::Up;
        }
        let view = Arc::new(ArcSwap::from_pointee(View {
            map: Arc::new(PodMap::empty(options.mapping.clone())),
            status: status.clone(),
        }));
        let (tx, refreshed) = watch::channel(0);
        let worker = Worker {
            client: PodResourcesClient::new(&options.socket, options.call_timeout),
            api,
            metadata: HashMap::new(),
            metadata_retry: None,
            view: Arc::clone(&view),
            status,
            refreshed: tx,
            options,
        };
        let task = runtime.spawn(worker.run());
        Ok(Kubernetes {
            view,
            refreshed,
            task,
        })
    }

    /// The latest map and status: an atomic load, never waits.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// The latest map.
    pub fn map(&self) -> Arc<PodMap> {
        Arc::clone(&self.view.load().map)
    }

    /// Waits until `count` refreshes have finished (successful or not).
    pub async fn refreshed(&self, count: u64) {
        let mut rx = self.refreshed.clone();
        let _ = rx.wait_for(|n| *n >= count).await;
    }
}

impl Drop for Kubernetes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct MetaEntry {
    meta: Option<PodMetadata>,
    fetched: Instant,
}

struct Worker {
    options: Options,
    client: PodResourcesClient,
    api: Option<ApiServer>,
    metadata: HashMap<(String, String), MetaEntry>,
    /// After a failed round, the API server is left alone until then.
    metadata_retry: Option<(Instant, Duration)>,
    view: Arc<ArcSwap<View>>,
    status: Status,
    refreshed: watch::Sender<u64>,
}

impl Worker {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.options.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.refresh().await;
            self.status.refreshes += 1;
            self.refreshed.send_replace(self.status.refreshes);
        }
    }

    async fn refresh(&mut self) {
        let started = Instant::now();
        match self.client.list().await {
            Ok(list) => {
                let took = started.elapsed();
                if self.status.state != State::Up {
                    self.status.hints = self.check_allocatable().await;
                }
                let uids = self.pod_log_uids();
                self.refresh_metadata(&list).await;
                let map = PodMap::build(&list, self.options.mapping.clone(), |ns, name| {
                    let key = (ns.to_owned(), name.to_owned());
                    let mut meta = self
                        .metadata
                        .get(&key)
                        .and_then(|e| e.meta.clone())
                        .unwrap_or_default();
                    if meta.uid.is_none() {
                        meta.uid = uids.get(&key).cloned();
                    }
                    (meta.uid.is_some() || !meta.labels.is_empty()).then_some(meta)
                });
                if self.status.state != State::Up {
                    tracing::info!(
                        "kubelet pod-resources API at {} answers: {} pods, {} GPU devices held \
                         (List took {:.1} ms)",
                        self.options.socket.display(),
                        map.pods().len(),
                        map.held_devices(),
                        took.as_secs_f64() * 1000.0
                    );
                    self.status.state = State::Up;
                    self.status.since = Instant::now();
                }
                self.status.last_success = Some(Instant::now());
                self.status.last_list = Some(took);
                self.status.serving = Serving::Fresh;
                self.publish(Arc::new(map));
            }
            Err(e) => self.failed(e),
        }
    }

    fn failed(&mut self, e: CallError) {
        let changed = match &self.status.state {
            State::Down(old) => std::mem::discriminant(old) != std::mem::discriminant(&e),
            _ => true,
        };
        if changed {
            tracing::warn!(
                "kubelet pod-resources API: {e}; GPU series are served without pod labels \
                 until it answers{}",
                match self.status.last_success {
                    Some(_) if !self.options.keep_last_good_for.is_zero() => format!(
                        " (the last answer's are kept for {} s)",
                        self.options.keep_last_good_for.as_secs()
                    ),
                    _ => String::new(),
                }
            );
            self.status.since = Instant::now();
        }
        self.status.state = State::Down(e);
        let current = self.view.load_full();
        let keep = self
            .status
            .last_success
            .is_some_and(|t| t.elapsed() <= self.options.keep_last_good_for);
        if keep {
            self.status.serving = Serving::Kept;
            self.publish(Arc::clone(&current.map));
        } else {
            if self.status.serving != Serving::Nothing && self.status.last_success.is_some() {
                tracing::warn!(
                    "kubelet pod-resources API down for more than {} s: pod labels dropped",
                    self.options.keep_last_good_for.as_secs()
                );
            }
            self.status.serving = Serving::Nothing;
            self.publish(Arc::new(PodMap::empty(self.options.mapping.clone())));
        }
    }

    fn publish(&mut self, map: Arc<PodMap>) {
        self.status.pods = map.pods().len();
        self.status.held_devices = map.held_devices();
        self.view.store(Arc::new(View {
            map,
            status: self.status.clone(),
        }));
    }

    fn pod_log_uids(&self) -> HashMap<(String, String), String> {
        let Some(dir) = &self.options.pod_logs_dir else {
            return HashMap::new();
        };
        match podlogs::read_pod_uids(dir) {
            Ok(uids) => uids,
            Err(e) => {
                tracing::debug!("cannot read pod UIDs from {}: {e}", dir.display());
                HashMap::new()
            }
        }
    }

    /// Reads the metadata of pods not seen before (or seen long ago), at
    /// most `concurrency` at once and within one call deadline in all:
    /// what is not done by then is asked again at the next refresh, so a
    /// slow API server never holds up the kubelet's map. After a failure
    /// the API server is left alone for 10 s, doubling up to 5 minutes, so
    /// missing RBAC does not turn into a request storm.
    async fn refresh_metadata(&mut self, list: &ListPodResourcesResponse) {
        let (Some(api), Some(options)) = (&self.api, &self.options.metadata) else {
            return;
        };
        if let Some((at, _)) = self.metadata_retry
            && Instant::now() < at
        {
            return;
        }
        let listed: HashSet<(String, String)> = list
            .pod_resources
            .iter()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect();
        self.metadata.retain(|k, _| listed.contains(k));
        let due: Vec<(String, String)> = listed
            .into_iter()
            .filter(|k| {
                self.metadata
                    .get(k)
                    .is_none_or(|e| e.fetched.elapsed() >= options.refetch_after)
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(options.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for key in due {
            let api = api.clone();
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = api.pod(&key.0, &key.1).await;
                (key, result)
            });
        }
        let deadline = tokio::time::Instant::now() + self.options.call_timeout;
        let mut failure: Option<ApiError> = None;
        loop {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(Ok((key, result)))) => match result {
                    Ok(pod) => {
                        let labels = match &options.labels {
                            Some(filter) => filter.apply(
                                pod.metadata
                                    .labels
                                    .iter()
                                    .map(|(k, v)| (k.as_str(), v.as_str())),
                            ),
                            None => Vec::new(),
                        };
                        let meta = PodMetadata {
                            uid: pod.metadata.uid,
                            labels,
                        };
                        self.metadata.insert(
                            key,
                            MetaEntry {
                                meta: Some(meta),
                                fetched: Instant::now(),
                            },
                        );
                    }
                    Err(ApiError::NotFound) => {
                        self.metadata.insert(
                            key,
                            MetaEntry {
                                meta: None,
                                fetched: Instant::now(),
                            },
                        );
                    }
                    // Keep what was known; ask again next time.
                    Err(e) => failure = Some(e),
                },
                Ok(Some(Err(_join))) => {}
                Ok(None) => break,
                Err(_) => {
                    failure.get_or_insert(ApiError::TimedOut(self.options.call_timeout));
                    tasks.abort_all();
                    break;
                }
            }
        }
        let state = match failure {
            None => {
                self.metadata_retry = None;
                MetadataState::Up
            }
            Some(e) => {
                let backoff = self.metadata_retry.map_or(METADATA_BACKOFF_MIN, |(_, b)| {
                    (b * 2).min(METADATA_BACKOFF_MAX)
                });
                self.metadata_retry = Some((Instant::now() + backoff, backoff));
                MetadataState::Failing(e)
            }
        };
        let changed = match (&self.status.metadata, &state) {
            (MetadataState::Failing(a), MetadataState::Failing(b)) => {
                std::mem::discriminant(a) != std::mem::discriminant(b)
            }
            (a, b) => a != b,
        };
        if changed {
            match &state {
                MetadataState::Failing(e) => tracing::warn!(
                    "API server: cannot read pod metadata: {e}; pods seen before keep their \
                     labels, new pods have none until it answers"
                ),
                _ => tracing::info!("API server: pod metadata readable again"),
            }
        }
        self.status.metadata = state;
    }

    /// Compares what the kubelet can hand out with the options, once per
    /// recovery, and logs what looks wrong.
    async fn check_allocatable(&mut self) -> Vec<String> {
        let answer = match self.client.allocatable().await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("GetAllocatableResources: {e}");
                return Vec::new();
            }
        };
        let hints = allocatable_hints(&answer, &self.options.mapping);
        for h in &hints {
            tracing::warn!("{h}");
        }
        hints
    }
}

/// What looks wrong when the kubelet's allocatable devices are compared
/// with the options.
pub fn allocatable_hints(
    answer: &crate::pb::v1::AllocatableResourcesResponse,
    options: &MappingOptions,
) -> Vec<String> {
    let mut hints = Vec::new();
    let mut counted = 0usize;
    let (mut uuids, mut names, mut shared) = (0usize, 0usize, 0usize);
    let mut other_nvidia: Vec<&str> = Vec::new();
    for d in &answer.devices {
        if !options.counts(&d.resource_name) {
            if d.resource_name.starts_with("nvidia.com/")
                && !other_nvidia.contains(&d.resource_name.as_str())
            {
                other_nvidia.push(&d.resource_name);
            }
            continue;
        }
        for id in &d.device_ids {
            counted += 1;
            let (device, vgpu) = parse_device_id(id);
            if vgpu.is_some() {
                shared += 1;
            }
            if let Device::Gpu(base) = device {
                if base.starts_with("GPU-") {
                    uuids += 1;
                } else if base.starts_with("nvidia") {
                    names += 1;
                }
            }
        }
    }
    match options.gpu_id_type {
        GpuIdType::Uid if names > 0 && uuids == 0 => hints.push(
            "the device plugin names GPUs nvidiaN, not by UUID: pass \
             --kubernetes-gpu-id-type device-name, or no GPU series gets pod labels"
                .to_owned(),
        ),
        GpuIdType::DeviceName if uuids > 0 && names == 0 => hints.push(
            "the device plugin names GPUs by UUID: pass --kubernetes-gpu-id-type uid, or no \
             GPU series gets pod labels"
                .to_owned(),
        ),
        _ => {}
    }
    if shared > 0 && !options.virtual_gpus {
        hints.push(
            "GPUs are shared (time-slicing or MPS replicas): each series names one of the pods \
             sharing it; --kubernetes-virtual-gpus gives one series per pod with a vgpu label"
                .to_owned(),
        );
    }
    if counted == 0 && !other_nvidia.is_empty() {
        hints.push(format!(
            "the kubelet hands out {} but no resource Algalon counts as a GPU: add it with \
             --nvidia-resource-names",
            other_nvidia.join(", ")
        ));
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::v1::{AllocatableResourcesResponse, ContainerDevices};

    fn alloc(resource: &str, ids: &[&str]) -> AllocatableResourcesResponse {
        AllocatableResourcesResponse {
            devices: vec![ContainerDevices {
                resource_name: resource.into(),
                device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                topology: None,
            }],
            ..AllocatableResourcesResponse::default()
        }
    }

    #[test]
    fn hints_from_allocatable_devices() {
        let defaults = MappingOptions::default();
        assert!(
            allocatable_hints(&alloc("nvidia.com/gpu", &["GPU-a", "GPU-b"]), &defaults).is_empty()
        );
        let h = allocatable_hints(&alloc("nvidia.com/gpu", &["nvidia0", "nvidia1"]), &defaults);
        assert!(
            h[0].contains("--kubernetes-gpu-id-type device-name"),
            "{h:?}"
        );
        let h = allocatable_hints(
            &alloc("nvidia.com/gpu", &["GPU-a::0", "GPU-a::1"]),
            &defaults,
        );
        assert!(h[0].contains("--kubernetes-virtual-gpus"), "{h:?}");
        let h = allocatable_hints(&alloc("nvidia.com/gpu.shared", &["GPU-a::0"]), &defaults);
        assert!(h[0].contains("nvidia.com/gpu.shared"), "{h:?}");
        assert!(h[0].contains("--nvidia-resource-names"), "{h:?}");
    }

    #[test]
    fn status_lines() {
        let now = Instant::now();
        let mut s = Status::starting();
        assert!(!s.up());
        assert!(s.summary(now).contains("waiting"), "{}", s.summary(now));
        s.state = State::Up;
        s.pods = 3;
        s.held_devices = 2;
        assert!(s.up());
        assert!(
            s.summary(now)
                .starts_with("kubernetes: up, 3 pods, 2 GPU devices held")
        );
        s.state = State::Down(CallError::SocketMissing("/k.sock".into()));
        s.serving = Serving::Kept;
        s.last_success = Some(now);
        let line = s.summary(now);
        assert!(line.contains("/k.sock does not exist"), "{line}");
        assert!(line.contains("pod labels kept"), "{line}");
    }
}
