//! Which pod and container hold each GPU and MIG device: built from one
//! pod-resources `List` answer, with dcgm-exporter's rules for device ids
//! and labels (`internal/pkg/transformation/kubernetes.go`).
//!
//! Pure data: no I/O, no async. The background refresher builds a
//! [`PodMap`] after every `List`; the encoder's join reads it.
//!
//! # Device ids
//!
//! The device plugin names what it hands to a container; Algalon reads:
//!
//! | id | meaning | matched against |
//! |---|---|---|
//! | `GPU-<uuid>` | a whole GPU (`--kubernetes-gpu-id-type uid`, the default) | the GPU's UUID |
//! | `nvidiaN` | a whole GPU by device name (`--kubernetes-gpu-id-type device-name`, GKE) | `/dev/nvidiaN`: the GPU's minor number, the `device` label |
//! | `GPU-<uuid>::N`, `nvidiaN/vgpuN` | replica N of a time-sliced or MPS-shared GPU | as the id before `::` / `/vgpu`, with `vgpu="N"` |
//! | `MIG-<uuid>`, `MIG-<uuid>::N` | a MIG device (NVIDIA device plugin, mixed or single strategy) | the MIG device's UUID |
//! | `nvidiaN/giM`, `nvidiaN/giM/vgpuK` | a MIG GPU instance (GKE) | the instance with GPU instance id M on `/dev/nvidiaN` |
//!
//! Only devices of the NVIDIA resources count: `nvidia.com/gpu`, every
//! `nvidia.com/mig-*`, and the names given with `--nvidia-resource-names`
//! (e.g. `nvidia.com/gpu.shared` for time-slicing with `renameByDefault`).
//!
//! # Shared GPUs
//!
//! Every holder of a device is kept, in a stable order (namespace, pod,
//! container, vgpu). With `--kubernetes-virtual-gpus` each holder is its own
//! series (one per pod, with `vgpu`), as dcgm-exporter does. Without it a
//! series carries one holder, as dcgm-exporter's does; dcgm-exporter takes
//! whichever the kubelet listed last (an order that changes between
//! answers), Algalon the last in the stable order, so the labels of a shared
//! GPU do not flip from one scrape to the next.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::pb::v1::ListPodResourcesResponse;

/// The resource every NVIDIA device plugin advertises.
pub const NVIDIA_GPU_RESOURCE: &str = "nvidia.com/gpu";
/// MIG devices under the mixed strategy: `nvidia.com/mig-1g.10gb`, …
pub const NVIDIA_MIG_RESOURCE_PREFIX: &str = "nvidia.com/mig-";

/// Which GPU identifier the device plugin uses (`--kubernetes-gpu-id-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuIdType {
    /// GPU UUIDs, `GPU-…` (`uid`, the default; NVIDIA's device plugin).
    #[default]
    Uid,
    /// Device names, `nvidiaN` (`device-name`; GKE's device plugin).
    DeviceName,
}

impl GpuIdType {
    /// Parses dcgm-exporter's spelling: `uid` or `device-name`.
    pub fn parse(text: &str) -> Result<GpuIdType, String> {
        match text.trim() {
            "uid" => Ok(GpuIdType::Uid),
            "device-name" => Ok(GpuIdType::DeviceName),
            other => Err(format!(
                "invalid --kubernetes-gpu-id-type {other:?}: expected `uid` (GPU UUIDs, NVIDIA's \
                 device plugin) or `device-name` (nvidiaN, GKE's device plugin)"
            )),
        }
    }

    /// dcgm-exporter's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            GpuIdType::Uid => "uid",
            GpuIdType::DeviceName => "device-name",
        }
    }
}

/// How device ids become attributions.
#[derive(Debug, Clone, Default)]
pub struct MappingOptions {
    /// How whole GPUs are named.
    pub gpu_id_type: GpuIdType,
    /// Resource names counted besides `nvidia.com/gpu` and `nvidia.com/mig-*`
    /// (`--nvidia-resource-names`).
    pub resource_names: Vec<String>,
    /// One series per holder of a shared GPU (`--kubernetes-virtual-gpus`).
    pub virtual_gpus: bool,
}

impl MappingOptions {
    /// Whether a container's devices of `resource` are NVIDIA GPUs.
    pub fn counts(&self, resource: &str) -> bool {
        resource == NVIDIA_GPU_RESOURCE
            || resource.starts_with(NVIDIA_MIG_RESOURCE_PREFIX)
            || self.resource_names.iter().any(|r| r == resource)
    }
}

/// A pod, with what the API server or the node says about it besides the
/// kubelet's name and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`, when known (API server, or `/var/log/pods`).
    pub uid: Option<String>,
    /// Pod labels that pass the allowlist, keys already made valid
    /// Prometheus label names (see [`crate::labels::sanitize_label_name`]),
    /// sorted by key.
    pub labels: Vec<(String, String)>,
}

/// What the node knows about a pod besides its name and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodMetadata {
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// Labels, filtered and sanitized.
    pub labels: Vec<(String, String)>,
}

/// One container holding one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// The pod.
    pub pod: Arc<Pod>,
    /// The container's name.
    pub container: String,
    /// The replica of a shared GPU (`GPU-…::N` → `N`), when the id names one.
    pub vgpu: Option<String>,
}

/// Label names as dcgm-exporter writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LabelStyle {
    /// Add `pod_uid` (`--kubernetes-enable-pod-uid`), when the UID is known.
    pub pod_uid: bool,
    /// dcgm-exporter 1.x names (`-o`): `pod_name`, `pod_namespace`,
    /// `container_name`.
    pub old_names: bool,
}

/// dcgm-exporter's label names for an attribution.
pub mod label {
    /// The pod's name.
    pub const POD: &str = "pod";
    /// The pod's namespace.
    pub const NAMESPACE: &str = "namespace";
    /// The container's name.
    pub const CONTAINER: &str = "container";
    /// The pod's UID (`--kubernetes-enable-pod-uid`).
    pub const POD_UID: &str = "pod_uid";
    /// The replica of a shared GPU (`--kubernetes-virtual-gpus`).
    pub const VGPU: &str = "vgpu";
    /// `-o`: the pod's name.
    pub const OLD_POD: &str = "pod_name";
    /// `-o`: the pod's namespace.
    pub const OLD_NAMESPACE: &str = "pod_namespace";
    /// `-o`: the container's name.
    pub const OLD_CONTAINER: &str = "container_name";
}

impl Attribution {
    /// The labels this attribution adds to a series, dcgm-exporter's first
    /// (`pod`, `namespace`, `container`, then `pod_uid` and `vgpu` when they
    /// apply), then the pod's own labels. A pod label whose name is one of
    /// those is left out, as dcgm-exporter does; the caller must also leave
    /// out any that collide with the series' own labels (`gpu`, `UUID`, …).
    pub fn labels(&self, style: LabelStyle) -> Vec<(Cow<'static, str>, &str)> {
        let (pod, namespace, container) = if style.old_names {
            (label::OLD_POD, label::OLD_NAMESPACE, label::OLD_CONTAINER)
        } else {
            (label::POD, label::NAMESPACE, label::CONTAINER)
        };
        let mut out: Vec<(Cow<'static, str>, &str)> = vec![
            (Cow::Borrowed(pod), &self.pod.name),
            (Cow::Borrowed(namespace), &self.pod.namespace),
            (Cow::Borrowed(container), &self.container),
        ];
        if style.pod_uid
            && let Some(uid) = &self.pod.uid
        {
            out.push((Cow::Borrowed(label::POD_UID), uid));
        }
        if let Some(vgpu) = &self.vgpu {
            out.push((Cow::Borrowed(label::VGPU), vgpu));
        }
        for (k, v) in &self.pod.labels {
            if out.iter().any(|(name, _)| name == k) {
                continue;
            }
            out.push((Cow::Owned(k.clone()), v));
        }
        out
    }
}

/// What a device id names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Device {
    /// A whole GPU, by UUID (`GPU-…`) or device name (`nvidiaN`), as the
    /// device plugin wrote it (a sharing suffix removed).
    Gpu(String),
    /// A MIG device, by its UUID (`MIG-…`).
    Mig(String),
    /// A MIG GPU instance by GPU minor number and GPU instance id (GKE's
    /// `nvidiaN/giM`).
    GpuInstance {
        /// N of `/dev/nvidiaN`.
        minor: u32,
        /// The GPU instance id.
        gi: u32,
    },
}

/// Parses one device id from the kubelet: what it names, and the replica
/// of a shared GPU it is, when it names one (dcgm-exporter's
/// `getSharedGPU`, `stripVGPUSuffix` and the GKE MIG pattern).
pub fn parse_device_id(id: &str) -> (Device, Option<String>) {
    const VGPU_SEP: &str = "/vgpu";
    // The replica: after "/vgpu" (GKE) or "::" (NVIDIA's device plugin), up
    // to the next separator. An empty one ("GPU-…::") is no replica.
    let vgpu = if let Some((_, rest)) = id.split_once(VGPU_SEP) {
        Some(rest.split(VGPU_SEP).next().unwrap_or(""))
    } else if let Some((_, rest)) = id.split_once("::") {
        Some(rest.split("::").next().unwrap_or(""))
    } else {
        None
    };
    let vgpu = vgpu.filter(|v| !v.is_empty()).map(str::to_owned);
    if id.starts_with("MIG-") {
        let uuid = id.split_once("::").map_or(id, |(base, _)| base);
        return (Device::Mig(uuid.to_owned()), vgpu);
    }
    if let Some(instance) = parse_gke_instance(id) {
        return (instance, vgpu);
    }
    let base = if let Some((base, _)) = id.split_once(VGPU_SEP) {
        base
    } else if let Some((base, _)) = id.split_once("::") {
        base
    } else {
        id
    };
    (Device::Gpu(base.to_owned()), vgpu)
}

/// `nvidiaN/giM` or `nvidiaN/giM/vgpuK` (dcgm-exporter's
/// `^nvidia([0-9]+)/gi([0-9]+)(/vgpu[0-9]+)?$`).
fn parse_gke_instance(id: &str) -> Option<Device> {
    let digits = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let rest = id.strip_prefix("nvidia")?;
    let (minor, rest) = rest.split_once("/gi")?;
    let (gi, vgpu) = match rest.split_once("/vgpu") {
        Some((gi, v)) => (gi, Some(v)),
        None => (rest, None),
    };
    if let Some(v) = vgpu {
        digits(v)?;
    }
    Some(Device::GpuInstance {
        minor: digits(minor)?,
        gi: digits(gi)?,
    })
}

/// A GPU as the sampler knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuRef<'a> {
    /// NVML UUID, `GPU-…`.
    pub uuid: &'a str,
    /// Minor number (N of `/dev/nvidiaN`), when NVML gave it.
    pub minor_number: Option<u32>,
}

/// A MIG instance on a GPU, as the sampler knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigRef<'a> {
    /// The MIG device's UUID (`MIG-…`), when NVML gave it.
    pub uuid: Option<&'a str>,
    /// The GPU instance id (dcgm-exporter's `GPU_I_ID`).
    pub gpu_instance_id: u32,
}

/// Device → holders, from one `List` answer.
#[derive(Debug, Clone, Default)]
pub struct PodMap {
    options: MappingOptions,
    devices: HashMap<Device, Vec<Attribution>>,
    pods: Vec<Arc<Pod>>,
    by_uid: HashMap<String, Arc<Pod>>,
}

impl PodMap {
    /// An empty map: no pod holds anything.
    pub fn empty(options: MappingOptions) -> PodMap {
        PodMap {
            options,
            ..PodMap::default()
        }
    }

    /// Builds the map from a `List` answer. `metadata` gives each pod's UID
    /// and labels by (namespace, name), when known.
    pub fn build(
        list: &ListPodResourcesResponse,
        options: MappingOptions,
        metadata: impl Fn(&str, &str) -> Option<PodMetadata>,
    ) -> PodMap {
        let mut devices: HashMap<Device, Vec<Attribution>> = HashMap::new();
        let mut pods = Vec::new();
        let mut by_uid = HashMap::new();
        for p in &list.pod_resources {
            let meta = metadata(&p.namespace, &p.name).unwrap_or_default();
            let pod = Arc::new(Pod {
                name: p.name.clone(),
                namespace: p.namespace.clone(),
                uid: meta.uid,
                labels: meta.labels,
            });
            if let Some(uid) = &pod.uid {
                by_uid.insert(uid.clone(), Arc::clone(&pod));
            }
            for c in &p.containers {
                for d in c
                    .devices
                    .iter()
                    .filter(|d| options.counts(&d.resource_name))
                {
                    for id in &d.device_ids {
                        let (device, vgpu) = parse_device_id(id);
                        // dcgm-exporter sets `vgpu` only with
                        // --kubernetes-virtual-gpus.
                        let vgpu = vgpu.filter(|_| options.virtual_gpus);
                        let holders = devices.entry(device).or_default();
                        let attribution = Attribution {
                            pod: Arc::clone(&pod),
                            container: c.name.clone(),
                            vgpu,
                        };
                        // A container listed twice for one device (the same
                        // GPU under two resource names) is one holder.
                        if !holders.contains(&attribution) {
                            holders.push(attribution);
                        }
                    }
                }
            }
            pods.push(pod);
        }
        for holders in devices.values_mut() {
            holders.sort_by(|a, b| {
                (&a.pod.namespace, &a.pod.name, &a.container, &a.vgpu).cmp(&(
                    &b.pod.namespace,
                    &b.pod.name,
                    &b.container,
                    &b.vgpu,
                ))
            });
        }
        PodMap {
            options,
            devices,
            pods,
            by_uid,
        }
    }

    /// The options the map was built with.
    pub fn options(&self) -> &MappingOptions {
        &self.options
    }

    /// Every pod the kubelet listed, with or without devices.
    pub fn pods(&self) -> &[Arc<Pod>] {
        &self.pods
    }

    /// Devices held by at least one container.
    pub fn devices(&self) -> impl Iterator<Item = (&Device, &[Attribution])> {
        self.devices.iter().map(|(d, h)| (d, h.as_slice()))
    }

    /// Number of devices held by at least one container.
    pub fn held_devices(&self) -> usize {
        self.devices.len()
    }

    /// Every holder of a whole GPU, in the stable order.
    pub fn gpu_holders(&self, gpu: GpuRef<'_>) -> &[Attribution] {
        let key = match self.options.gpu_id_type {
            GpuIdType::Uid => Cow::Borrowed(gpu.uuid),
            GpuIdType::DeviceName => match gpu.minor_number {
                Some(minor) => Cow::Owned(format!("nvidia{minor}")),
                None => return &[],
            },
        };
        self.devices
            .get(&Device::Gpu(key.into_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// Every holder of a MIG instance: by the MIG device's UUID, or by GPU
    /// minor number and instance id (GKE).
    pub fn mig_holders(&self, gpu: GpuRef<'_>, mig: MigRef<'_>) -> &[Attribution] {
        if let Some(uuid) = mig.uuid
            && let Some(h) = self.devices.get(&Device::Mig(uuid.to_owned()))
        {
            return h;
        }
        if let Some(minor) = gpu.minor_number
            && let Some(h) = self.devices.get(&Device::GpuInstance {
                minor,
                gi: mig.gpu_instance_id,
            })
        {
            return h;
        }
        &[]
    }

    /// The attributions a whole GPU's series are labelled with: one series
    /// each. With `--kubernetes-virtual-gpus`, every holder; without, the
    /// last holder in the stable order (at most one). Empty: the series
    /// carries no pod labels.
    pub fn gpu_series(&self, gpu: GpuRef<'_>) -> &[Attribution] {
        self.series(self.gpu_holders(gpu))
    }

    /// As [`PodMap::gpu_series`], for a MIG instance's series.
    pub fn mig_series(&self, gpu: GpuRef<'_>, mig: MigRef<'_>) -> &[Attribution] {
        self.series(self.mig_holders(gpu, mig))
    }

    fn series<'m>(&self, holders: &'m [Attribution]) -> &'m [Attribution] {
        if self.options.virtual_gpus || holders.len() <= 1 {
            holders
        } else {
            &holders[holders.len() - 1..]
        }
    }

    /// A pod by UID (a process's cgroup names its pod's UID).
    pub fn pod_by_uid(&self, uid: &str) -> Option<&Arc<Pod>> {
        self.by_uid.get(uid)
    }

    /// Which holder of a GPU (or of one of its MIG instances, given as
    /// their UUIDs) a process in pod `uid` is: the attribution on that device
    /// whose pod has this UID. `None` when the pod holds none of them.
    pub fn process_holder<'m>(
        &'m self,
        gpu: GpuRef<'_>,
        mig_uuids: &[&str],
        uid: &str,
    ) -> Option<&'m Attribution> {
        let mine =
            |holders: &'m [Attribution]| holders.iter().find(|a| a.pod.uid.as_deref() == Some(uid));
        mine(self.gpu_holders(gpu)).or_else(|| {
            mig_uuids.iter().find_map(|m| {
                self.devices
                    .get(&Device::Mig((*m).to_owned()))
                    .and_then(|h| mine(h))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::v1::{ContainerDevices, ContainerResources, PodResources};

    fn pod(name: &str, containers: &[(&str, &str, &[&str])]) -> PodResources {
        PodResources {
            name: name.into(),
            namespace: "default".into(),
            containers: containers
                .iter()
                .map(|(c, resource, ids)| ContainerResources {
                    name: (*c).into(),
                    devices: vec![ContainerDevices {
                        resource_name: (*resource).into(),
                        device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                        topology: None,
                    }],
                    ..ContainerResources::default()
                })
                .collect(),
        }
    }

    fn list(pods: Vec<PodResources>) -> ListPodResourcesResponse {
        ListPodResourcesResponse {
            pod_resources: pods,
        }
    }

    const U: &str = "GPU-b8ea3855-276c-c9cb-b366-c6fa655957c5";

    fn gpu(uuid: &str, minor: u32) -> GpuRef<'_> {
        GpuRef {
            uuid,
            minor_number: Some(minor),
        }
    }

    fn names(a: &[Attribution]) -> Vec<(&str, &str, Option<&str>)> {
        a.iter()
            .map(|a| (a.pod.name.as_str(), a.container.as_str(), a.vgpu.as_deref()))
            .collect()
    }

    #[test]
    fn device_id_forms() {
        // dcgm-exporter's TestGetSharedGPU and TestStripVGPUSuffix cases.
        assert_eq!(
            parse_device_id("nvidia0/vgpu0"),
            (Device::Gpu("nvidia0".into()), Some("0".into()))
        );
        assert_eq!(
            parse_device_id("nvidia0/gi0/vgpu1"),
            (Device::GpuInstance { minor: 0, gi: 0 }, Some("1".into()))
        );
        assert_eq!(
            parse_device_id("GPU-5a5a7118-e550-79a1-597e-7631e126c57a::3"),
            (
                Device::Gpu("GPU-5a5a7118-e550-79a1-597e-7631e126c57a".into()),
                Some("3".into())
            )
        );
        assert_eq!(
            parse_device_id("MIG-42f0f413-f7b0-58cc-aced-c1d1fb54db26::0"),
            (
                Device::Mig("MIG-42f0f413-f7b0-58cc-aced-c1d1fb54db26".into()),
                Some("0".into())
            )
        );
        assert_eq!(
            parse_device_id("MIG-2ce7a541-c516-5dbc-a76e-26cc100d9b55"),
            (
                Device::Mig("MIG-2ce7a541-c516-5dbc-a76e-26cc100d9b55".into()),
                None
            )
        );
        assert_eq!(
            parse_device_id("nvidia3/gi7"),
            (Device::GpuInstance { minor: 3, gi: 7 }, None)
        );
        // An empty replica is none; ids that merely look alike are GPUs.
        assert_eq!(
            parse_device_id(&format!("{U}::")),
            (Device::Gpu(U.into()), None)
        );
        assert_eq!(
            parse_device_id("nvidiaX/gi1"),
            (Device::Gpu("nvidiaX/gi1".into()), None)
        );
        assert_eq!(
            parse_device_id("nvidia1"),
            (Device::Gpu("nvidia1".into()), None)
        );
    }

    #[test]
    fn exclusive_gpus_by_uuid_and_by_device_name() {
        let l = list(vec![
            pod("a", &[("main", NVIDIA_GPU_RESOURCE, &[U])]),
            pod("b", &[("main", NVIDIA_GPU_RESOURCE, &["nvidia1"])]),
            pod("cpu-only", &[("main", "cpu", &["0"])]),
        ]);
        let map = PodMap::build(&l, MappingOptions::default(), |_, _| None);
        assert_eq!(names(map.gpu_series(gpu(U, 0))), [("a", "main", None)]);
        assert!(map.gpu_series(gpu("GPU-other", 1)).is_empty());
        assert_eq!(map.pods().len(), 3);
        assert_eq!(map.held_devices(), 2);

        let by_name = PodMap::build(
            &l,
            MappingOptions {
                gpu_id_type: GpuIdType::DeviceName,
                ..MappingOptions::default()
            },
            |_, _| None,
        );
        assert_eq!(
            names(by_name.gpu_series(gpu("GPU-other", 1))),
            [("b", "main", None)]
        );
        assert!(by_name.gpu_series(gpu(U, 0)).is_empty());
        // No minor number, no device name to match.
        assert!(
            by_name
                .gpu_series(GpuRef {
                    uuid: "GPU-other",
                    minor_number: None
                })
                .is_empty()
        );
    }

    #[test]
    fn resource_names() {
        let l = list(vec![
            pod("a", &[("main", "nvidia.com/a100", &[U])]),
            pod("m", &[("main", "nvidia.com/mig-1g.10gb", &["MIG-aaa"])]),
            pod("x", &[("main", "example.com/fpga", &["GPU-x"])]),
        ]);
        let map = PodMap::build(&l, MappingOptions::default(), |_, _| None);
        assert!(
            map.gpu_series(gpu(U, 0)).is_empty(),
            "not an NVIDIA resource name"
        );
        assert!(map.gpu_series(gpu("GPU-x", 1)).is_empty());
        let mig = MigRef {
            uuid: Some("MIG-aaa"),
            gpu_instance_id: 1,
        };
        assert_eq!(names(map.mig_series(gpu(U, 0), mig)), [("m", "main", None)]);
        let map = PodMap::build(
            &l,
            MappingOptions {
                resource_names: vec!["nvidia.com/a100".into()],
                ..MappingOptions::default()
            },
            |_, _| None,
        );
        assert_eq!(names(map.gpu_series(gpu(U, 0))), [("a", "main", None)]);
    }

    #[test]
    fn time_sliced_gpu_shared_by_three_pods() {
        let l = list(vec![
            pod("p2", &[("c", NVIDIA_GPU_RESOURCE, &[&format!("{U}::2")])]),
            pod("p0", &[("c", NVIDIA_GPU_RESOURCE, &[&format!("{U}::0")])]),
            pod("p1", &[("c", NVIDIA_GPU_RESOURCE, &[&format!("{U}::1")])]),
        ]);
        let virt = PodMap::build(
            &l,
            MappingOptions {
                virtual_gpus: true,
                ..MappingOptions::default()
            },
            |_, _| None,
        );
        assert_eq!(
            names(virt.gpu_series(gpu(U, 0))),
            [
                ("p0", "c", Some("0")),
                ("p1", "c", Some("1")),
                ("p2", "c", Some("2"))
            ]
        );
        // Without --kubernetes-virtual-gpus: one series, the same holder
        // whatever order the kubelet lists the pods in, no vgpu label.
        let plain = PodMap::build(&l, MappingOptions::default(), |_, _| None);
        let series = plain.gpu_series(gpu(U, 0));
        assert_eq!(names(series), [("p2", "c", None)]);
        let labels = series[0].labels(LabelStyle::default());
        assert!(labels.iter().all(|(k, _)| k != "vgpu"), "{labels:?}");
        let mut reversed = l.clone();
        reversed.pod_resources.reverse();
        let again = PodMap::build(&reversed, MappingOptions::default(), |_, _| None);
        assert_eq!(names(again.gpu_series(gpu(U, 0))), [("p2", "c", None)]);
    }

    #[test]
    fn mig_devices_and_gke_instances() {
        let l = list(vec![
            pod("m1", &[("c", "nvidia.com/mig-1g.10gb", &["MIG-111"])]),
            pod(
                "m2",
                &[("c", NVIDIA_GPU_RESOURCE, &["MIG-222::4", "MIG-222::5"])],
            ),
            pod("g", &[("c", NVIDIA_GPU_RESOURCE, &["nvidia0/gi3/vgpu1"])]),
        ]);
        let map = PodMap::build(
            &l,
            MappingOptions {
                virtual_gpus: true,
                ..MappingOptions::default()
            },
            |_, _| None,
        );
        let g = gpu(U, 0);
        let mig = |uuid: Option<&'static str>, gi| MigRef {
            uuid,
            gpu_instance_id: gi,
        };
        assert_eq!(
            names(map.mig_series(g, mig(Some("MIG-111"), 1))),
            [("m1", "c", None)]
        );
        assert_eq!(
            names(map.mig_series(g, mig(Some("MIG-222"), 2))),
            [("m2", "c", Some("4")), ("m2", "c", Some("5"))]
        );
        // GKE: by minor number and GPU instance id, when the UUID is unknown
        // to the kubelet.
        assert_eq!(
            names(map.mig_series(g, mig(Some("MIG-999"), 3))),
            [("g", "c", Some("1"))]
        );
        assert_eq!(
            names(map.mig_series(g, mig(None, 3))),
            [("g", "c", Some("1"))]
        );
        assert!(map.mig_series(gpu(U, 1), mig(None, 3)).is_empty());
        // A MIG device is not the whole GPU.
        assert!(map.gpu_series(g).is_empty());
    }

    #[test]
    fn labels_as_dcgm_exporter_writes_them() {
        let l = list(vec![pod(
            "trainer",
            &[("main", NVIDIA_GPU_RESOURCE, &[&format!("{U}::1")])],
        )]);
        let meta = |ns: &str, name: &str| {
            assert_eq!((ns, name), ("default", "trainer"));
            Some(PodMetadata {
                uid: Some("1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b".into()),
                labels: vec![
                    ("app_kubernetes_io_name".into(), "trainer".into()),
                    ("pod".into(), "clash".into()),
                ],
            })
        };
        let map = PodMap::build(
            &l,
            MappingOptions {
                virtual_gpus: true,
                ..MappingOptions::default()
            },
            meta,
        );
        let a = &map.gpu_series(gpu(U, 0))[0];
        let got = a.labels(LabelStyle {
            pod_uid: true,
            old_names: false,
        });
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_ref(), *v)).collect();
        assert_eq!(
            got,
            [
                ("pod", "trainer"),
                ("namespace", "default"),
                ("container", "main"),
                ("pod_uid", "1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"),
                ("vgpu", "1"),
                ("app_kubernetes_io_name", "trainer"),
            ]
        );
        let old: Vec<String> = a
            .labels(LabelStyle {
                pod_uid: false,
                old_names: true,
            })
            .into_iter()
            .map(|(k, _)| k.into_owned())
            .collect();
        assert_eq!(
            old,
            [
                "pod_name",
                "pod_namespace",
                "container_name",
                "vgpu",
                "app_kubernetes_io_name",
                "pod"
            ]
        );
        // The per-process join: the process's cgroup names the pod's UID.
        let holder = map
            .process_holder(gpu(U, 0), &[], "1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b")
            .expect("the pod holds the GPU");
        assert_eq!(holder.container, "main");
        assert!(map.process_holder(gpu(U, 0), &[], "other-uid").is_none());
        assert_eq!(
            map.pod_by_uid("1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b")
                .map(|p| p.name.as_str()),
            Some("trainer")
        );
    }

    #[test]
    fn a_device_listed_twice_is_one_holder() {
        let l = list(vec![pod(
            "a",
            &[
                ("main", NVIDIA_GPU_RESOURCE, &[U]),
                ("main", "nvidia.com/gpu.shared", &[U]),
            ],
        )]);
        let map = PodMap::build(
            &l,
            MappingOptions {
                resource_names: vec!["nvidia.com/gpu.shared".into()],
                virtual_gpus: true,
                ..MappingOptions::default()
            },
            |_, _| None,
        );
        assert_eq!(map.gpu_series(gpu(U, 0)).len(), 1);
    }
}
