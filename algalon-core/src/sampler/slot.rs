//! What the sampler keeps about one selected GPU between samples.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::catalog::Field;
use crate::procinfo::ProcessIdentity;
use crate::snapshot::GpuSample;

/// What the sampler knows about one selected GPU between samples.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) index: u32,
    pub(super) uuid: String,
    pub(super) pci_bus_id: String,
    pub(super) name: String,
    pub(super) minor_number: Option<u32>,
    pub(super) labels: BTreeMap<Field, String>,
    pub(super) identified: bool,
    /// Fields this GPU answered "not supported" for: not asked again.
    pub(super) unsupported: HashSet<Field>,
    /// Newest process-utilization timestamp seen, for the next query.
    pub(super) last_process_ts: u64,
    /// Identities of the processes seen last sample, so `/proc` is read
    /// once per process rather than once per sample.
    pub(super) identities: HashMap<u32, ProcessIdentity>,
    /// Marked down since it last answered: when it answers again, its XID
    /// events are registered again (NVML drops a lost GPU's registration).
    pub(super) was_down: bool,
}

impl Slot {
    pub(super) fn new(index: u32) -> Slot {
        Slot {
            index,
            uuid: String::new(),
            pci_bus_id: String::new(),
            name: String::new(),
            minor_number: None,
            labels: BTreeMap::new(),
            identified: false,
            unsupported: HashSet::new(),
            last_process_ts: 0,
            identities: HashMap::new(),
            was_down: false,
        }
    }
}

/// A sample of this GPU carrying its identity and labels, no readings yet.
pub(super) fn slot_sample(slot: &Slot) -> GpuSample {
    let mut gpu = GpuSample::new(
        slot.index,
        slot.uuid.clone(),
        slot.pci_bus_id.clone(),
        slot.name.clone(),
    );
    gpu.minor_number = slot.minor_number;
    gpu.labels = slot.labels.clone();
    gpu
}
