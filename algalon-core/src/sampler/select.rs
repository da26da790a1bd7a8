//! Device selection: which GPUs a sampler reads.

use nvml_wrapper::Nvml;

use crate::error::{Error, Result};

/// Resolves device selectors to NVML indices, in index order (every GPU
/// when `None`). A number is an index; anything else is a UUID, matched
/// case-insensitively, exactly or else by a unique prefix.
pub(super) fn select_devices(nvml: &Nvml, selectors: Option<&[String]>) -> Result<Vec<u32>> {
    let count = nvml.device_count().map_err(|source| Error::Nvml {
        call: "nvmlDeviceGetCount_v2",
        source,
    })?;
    let Some(selectors) = selectors.filter(|s| !s.is_empty()) else {
        return Ok((0..count).collect());
    };
    let uuids: Vec<Option<String>> = (0..count)
        .map(|i| nvml.device_by_index(i).and_then(|d| d.uuid()).ok())
        .collect();
    let mut chosen: Vec<u32> = Vec::new();
    for selector in selectors {
        let s = selector.trim();
        let matched: Vec<u32> = if let Ok(i) = s.parse::<u32>() {
            (i < count).then_some(i).into_iter().collect()
        } else {
            let wanted = s.to_ascii_lowercase();
            let exact: Vec<u32> = (0..count)
                .filter(|&i| {
                    uuids[i as usize].as_deref().map(str::to_ascii_lowercase)
                        == Some(wanted.clone())
                })
                .collect();
            if exact.is_empty() {
                (0..count)
                    .filter(|&i| {
                        uuids[i as usize]
                            .as_deref()
                            .is_some_and(|u| u.to_ascii_lowercase().starts_with(&wanted))
                    })
                    .collect()
            } else {
                exact
            }
        };
        match matched.as_slice() {
            [i] => {
                if !chosen.contains(i) {
                    chosen.push(*i);
                }
            }
            _ => {
                let available = (0..count)
                    .map(|i| match &uuids[i as usize] {
                        Some(u) => format!("{i} ({u})"),
                        None => i.to_string(),
                    })
                    .collect::<Vec<_>>();
                let available = if available.is_empty() {
                    "no GPUs".to_owned()
                } else {
                    format!("GPUs {}", available.join(", "))
                };
                let selector = if matched.len() > 1 {
                    format!("{s:?} (ambiguous: matches {} GPUs)", matched.len())
                } else {
                    format!("{s:?}")
                };
                return Err(Error::NoSuchDevice {
                    selector,
                    available,
                });
            }
        }
    }
    chosen.sort_unstable();
    Ok(chosen)
}
