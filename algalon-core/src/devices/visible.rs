//! Resolving selectors against the host's GPUs, and the process's CUDA view.

use crate::error::{Error, Result};

use super::grammar::{Selector, parse_cuda_visible_devices, strip_prefix_ci};

/// Environment variable CUDA reads to choose and order devices.
pub const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// One GPU of the host, for resolving selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGpu {
    /// NVML index.
    pub index: u32,
    /// `GPU-…` UUID; `None` when NVML could not give it.
    pub uuid: Option<String>,
}

impl HostGpu {
    /// A GPU with a known UUID.
    pub fn new(index: u32, uuid: impl Into<String>) -> HostGpu {
        HostGpu {
            index,
            uuid: Some(uuid.into()),
        }
    }
}

/// One MIG device of the host (a GPU instance with its compute instance),
/// for resolving `MIG-…` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMig {
    /// The parent GPU's NVML index.
    pub parent: u32,
    /// The parent GPU's `GPU-…` UUID.
    pub parent_uuid: String,
    /// The MIG device's `MIG-…` UUID.
    pub uuid: String,
    /// Its profile (`1g.10gb`, `3g.40gb`, …).
    pub profile: String,
    /// GPU instance id, when NVML gave it.
    pub gpu_instance_id: Option<u32>,
    /// Compute instance id, when NVML gave it.
    pub compute_instance_id: Option<u32>,
}

impl HostMig {
    /// `GPU 0 GI 7 CI 0 (1g.10gb, MIG-…)`, as errors list it.
    pub fn describe(&self) -> String {
        let id = |v: Option<u32>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        format!(
            "GPU {} GI {} CI {} ({}, {})",
            self.parent,
            id(self.gpu_instance_id),
            id(self.compute_instance_id),
            self.profile,
            self.uuid
        )
    }
}

/// "this host has …" for a MIG selector: `MIG devices GPU 0 GI 7 CI 0
/// (1g.10gb, MIG-…), …`, or why there are none.
pub fn describe_instances(instances: &[HostMig]) -> String {
    if instances.is_empty() {
        return "no MIG devices (no GPU is in MIG mode with instances created)".to_owned();
    }
    let list: Vec<String> = instances.iter().map(HostMig::describe).collect();
    format!("MIG devices {}", list.join(", "))
}

/// Finds the MIG device (position in `instances`) a `MIG-…` selector names,
/// in either form CUDA accepts in `CUDA_VISIBLE_DEVICES`: `MIG-<uuid>` (the
/// MIG device's UUID, as `nvidia-smi -L` prints it; a unique prefix is
/// enough) or `MIG-GPU-<gpu uuid>/<gpu instance id>/<compute instance id>`
/// (the form of drivers before R470). Case does not matter. `context`
/// prefixes the quoted selector in the error, which lists the MIG devices
/// there are.
pub fn resolve_mig(text: &str, instances: &[HostMig], context: &str) -> Result<usize> {
    let not_found = |why: &str| Error::NoSuchDevice {
        selector: format!("{context}{text:?} (a MIG device{why})"),
        available: describe_instances(instances),
    };
    let rest = strip_prefix_ci(text.trim(), "MIG-").unwrap_or(text.trim());
    let matched: Vec<usize> = if let Some((gpu, ids)) = rest.split_once('/') {
        let parse = |v: Option<&str>| v.and_then(|v| v.trim().parse::<u32>().ok());
        let mut parts = ids.split('/');
        let (gi, ci, extra) = (parse(parts.next()), parse(parts.next()), parts.next());
        let (Some(gi), Some(ci), None) = (gi, ci, extra) else {
            return Err(not_found(
                "; write MIG-GPU-<gpu uuid>/<gpu instance id>/<compute instance id>, e.g. MIG-GPU-5e2d…/7/0, or MIG-<uuid>",
            ));
        };
        let want = uuid_key(gpu);
        (0..instances.len())
            .filter(|&p| {
                let m = &instances[p];
                let key = uuid_key(&m.parent_uuid);
                (key == want || key.starts_with(&want))
                    && m.gpu_instance_id == Some(gi)
                    && m.compute_instance_id == Some(ci)
            })
            .collect()
    } else {
        let keys: Vec<Option<String>> = instances.iter().map(|m| Some(mig_key(&m.uuid))).collect();
        exact_or_prefix(&keys, &rest.to_ascii_lowercase())
    };
    match matched.as_slice() {
        [one] => Ok(*one),
        [] => Err(not_found("")),
        many => Err(not_found(&format!(
            "; ambiguous: matches {} MIG devices",
            many.len()
        ))),
    }
}

/// "this host has …": `GPUs 0 (GPU-…), 1 (GPU-…)` or `no GPUs`; the one
/// text every "no GPU matches" error uses.
pub fn describe_host(gpus: &[HostGpu]) -> String {
    if gpus.is_empty() {
        return "no GPUs".to_owned();
    }
    let list: Vec<String> = gpus
        .iter()
        .map(|g| match &g.uuid {
            Some(u) => format!("{} ({u})", g.index),
            None => g.index.to_string(),
        })
        .collect();
    format!("GPUs {}", list.join(", "))
}

/// The hex of a UUID or UUID prefix, without `GPU-`, lower case.
fn uuid_key(s: &str) -> String {
    strip_prefix_ci(s, "GPU-").unwrap_or(s).to_ascii_lowercase()
}

/// The same for a MIG device's UUID, without `MIG-`.
fn mig_key(s: &str) -> String {
    strip_prefix_ci(s, "MIG-").unwrap_or(s).to_ascii_lowercase()
}

/// The positions whose key is `want`, or when none is, those whose key
/// starts with it: a whole UUID wins over the longer ones it is a prefix of.
/// A `None` key (a device without a UUID) matches nothing.
fn exact_or_prefix(keys: &[Option<String>], want: &str) -> Vec<usize> {
    let exact: Vec<usize> = (0..keys.len())
        .filter(|&p| keys[p].as_deref() == Some(want))
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    (0..keys.len())
        .filter(|&p| keys[p].as_deref().is_some_and(|k| k.starts_with(want)))
        .collect()
}

/// Finds the host GPU (position in `gpus`) an NVML index or GPU UUID names:
/// an exact UUID first, else the one GPU whose UUID starts with the prefix,
/// in any case. `context` prefixes the quoted selector in the error
/// (`"CUDA_VISIBLE_DEVICES entry "`). `cuda:N` and `MIG-` selectors do not
/// name a host GPU and are errors here (see [`Visible::select`]).
pub fn resolve(selector: &Selector, gpus: &[HostGpu], context: &str) -> Result<usize> {
    let not_found = |why: &str| Error::NoSuchDevice {
        selector: format!("{context}{:?}{why}", selector.to_string()),
        available: describe_host(gpus),
    };
    let matched: Vec<usize> = match selector {
        Selector::Index(i) => gpus
            .iter()
            .position(|g| g.index == *i)
            .into_iter()
            .collect(),
        Selector::Uuid(u) => {
            let keys: Vec<Option<String>> = gpus
                .iter()
                .map(|g| g.uuid.as_deref().map(uuid_key))
                .collect();
            exact_or_prefix(&keys, &uuid_key(u))
        }
        Selector::Cuda(_) => {
            return Err(not_found(
                " (a CUDA index: it needs the process's CUDA_VISIBLE_DEVICES view)",
            ));
        }
        Selector::Mig(_) => {
            return Err(not_found(
                " (a MIG instance: select its GPU by index or GPU- UUID)",
            ));
        }
    };
    match matched.as_slice() {
        [one] => Ok(*one),
        [] => Err(not_found("")),
        many => Err(not_found(&format!(
            " (ambiguous: matches {} GPUs)",
            many.len()
        ))),
    }
}

/// The GPUs this process may use, in CUDA's order, beside every GPU of the
/// host. CUDA numbers the devices a process sees from 0 in the order of
/// `CUDA_VISIBLE_DEVICES`; NVML numbers every device of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible {
    /// Every GPU of the host, NVML order.
    pub all: Vec<HostGpu>,
    /// UUIDs this process may use, in CUDA order (position = CUDA index):
    /// `GPU-…` for whole GPUs; for a MIG device its `MIG-…` UUID when the
    /// host's MIG devices were known ([`Visible::with_instances`]: every
    /// form resolved to it, and measured), else the entry as given (not
    /// measured).
    pub cuda: Vec<String>,
    /// The value of `CUDA_VISIBLE_DEVICES`, when set.
    pub env: Option<String>,
    /// What CUDA ignores of that value (from the first invalid entry on).
    pub ignored: Option<String>,
    /// Every MIG device of the host, when known ([`Visible::with_instances`]).
    pub instances: Vec<HostMig>,
}

impl Visible {
    /// Resolves `env` (the value of `CUDA_VISIBLE_DEVICES`; `None`: unset,
    /// every GPU) against the host's GPUs. A well-formed entry that matches
    /// no GPU is an error naming the variable and what the host has.
    pub fn new(all: Vec<HostGpu>, env: Option<String>) -> Result<Visible> {
        Visible::resolve_env(all, None, env)
    }

    /// [`Visible::new`] knowing the host's MIG devices: a `MIG-…` entry (in
    /// either form CUDA takes, see [`resolve_mig`]) becomes the MIG device's
    /// UUID and is measured; one that names no MIG device is an error
    /// listing those there are.
    pub fn with_instances(
        all: Vec<HostGpu>,
        instances: Vec<HostMig>,
        env: Option<String>,
    ) -> Result<Visible> {
        Visible::resolve_env(all, Some(instances), env)
    }

    fn resolve_env(
        all: Vec<HostGpu>,
        instances: Option<Vec<HostMig>>,
        env: Option<String>,
    ) -> Result<Visible> {
        let mut cuda: Vec<String> = Vec::new();
        let mut ignored = None;
        match &env {
            None => cuda.extend(all.iter().filter_map(|g| g.uuid.clone())),
            Some(value) => {
                let list = parse_cuda_visible_devices(value);
                ignored = list.ignored;
                for s in &list.entries {
                    let uuid = match (s, &instances) {
                        (Selector::Mig(id), None) => id.clone(),
                        (Selector::Mig(id), Some(list)) => {
                            let p = resolve_mig(id, list, "CUDA_VISIBLE_DEVICES entry ")?;
                            list[p].uuid.clone()
                        }
                        (other, _) => {
                            let p = resolve(other, &all, "CUDA_VISIBLE_DEVICES entry ")?;
                            all[p].uuid.clone().unwrap_or_default()
                        }
                    };
                    if !cuda.contains(&uuid) {
                        cuda.push(uuid);
                    }
                }
            }
        }
        Ok(Visible {
            all,
            cuda,
            env,
            ignored,
            instances: instances.unwrap_or_default(),
        })
    }

    /// [`Visible::new`] with this process's `CUDA_VISIBLE_DEVICES`.
    pub fn from_env(all: Vec<HostGpu>) -> Result<Visible> {
        Visible::new(all, std::env::var(CUDA_VISIBLE_DEVICES).ok())
    }

    /// The visible `MIG-…` entries, in CUDA order.
    pub fn mig(&self) -> Vec<String> {
        self.cuda.iter().filter(|u| is_mig(u)).cloned().collect()
    }

    /// The visible `MIG-…` entries that name no known MIG device (the
    /// host's MIG devices were not asked for: [`Visible::new`]).
    pub fn unresolved_mig(&self) -> Vec<String> {
        self.cuda
            .iter()
            .filter(|u| is_mig(u) && self.instance(u).is_none())
            .cloned()
            .collect()
    }

    /// The MIG device of the host with this `MIG-…` UUID, if known.
    pub fn instance(&self, uuid: &str) -> Option<&HostMig> {
        self.instances.iter().find(|m| m.uuid == uuid)
    }

    /// The visible devices that can be measured, in CUDA order: whole GPUs
    /// and the MIG devices resolved by [`Visible::with_instances`].
    pub fn measurable(&self) -> Vec<String> {
        self.cuda
            .iter()
            .filter(|u| !is_mig(u) || self.instance(u).is_some())
            .cloned()
            .collect()
    }

    /// The `GPU-…` UUID of the GPU a measured device is on: itself for a
    /// whole GPU, the parent for a MIG device.
    pub fn gpu_of(&self, uuid: &str) -> Option<String> {
        match self.instance(uuid) {
            Some(m) => Some(m.parent_uuid.clone()),
            None => self
                .all
                .iter()
                .any(|g| g.uuid.as_deref() == Some(uuid))
                .then(|| uuid.to_owned()),
        }
    }

    /// CUDA index of a GPU, when this process can see it.
    pub fn cuda_index(&self, uuid: &str) -> Option<u32> {
        self.cuda
            .iter()
            .position(|u| u == uuid)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// NVML index of a GPU of the host.
    pub fn nvml_index(&self, uuid: &str) -> Option<u32> {
        self.all
            .iter()
            .find(|g| g.uuid.as_deref() == Some(uuid))
            .map(|g| g.index)
    }

    /// The UUID one selector names, from this process's view: `cuda:N` is
    /// the N-th visible device, a UUID (prefix) any GPU of the host. A bare
    /// number is refused: it would be an NVML index here but a CUDA index
    /// everywhere else in a training script.
    pub fn select(&self, selector: &Selector) -> Result<String> {
        let err = |selector: String| Error::NoSuchDevice {
            selector,
            available: self.describe(),
        };
        match selector {
            Selector::Cuda(i) => match self.cuda.get(*i as usize) {
                Some(u) if !is_mig(u) || self.instance(u).is_some() => Ok(u.clone()),
                Some(_) => Err(err(format!(
                    "CUDA index {i} (a MIG device this view could not resolve)"
                ))),
                None => Err(err(format!("CUDA index {i}"))),
            },
            Selector::Index(i) => Err(err(format!(
                "\"{i}\" (pass CUDA indices as int or \"cuda:{i}\", UUIDs as str)"
            ))),
            Selector::Mig(id) => {
                let p = resolve_mig(id, &self.instances, "gpus entry ")?;
                Ok(self.instances[p].uuid.clone())
            }
            Selector::Uuid(_) => {
                let p = resolve(selector, &self.all, "gpus entry ")?;
                Ok(self.all[p].uuid.clone().unwrap_or_default())
            }
        }
    }

    /// The GPUs to measure: `selectors` resolved by [`select`](Self::select)
    /// (duplicates dropped), or every visible whole GPU when `None`. Fails
    /// when that leaves no GPU, saying why (an empty list, a variable that
    /// hides every GPU, MIG instances only, a host without GPUs).
    pub fn measured(&self, selectors: Option<&[Selector]>) -> Result<Vec<String>> {
        let mut measured: Vec<String> = Vec::new();
        match selectors {
            None => measured = self.measurable(),
            Some([]) => {
                return Err(Error::NoSuchDevice {
                    selector: "an empty GPU list (give no list to measure every visible GPU, or name some: cuda:0, GPU-…)".to_owned(),
                    available: self.describe(),
                });
            }
            Some(list) => {
                for s in list {
                    let uuid = self.select(s)?;
                    if !measured.contains(&uuid) {
                        measured.push(uuid);
                    }
                }
            }
        }
        if measured.is_empty() {
            let why = match (&self.env, self.mig().is_empty()) {
                (Some(v), false) => format!(
                    "CUDA_VISIBLE_DEVICES={v:?} (its MIG devices were not resolved; pass gpus=[\"MIG-…\"] or gpus=[\"GPU-…\"])"
                ),
                (Some(v), true) => format!(
                    "CUDA_VISIBLE_DEVICES={v:?} (it hides every GPU from this process; pass gpus=[\"GPU-…\"] to measure some anyway)"
                ),
                (None, _) => "any GPU (NVML lists none)".to_owned(),
            };
            return Err(Error::NoSuchDevice {
                selector: why,
                available: describe_host(&self.all),
            });
        }
        Ok(measured)
    }

    /// This process's view for an error: `cuda:0 = GPU 2 (GPU-…), …
    /// (CUDA_VISIBLE_DEVICES="2")`.
    pub fn describe(&self) -> String {
        let env = match &self.env {
            Some(v) => format!("CUDA_VISIBLE_DEVICES={v:?}"),
            None => "CUDA_VISIBLE_DEVICES unset".to_owned(),
        };
        if self.cuda.is_empty() {
            return format!(
                "no GPU visible to this process ({env}); the host has {}",
                describe_host(&self.all)
            );
        }
        let list: Vec<String> = self
            .cuda
            .iter()
            .enumerate()
            .map(|(i, u)| match (self.nvml_index(u), self.instance(u)) {
                (Some(n), _) => format!("cuda:{i} = GPU {n} ({u})"),
                (None, Some(m)) => format!("cuda:{i} = {}", m.describe()),
                (None, None) => format!("cuda:{i} ({u})"),
            })
            .collect();
        format!("{} ({env})", list.join(", "))
    }
}

fn is_mig(id: &str) -> bool {
    strip_prefix_ci(id, "MIG-").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Vec<HostGpu> {
        ["GPU-aaaa-0", "GPU-bbbb-1", "GPU-cccc-2"]
            .iter()
            .enumerate()
            .map(|(i, u)| HostGpu::new(i as u32, *u))
            .collect()
    }

    fn visible(env: Option<&str>) -> Result<Visible> {
        Visible::new(host(), env.map(str::to_owned))
    }

    #[test]
    fn resolve_exact_then_prefix_any_case() {
        let h = vec![HostGpu::new(0, "GPU-ab"), HostGpu::new(1, "GPU-abc")];
        let uuid = |s: &str| Selector::Uuid(s.into());
        assert_eq!(resolve(&uuid("GPU-AB"), &h, "").ok(), Some(0));
        assert_eq!(resolve(&uuid("abc"), &h, "").ok(), Some(1));
        let err = resolve(&uuid("a"), &h, "").expect_err("two").to_string();
        assert!(err.contains("\"a\" (ambiguous: matches 2 GPUs)"), "{err}");
        let err = resolve(&Selector::Index(7), &h, "")
            .expect_err("none")
            .to_string();
        assert_eq!(
            err,
            "no GPU matches \"7\": this host has GPUs 0 (GPU-ab), 1 (GPU-abc)"
        );
        let lost = [HostGpu {
            index: 0,
            uuid: None,
        }];
        assert_eq!(describe_host(&lost), "GPUs 0");
        assert_eq!(describe_host(&[]), "no GPUs");
    }

    #[test]
    fn cuda_indices_follow_cuda_visible_devices() {
        let v = visible(Some("2,0")).expect("resolves");
        assert_eq!(v.cuda, ["GPU-cccc-2", "GPU-aaaa-0"]);
        assert_eq!(v.cuda_index("GPU-aaaa-0"), Some(1));
        assert_eq!(v.cuda_index("GPU-bbbb-1"), None);
        assert_eq!(v.select(&Selector::Cuda(0)).expect("cuda:0"), "GPU-cccc-2");
        assert_eq!(
            v.select(&Selector::Uuid("bbbb".into())).expect("uuid"),
            "GPU-bbbb-1"
        );
        let err = v
            .select(&Selector::Cuda(2))
            .expect_err("cuda:2")
            .to_string();
        assert!(err.contains("CUDA index 2"), "{err}");
        assert!(err.contains("cuda:1 = GPU 0"), "{err}");
        // "1" as a string parses as an NVML index: refused from this view.
        assert!(v.select(&Selector::Index(1)).is_err());
        let v = visible(Some("1,,2")).expect("stops");
        assert_eq!(v.cuda, ["GPU-bbbb-1"]);
        assert!(v.ignored.is_some());
    }

    #[test]
    fn unset_means_every_gpu_and_mig_entries_are_kept_apart() {
        assert_eq!(visible(None).expect("all").cuda.len(), 3);
        let v = visible(Some("MIG-1234,1")).expect("mig");
        assert_eq!(v.mig(), ["MIG-1234"]);
        assert_eq!(v.measurable(), ["GPU-bbbb-1"]);
        assert_eq!(v.cuda_index("GPU-bbbb-1"), Some(1));
        assert!(v.select(&Selector::Cuda(0)).is_err());
        assert!(visible(Some("7")).is_err());
    }

    #[test]
    fn measured_says_why_nothing_is_left() {
        let err = visible(None)
            .expect("all")
            .measured(Some(&[]))
            .expect_err("empty")
            .to_string();
        assert!(err.contains("empty GPU list"), "{err}");
        let err = visible(Some(""))
            .expect("none")
            .measured(None)
            .expect_err("hidden")
            .to_string();
        assert!(err.contains("hides every GPU"), "{err}");
        let v = visible(Some("MIG-1234,1")).expect("mig");
        assert_eq!(v.measured(None).expect("t4"), ["GPU-bbbb-1"]);
        assert_eq!(v.mig(), ["MIG-1234"]);
    }

    fn instances() -> Vec<HostMig> {
        let mig = |parent: u32, gi: u32, uuid: &str, profile: &str| HostMig {
            parent,
            parent_uuid: host()[parent as usize].uuid.clone().unwrap_or_default(),
            uuid: uuid.to_owned(),
            profile: profile.to_owned(),
            gpu_instance_id: Some(gi),
            compute_instance_id: Some(0),
        };
        vec![
            mig(1, 7, "MIG-1111aaaa-0000-5000-8000-000000000001", "1g.10gb"),
            mig(1, 8, "MIG-1111aaaa-0000-5000-8000-000000000002", "1g.10gb"),
            mig(2, 2, "MIG-2222bbbb-0000-5000-8000-000000000003", "3g.40gb"),
        ]
    }

    #[test]
    fn mig_entries_resolve_in_both_cuda_forms_in_any_case() {
        let list = instances();
        let at = |text: &str| resolve_mig(text, &list, "").map_err(|e| e.to_string());
        assert_eq!(at("MIG-1111aaaa-0000-5000-8000-000000000002"), Ok(1));
        assert_eq!(at("mig-2222BBBB"), Ok(2), "a unique prefix, any case");
        assert_eq!(at("MIG-GPU-bbbb-1/8/0"), Ok(1), "MIG-GPU-<uuid>/<gi>/<ci>");
        assert_eq!(at("MIG-gpu-CCCC-2/2/0"), Ok(2));
        let err = at("MIG-1111aaaa").expect_err("two");
        assert!(err.contains("ambiguous: matches 2 MIG devices"), "{err}");
        let err = at("MIG-GPU-bbbb-1/9/0").expect_err("no GI 9");
        assert_eq!(
            err,
            "no GPU matches \"MIG-GPU-bbbb-1/9/0\" (a MIG device): this host has MIG devices \
             GPU 1 GI 7 CI 0 (1g.10gb, MIG-1111aaaa-0000-5000-8000-000000000001), \
             GPU 1 GI 8 CI 0 (1g.10gb, MIG-1111aaaa-0000-5000-8000-000000000002), \
             GPU 2 GI 2 CI 0 (3g.40gb, MIG-2222bbbb-0000-5000-8000-000000000003)"
        );
        let err = at("MIG-GPU-bbbb-1/x/0").expect_err("malformed");
        assert!(err.contains("write MIG-GPU-<gpu uuid>/"), "{err}");
        let err = resolve_mig("MIG-1", &[], "").expect_err("none").to_string();
        assert!(err.contains("no MIG devices"), "{err}");
    }

    #[test]
    fn resolved_mig_entries_are_measured_in_cuda_order() {
        let v =
            Visible::with_instances(host(), instances(), Some("MIG-GPU-cccc-2/2/0,0".to_owned()))
                .expect("resolves");
        assert_eq!(
            v.cuda,
            ["MIG-2222bbbb-0000-5000-8000-000000000003", "GPU-aaaa-0"]
        );
        assert_eq!(v.measurable(), v.cuda);
        assert_eq!(v.measured(None).expect("both"), v.cuda);
        assert_eq!(v.gpu_of(&v.cuda[0]).as_deref(), Some("GPU-cccc-2"));
        assert_eq!(v.gpu_of("GPU-aaaa-0").as_deref(), Some("GPU-aaaa-0"));
        assert!(v.describe().contains("cuda:0 = GPU 2 GI 2 CI 0 (3g.40gb"));
        assert_eq!(
            v.select(&Selector::Mig(
                "MIG-1111aaaa-0000-5000-8000-000000000001".into()
            ))
            .expect("any MIG device of the host"),
            "MIG-1111aaaa-0000-5000-8000-000000000001"
        );
        let err = Visible::with_instances(host(), instances(), Some("MIG-dead".to_owned()))
            .expect_err("no such MIG device")
            .to_string();
        assert!(
            err.contains("CUDA_VISIBLE_DEVICES entry \"MIG-dead\" (a MIG device)"),
            "{err}"
        );
    }
}
