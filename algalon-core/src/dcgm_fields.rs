//! Every name a dcgm-exporter collectors CSV may give a DCGM field.
//!
//! dcgm-exporter looks a CSV row's first column up in go-dcgm's field maps:
//! the names `dcgm_fields.h` defines with a number, the deprecated aliases it
//! keeps for renamed fields (`DCGM_FI_DEV_CLOCK_THROTTLE_REASONS` is
//! `DCGM_FI_DEV_CLOCKS_EVENT_REASONS`; DCGM 4.6 renamed most fields, so
//! `DCGM_FI_DEV_GPU_UTIL` is now an alias of `DCGM_FI_DEV_GPU_UTIL_RATIO`),
//! and dcgm-exporter 1.x's lowercase names (`dcgm_sm_clock`) that NVIDIA's
//! `1.x-compatibility-metrics.csv` uses. This module holds the same three
//! lists, so a CSV that names a real DCGM field is never rejected as unknown:
//! a field the catalog can read is exported, any other one is skipped with a
//! reason.
//!
//! The table is generated from NVIDIA's files, vendored unchanged under
//! `testing/upstream/go-dcgm/` (DCGM's `dcgm_fields.h` as go-dcgm ships it,
//! and go-dcgm's `legacy_fields.csv`), by the rules of go-dcgm's
//! `cmd/gen-fields`, which builds the maps dcgm-exporter reads;
//! `tests/dcgm_data.rs` re-derives it and fails when the two differ
//! (`make dcgm-data` rewrites it).

use serde::Serialize;

#[rustfmt::skip]
mod generated;

/// How a name spells its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spelling {
    /// The name `dcgm_fields.h` defines the field with.
    Current,
    /// A deprecated alias `dcgm_fields.h` keeps for a renamed field.
    Deprecated,
    /// dcgm-exporter 1.x's name (`dcgm_sm_clock`).
    Exporter1x,
}

/// One name of a DCGM field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct DcgmName {
    /// The name, as a collectors CSV writes it.
    pub name: &'static str,
    /// DCGM's numeric field id.
    pub id: u16,
    /// Which kind of name it is.
    pub spelling: Spelling,
}

/// Looks a name up exactly (case-sensitive, as dcgm-exporter does).
pub fn lookup(name: &str) -> Option<DcgmName> {
    let names = generated::NAMES;
    names
        .binary_search_by(|(n, _, _)| (*n).cmp(name))
        .ok()
        .map(|i| row(names[i]))
}

/// Every known name, sorted by name.
pub fn names() -> impl Iterator<Item = DcgmName> {
    generated::NAMES.iter().copied().map(row)
}

/// Every name of field `id` (its current name, deprecated aliases and
/// dcgm-exporter 1.x name).
pub fn names_of(id: u16) -> impl Iterator<Item = DcgmName> {
    names().filter(move |n| n.id == id)
}

/// The name `dcgm_fields.h` defines field `id` with today.
pub fn current_name(id: u16) -> Option<&'static str> {
    names_of(id)
        .find(|n| n.spelling == Spelling::Current)
        .map(|n| n.name)
}

/// dcgm-exporter 1.x's name for field `id` (`dcgm_sm_clock` for
/// `DCGM_FI_DEV_SM_CLOCK`), where 1.x exported it.
pub fn exporter_1x_name(id: u16) -> Option<&'static str> {
    names_of(id)
        .find(|n| n.spelling == Spelling::Exporter1x)
        .map(|n| n.name)
}

/// Why Algalon cannot export a DCGM field that its catalog has no NVML source
/// for, judged by the kind of field (its current name): NVSwitch, CPU,
/// ConnectX, vGPU, diagnostics, profiling, or a GPU field NVML reads that
/// Algalon does not.
pub fn unprovided_reason(id: u16) -> &'static str {
    let name = current_name(id).unwrap_or_default();
    if id == 0 {
        "DCGM's placeholder for an unknown field, not a reading"
    } else if name.contains("NVSWITCH") {
        "an NVSwitch field: NVSwitch counters come from DCGM and the fabric manager, and \
         Algalon reads GPUs through NVML only"
    } else if name.starts_with("DCGM_FI_DEV_CPU_") {
        "a CPU field (Grace): Algalon reads GPUs through NVML only"
    } else if name.contains("CONNECTX") {
        "a ConnectX NIC field: Algalon reads GPUs through NVML only"
    } else if name.contains("VGPU") {
        "a vGPU field, reported by DCGM's host engine on vGPU hosts"
    } else if name.contains("_DIAG_") {
        "a DCGM diagnostic result: diagnostics run inside DCGM"
    } else if name.starts_with("DCGM_FI_PROF_") {
        "a DCGM profiling field with no NVML GPM metric that Algalon reads"
    } else if name.starts_with("DCGM_FI_SYSTEM_") {
        "a host-level DCGM field, not a per-GPU reading"
    } else {
        "Algalon has no NVML source for this field yet (the metric list in README.md names \
         every field it exports)"
    }
}

fn row((name, id, spelling): (&'static str, u16, Spelling)) -> DcgmName {
    DcgmName { name, id, spelling }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_fields_keep_their_old_names() {
        let old = lookup("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS").expect("known");
        let new = lookup("DCGM_FI_DEV_CLOCKS_EVENT_REASONS").expect("known");
        assert_eq!(old.id, 112);
        assert_eq!(new.id, 112);
        assert_eq!(old.spelling, Spelling::Deprecated);
        assert_eq!(new.spelling, Spelling::Current);
        assert_eq!(current_name(112), Some("DCGM_FI_DEV_CLOCKS_EVENT_REASONS"));

        let util = lookup("DCGM_FI_DEV_GPU_UTIL").expect("the 4.5 name");
        assert_eq!(util.id, 203);
        assert_eq!(current_name(203), Some("DCGM_FI_DEV_GPU_UTIL_RATIO"));
        assert_eq!(exporter_1x_name(203), Some("dcgm_gpu_utilization"));
        let names: Vec<_> = names_of(203).map(|n| n.name).collect();
        assert!(names.contains(&"dcgm_gpu_utilization"), "{names:?}");
    }

    #[test]
    fn exporter_1x_names_resolve() {
        let sm = lookup("dcgm_sm_clock").expect("1.x name");
        assert_eq!((sm.id, sm.spelling), (100, Spelling::Exporter1x));
        assert_eq!(lookup("DCGM_SM_CLOCK"), None, "names are case-sensitive");
        assert_eq!(lookup("DCGM_FI_DEV_GPU_TMP"), None);
    }

    #[test]
    fn range_markers_are_not_fields() {
        assert_eq!(lookup("DCGM_FI_FIRST_NVSWITCH_FIELD_ID"), None);
        assert_eq!(lookup("DCGM_FI_MAX_FIELDS"), None);
    }

    #[test]
    fn reasons_name_the_kind_of_field() {
        let id = |n: &str| lookup(n).expect(n).id;
        assert!(unprovided_reason(id("DCGM_FI_DEV_NVSWITCH_LINK_CRC_ERRORS")).contains("NVSwitch"));
        assert!(unprovided_reason(id("DCGM_FI_DEV_CPU_UTIL_TOTAL")).contains("CPU"));
        assert!(unprovided_reason(id("DCGM_FI_PROF_C2C_TX_ALL_BYTES")).contains("profiling"));
        assert!(unprovided_reason(id("DCGM_FI_DEV_VGPU_LICENSE_STATUS")).contains("vGPU"));
    }
}
