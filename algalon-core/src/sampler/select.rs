//! Device selection: which GPUs a sampler reads, by the core's one device
//! grammar ([`crate::devices`]).

use nvml_wrapper::Nvml;

use crate::devices::{HostGpu, Selector, Visible, describe_host, parse_entry, resolve};
use crate::error::{Error, Result};

/// Resolves device selectors to NVML indices, in index order (every GPU
/// when `None`). Each selector is one entry of the device grammar: an NVML
/// index, a `GPU-` UUID or unique prefix (any case; an exact UUID wins), or
/// `cuda:N` — the N-th device this process's `CUDA_VISIBLE_DEVICES` leaves
/// it. A selector that does not parse, names a MIG instance or matches no
/// GPU (or several) is [`Error::NoSuchDevice`] naming what the host has.
pub(super) fn select_devices(nvml: &Nvml, selectors: Option<&[String]>) -> Result<Vec<u32>> {
    let count = nvml.device_count().map_err(|source| Error::Nvml {
        call: "nvmlDeviceGetCount_v2",
        source,
    })?;
    let Some(selectors) = selectors.filter(|s| !s.is_empty()) else {
        return Ok((0..count).collect());
    };
    let host: Vec<HostGpu> = (0..count)
        .map(|i| HostGpu {
            index: i,
            uuid: nvml.device_by_index(i).and_then(|d| d.uuid()).ok(),
        })
        .collect();
    let mut chosen: Vec<u32> = Vec::new();
    for text in selectors {
        let selector = parse_entry(text).map_err(|e| Error::NoSuchDevice {
            selector: format!("{:?} ({e})", text.trim()),
            available: describe_host(&host),
        })?;
        let position = match &selector {
            Selector::Cuda(_) => {
                let uuid = Visible::from_env(host.clone())?.select(&selector)?;
                resolve(&Selector::Uuid(uuid), &host, "")?
            }
            other => resolve(other, &host, "")?,
        };
        let index = host[position].index;
        if !chosen.contains(&index) {
            chosen.push(index);
        }
    }
    chosen.sort_unstable();
    Ok(chosen)
}
