//! XID errors, delivered by an NVML event set rather than polled.
//!
//! A dedicated thread waits on `nvmlEventSetWait` for critical XID events of
//! the selected GPUs and records, per GPU, the last XID and how often each XID
//! occurred. The sampler reads that record; it never waits on events itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::error::NvmlError;
use parking_lot::Mutex;

/// How long one `nvmlEventSetWait` blocks: two wake-ups a second keep an idle
/// exporter idle, and stopping the sampler waits at most this long (NVML is
/// shut down only once the thread has let go of it).
const WAIT_MS: u32 = 500;

/// XID history of one GPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct XidRecord {
    pub last: Option<u64>,
    pub counts: BTreeMap<u64, u64>,
}

#[derive(Debug, Default)]
struct Shared {
    /// NVML indices whose XID events are being delivered.
    registered: Mutex<HashSet<u32>>,
    records: Mutex<HashMap<u32, XidRecord>>,
    stop: AtomicBool,
}

/// The running XID listener; stops its thread when dropped.
#[derive(Debug)]
pub(crate) struct XidListener {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl XidListener {
    /// Registers `indices` for critical-XID events and starts listening.
    /// Returns the listener even when no GPU supports XID events (then every
    /// GPU reports XID fields as absent).
    pub(crate) fn start(nvml: Arc<Nvml>, indices: Vec<u32>) -> std::io::Result<XidListener> {
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("algalon-xid".into())
            .spawn(move || listen(&nvml, &indices, &thread_shared, ready_tx))?;
        // Wait until registration is done so the first sample already knows
        // which GPUs deliver XIDs (the registration itself is quick).
        let _ = ready_rx.recv_timeout(Duration::from_secs(5));
        Ok(XidListener {
            shared,
            thread: Some(thread),
        })
    }

    /// The XID record of a GPU, or `None` when its XID events are not
    /// delivered (unsupported, or registration failed).
    pub(crate) fn record(&self, index: u32) -> Option<XidRecord> {
        if !self.shared.registered.lock().contains(&index) {
            return None;
        }
        Some(
            self.shared
                .records
                .lock()
                .get(&index)
                .cloned()
                .unwrap_or_default(),
        )
    }
}

impl Drop for XidListener {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn listen(nvml: &Nvml, indices: &[u32], shared: &Shared, ready: std::sync::mpsc::SyncSender<()>) {
    let set = register(nvml, indices, shared);
    let _ = ready.send(());
    let Some(set) = set else { return };
    while !shared.stop.load(Ordering::Relaxed) {
        match set.wait(WAIT_MS) {
            Ok(event) => {
                let Some(XidError::Value(xid)) = event.event_data else {
                    continue;
                };
                let Ok(index) = event.device.index() else {
                    // XID 79 ("fell off the bus") typically comes from a GPU
                    // that no longer answers at all.
                    log::warn!("XID {xid} reported for a GPU that no longer answers NVML");
                    continue;
                };
                log::warn!("GPU {index}: XID {xid}");
                let mut records = shared.records.lock();
                let record = records.entry(index).or_default();
                record.last = Some(xid);
                *record.counts.entry(xid).or_default() += 1;
            }
            Err(NvmlError::Timeout) => {}
            Err(e) => {
                // A lost GPU or a driver going away makes waits fail at once;
                // back off so the thread does not spin.
                log::debug!("nvmlEventSetWait failed: {e}");
                std::thread::sleep(Duration::from_millis(u64::from(WAIT_MS)));
            }
        }
    }
}

/// Builds an event set with every GPU that supports critical-XID events.
/// NVML releases the whole set when one registration fails, so a failing GPU
/// is left out and the set rebuilt with the others.
fn register<'n>(
    nvml: &'n Nvml,
    indices: &[u32],
    shared: &Shared,
) -> Option<nvml_wrapper::EventSet<'n>> {
    let supported: Vec<u32> = indices
        .iter()
        .copied()
        .filter(|&i| {
            nvml.device_by_index(i)
                .and_then(|d| d.supported_event_types())
                .map(|t| t.contains(EventTypes::CRITICAL_XID_ERROR))
                .unwrap_or(false)
        })
        .collect();
    let mut good: Vec<u32> = Vec::new();
    let mut set = None;
    for index in supported {
        let Some(base) = set.take().or_else(|| rebuild(nvml, &good)) else {
            break;
        };
        let registered = nvml
            .device_by_index(index)
            .ok()
            .and_then(|d| d.register_events(EventTypes::CRITICAL_XID_ERROR, base).ok());
        match registered {
            Some(s) => {
                set = Some(s);
                good.push(index);
            }
            None => log::info!("GPU {index}: XID events cannot be registered; XID series left out"),
        }
    }
    shared.registered.lock().extend(good.iter().copied());
    set
}

/// A fresh event set with `good` registered again (NVML freed the old one).
fn rebuild<'n>(nvml: &'n Nvml, good: &[u32]) -> Option<nvml_wrapper::EventSet<'n>> {
    let mut set = nvml.create_event_set().ok()?;
    for &index in good {
        set = nvml
            .device_by_index(index)
            .ok()?
            .register_events(EventTypes::CRITICAL_XID_ERROR, set)
            .ok()?;
    }
    Some(set)
}
