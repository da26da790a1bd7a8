//! Which GPUs a process may use, in CUDA's order, and the `Gpu` view.
//!
//! CUDA numbers the devices a process sees from 0 in the order of
//! `CUDA_VISIBLE_DEVICES`; NVML numbers every device of the host. Everything
//! the Python API calls an index is CUDA's, resolved to a UUID (and so to
//! the physical GPU) with [`algalon_core::jobs::resolve_visible_devices`].

use std::path::PathBuf;

use algalon_core::jobs::resolve_visible_devices;
use algalon_core::{Error, GpuSample, Result, Sampler, SamplerOptions, Snapshot};
use pyo3::prelude::*;

/// Environment variable CUDA reads to choose and order devices.
pub const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// The host's GPUs as NVML sees them and the process's view of them.
#[derive(Debug, Clone)]
pub struct Visible {
    /// Every GPU of the host: (NVML index, UUID), NVML order.
    pub all: Vec<(u32, String)>,
    /// UUIDs this process may use, in CUDA order (position = CUDA index).
    /// `MIG-…` ids stay as given: the core cannot yet map a MIG instance to
    /// its parent GPU, so they hold their CUDA index but are not measured.
    pub cuda: Vec<String>,
    /// The value of `CUDA_VISIBLE_DEVICES`, when set.
    pub env: Option<String>,
}

impl Visible {
    /// Resolves `CUDA_VISIBLE_DEVICES` (unset: every GPU) against a snapshot
    /// of all GPUs.
    pub fn from_snapshot(snap: &Snapshot, env: Option<String>) -> Result<Visible> {
        let all: Vec<(u32, String)> = snap
            .gpus
            .iter()
            .map(|g| (g.index, g.uuid.clone()))
            .collect();
        let cuda = match &env {
            None => all.iter().map(|(_, u)| u.clone()).collect(),
            Some(value) => resolve_visible_devices(value, &all)?,
        };
        Ok(Visible { all, cuda, env })
    }

    /// The visible `MIG-…` instances (not measured, see [`Visible::cuda`]).
    pub fn mig(&self) -> Vec<String> {
        self.cuda
            .iter()
            .filter(|u| u.starts_with("MIG-"))
            .cloned()
            .collect()
    }

    /// The visible whole GPUs, in CUDA order.
    pub fn measurable(&self) -> Vec<String> {
        self.cuda
            .iter()
            .filter(|u| !u.starts_with("MIG-"))
            .cloned()
            .collect()
    }

    /// CUDA index of a GPU, when this process can see it.
    pub fn cuda_index(&self, uuid: &str) -> Option<u32> {
        self.cuda
            .iter()
            .position(|u| u == uuid)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Resolves one `gpus=[...]` entry: an int is a CUDA index, a string a
    /// `GPU-` UUID or a unique prefix of one.
    pub fn select(&self, selector: &GpuSelector) -> Result<String> {
        match selector {
            GpuSelector::Cuda(i) => usize::try_from(*i)
                .ok()
                .and_then(|i| self.cuda.get(i))
                .filter(|u| !u.starts_with("MIG-"))
                .cloned()
                .ok_or_else(|| Error::NoSuchDevice {
                    selector: if self
                        .cuda
                        .get(usize::try_from(*i).unwrap_or(usize::MAX))
                        .is_some()
                    {
                        format!("CUDA index {i} (a MIG instance: not measurable yet)")
                    } else {
                        format!("CUDA index {i}")
                    },
                    available: self.describe_cuda(),
                }),
            GpuSelector::Uuid(s) => {
                if s.trim().parse::<i64>().is_ok() {
                    // "0" as a string would be an NVML index to the core's
                    // resolver: refuse the ambiguity rather than guess.
                    return Err(Error::NoSuchDevice {
                        selector: format!("{s:?} (pass CUDA indices as int, UUIDs as str)"),
                        available: self.describe_cuda(),
                    });
                }
                let found = resolve_visible_devices(s, &self.all).map_err(|e| match e {
                    Error::NoSuchDevice {
                        selector,
                        available,
                    } => Error::NoSuchDevice {
                        selector: selector.replace("CUDA_VISIBLE_DEVICES entry", "gpus entry"),
                        available,
                    },
                    other => other,
                })?;
                found.into_iter().next().ok_or_else(|| Error::NoSuchDevice {
                    selector: format!("{s:?}"),
                    available: self.describe_cuda(),
                })
            }
        }
    }

    fn describe_cuda(&self) -> String {
        let env = match &self.env {
            Some(v) => format!("CUDA_VISIBLE_DEVICES={v:?}"),
            None => "CUDA_VISIBLE_DEVICES unset".to_owned(),
        };
        if self.cuda.is_empty() {
            return format!("no GPU visible to this process ({env})");
        }
        let list: Vec<String> = self
            .cuda
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let nvml = self.all.iter().find(|(_, x)| x == u).map(|(n, _)| *n);
                match nvml {
                    Some(n) => format!("cuda:{i} = GPU {n} ({u})"),
                    None => format!("cuda:{i} ({u})"),
                }
            })
            .collect();
        format!("{} ({env})", list.join(", "))
    }
}

/// One entry of `gpus=[...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuSelector {
    /// CUDA index (into the devices this process sees).
    Cuda(i64),
    /// `GPU-…` UUID or a unique prefix.
    Uuid(String),
}

impl<'a, 'py> FromPyObject<'a, 'py> for GpuSelector {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(i) = ob.extract::<i64>() {
            return Ok(GpuSelector::Cuda(i));
        }
        if let Ok(s) = ob.extract::<String>() {
            return Ok(GpuSelector::Uuid(s));
        }
        Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "a GPU is a CUDA index (int) or a UUID (str), not {}",
            ob.get_type().name()?
        )))
    }
}

/// Options for the per-job sampler: only the fields job accounting needs
/// (the core always adds them), per-process memory on, no XID listener.
pub fn sampler_options(nvml_lib: Option<PathBuf>, devices: Option<Vec<String>>) -> SamplerOptions {
    SamplerOptions {
        nvml_lib,
        fields: Vec::new(),
        devices,
        processes: true,
        xid_events: false,
        ..SamplerOptions::default()
    }
}

/// Opens NVML, samples every GPU once and resolves this process's view.
pub fn probe(nvml_lib: Option<PathBuf>) -> Result<(Sampler, Snapshot, Visible)> {
    let mut sampler = Sampler::new(sampler_options(nvml_lib, None))?;
    let snap = sampler.sample();
    let env = std::env::var(CUDA_VISIBLE_DEVICES).ok();
    let visible = Visible::from_snapshot(&snap, env)?;
    Ok((sampler, snap, visible))
}

/// One GPU at one instant.
#[pyclass(module = "algalon", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct Gpu {
    /// Index in CUDA's numbering for this process (`cuda:N`); `None` when
    /// the GPU is not visible to this process.
    pub cuda_index: Option<u32>,
    /// Index in NVML's numbering (`nvidia-smi`, the `gpu` label of dashboards).
    pub nvml_index: u32,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// Model name.
    pub name: String,
    /// PCI bus id, `00000000:18:00.0`.
    pub pci_bus_id: String,
    /// False when the GPU is lost or failing.
    pub up: bool,
    /// GPU utilization, %.
    pub utilization: Option<f64>,
    /// Framebuffer memory used, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Framebuffer memory total, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Power draw, W.
    pub power_w: Option<f64>,
    /// Temperature, °C.
    pub temperature_c: Option<f64>,
    /// NVML's total-energy counter (since driver load), J; `None` on GPUs
    /// without one.
    pub energy_j: Option<f64>,
    /// PIDs with a context on the GPU.
    pub pids: Vec<u32>,
}

impl Gpu {
    /// The view of one sampled GPU.
    pub fn from_sample(g: &GpuSample, cuda_index: Option<u32>) -> Gpu {
        Gpu {
            cuda_index,
            nvml_index: g.index,
            uuid: g.uuid.clone(),
            name: g.name.clone(),
            pci_bus_id: g.pci_bus_id.clone(),
            up: g.up,
            utilization: g.gpu_util(),
            memory_used_bytes: g.memory_used_bytes(),
            memory_total_bytes: g.memory_total_bytes(),
            power_w: g.power_w(),
            temperature_c: g.temperature_c(),
            energy_j: g.energy_mj().map(|mj| mj as f64 / 1000.0),
            pids: g.processes.iter().map(|p| p.pid).collect(),
        }
    }
}

#[pymethods]
impl Gpu {
    fn __repr__(&self) -> String {
        let cuda = self
            .cuda_index
            .map_or_else(|| "not visible".to_owned(), |i| format!("cuda:{i}"));
        let opt = |v: Option<f64>, unit: &str| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}{unit}"))
        };
        format!(
            "<Gpu {cuda} = GPU {} {} {:?}{}: util {}, power {}, {}>",
            self.nvml_index,
            self.uuid,
            self.name,
            if self.up { "" } else { " DOWN" },
            opt(self.utilization, "%"),
            opt(self.power_w, " W"),
            opt(self.temperature_c, " C"),
        )
    }
}

/// GPUs of a snapshot in CUDA order (the visible ones), then the others
/// that were sampled (chosen by UUID outside `CUDA_VISIBLE_DEVICES`).
pub fn gpus_in_cuda_order(snap: &Snapshot, visible: &Visible, only: Option<&[String]>) -> Vec<Gpu> {
    let wanted = |u: &String| only.is_none_or(|o| o.contains(u));
    let mut out: Vec<Gpu> = visible
        .cuda
        .iter()
        .filter(|u| wanted(u))
        .filter_map(|u| snap.gpu_by_uuid(u))
        .map(|g| Gpu::from_sample(g, visible.cuda_index(&g.uuid)))
        .collect();
    for g in &snap.gpus {
        if wanted(&g.uuid) && visible.cuda_index(&g.uuid).is_none() {
            out.push(Gpu::from_sample(g, None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible(env: Option<&str>) -> Result<Visible> {
        let mut snap = Snapshot {
            hostname: "h".into(),
            driver_version: None,
            nvml_version: None,
            cuda_driver_version: None,
            taken_at: std::time::SystemTime::now(),
            duration: std::time::Duration::ZERO,
            seq: 1,
            gpus: Vec::new(),
            errors: Vec::new(),
        };
        for (i, u) in ["GPU-aaaa-0", "GPU-bbbb-1", "GPU-cccc-2"]
            .iter()
            .enumerate()
        {
            snap.gpus.push(GpuSample::new(
                i as u32,
                (*u).to_owned(),
                String::new(),
                "X".into(),
            ));
        }
        Visible::from_snapshot(&snap, env.map(str::to_owned))
    }

    #[test]
    fn cuda_indices_follow_cuda_visible_devices() {
        let v = visible(Some("2,0")).expect("resolves");
        assert_eq!(v.cuda, ["GPU-cccc-2", "GPU-aaaa-0"]);
        assert_eq!(v.cuda_index("GPU-aaaa-0"), Some(1));
        assert_eq!(v.cuda_index("GPU-bbbb-1"), None);
        assert_eq!(
            v.select(&GpuSelector::Cuda(0)).expect("cuda:0"),
            "GPU-cccc-2"
        );
        assert_eq!(
            v.select(&GpuSelector::Uuid("bbbb".into())).expect("uuid"),
            "GPU-bbbb-1"
        );
        let err = v
            .select(&GpuSelector::Cuda(2))
            .expect_err("cuda:2")
            .to_string();
        assert!(err.contains("CUDA index 2"), "{err}");
        assert!(err.contains("cuda:1 = GPU 0"), "{err}");
        assert!(v.select(&GpuSelector::Uuid("1".into())).is_err());
    }

    #[test]
    fn unset_means_every_gpu_and_mig_entries_are_kept_apart() {
        assert_eq!(visible(None).expect("all").cuda.len(), 3);
        let v = visible(Some("MIG-1234,1")).expect("mig");
        assert_eq!(v.mig(), ["MIG-1234"]);
        assert_eq!(v.measurable(), ["GPU-bbbb-1"]);
        assert_eq!(v.cuda_index("GPU-bbbb-1"), Some(1));
        assert!(v.select(&GpuSelector::Cuda(0)).is_err());
        assert!(visible(Some("7")).is_err());
    }
}
