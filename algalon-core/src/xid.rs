//! XID errors, delivered by an NVML event set rather than polled.
//!
//! A dedicated thread waits on `nvmlEventSetWait` for critical XID events of
//! the selected GPUs and records, per GPU, the last XID and how often each XID
//! occurred. The sampler reads that record; it never waits on events itself.
//!
//! A GPU whose registration fails for a reason that may pass (anything but
//! "not supported") is registered again on the thread's next wake-up, and
//! the thread's NVML failures are handed to the sampler's error counts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;

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
    /// NVML failures since the sampler last took them, by call and error.
    errors: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    stop: AtomicBool,
}

impl Shared {
    fn count(&self, call: &'static str, e: &NvmlError) {
        *self
            .errors
            .lock()
            .entry((call, crate::sampler::error_name(e)))
            .or_default() += 1;
    }
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

    /// NVML failures of the listener since the last call, by call and error.
    pub(crate) fn take_errors(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        std::mem::take(&mut *self.shared.errors.lock())
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
    let mut reg = Registration {
        set: None,
        good: Vec::new(),
        pending: indices.to_vec(),
    };
    reg.retry(nvml, shared);
    let _ = ready.send(());
    let mut last_try = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        if !reg.pending.is_empty() && last_try.elapsed() >= RETRY {
            reg.retry(nvml, shared);
            last_try = Instant::now();
        }
        let Some(set) = reg.set.as_ref() else {
            if reg.pending.is_empty() {
                return; // no GPU delivers XIDs, for good
            }
            std::thread::sleep(RETRY);
            continue;
        };
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
                if !for_good(&e) {
                    shared.count("nvmlEventSetWait_v2", &e);
                }
                std::thread::sleep(Duration::from_millis(u64::from(WAIT_MS)));
            }
        }
    }
}

/// How often GPUs whose registration failed are tried again.
const RETRY: Duration = Duration::from_millis(WAIT_MS as u64);

/// Whether an error says the GPU will never deliver XID events.
fn for_good(e: &NvmlError) -> bool {
    matches!(
        e,
        NvmlError::NotSupported | NvmlError::FunctionNotFound | NvmlError::FailedToLoadSymbol(_)
    )
}

/// The event set and which GPUs it delivers for.
struct Registration<'n> {
    set: Option<nvml_wrapper::EventSet<'n>>,
    /// Registered in `set`.
    good: Vec<u32>,
    /// Failed for a reason that may pass: tried again.
    pending: Vec<u32>,
}

impl<'n> Registration<'n> {
    /// Registers every pending GPU that supports critical-XID events. NVML
    /// releases the whole set when one registration fails, so the set is
    /// then rebuilt with the GPUs registered so far.
    fn retry(&mut self, nvml: &'n Nvml, shared: &Shared) {
        let mut still = Vec::new();
        for index in std::mem::take(&mut self.pending) {
            let device = match nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    shared.count("nvmlDeviceGetHandleByIndex_v2", &e);
                    still.push(index);
                    continue;
                }
            };
            match device.supported_event_types() {
                Ok(t) if t.contains(EventTypes::CRITICAL_XID_ERROR) => {}
                Ok(_) => continue,
                Err(e) if for_good(&e) => continue,
                Err(e) => {
                    shared.count("nvmlDeviceGetSupportedEventTypes", &e);
                    still.push(index);
                    continue;
                }
            }
            let base = match self.set.take() {
                Some(set) => set,
                None => match self.rebuild(nvml, shared) {
                    Ok(set) => set,
                    Err(hopeless) => {
                        if hopeless {
                            // No event set can ever be made: no XIDs at all.
                            log::info!("NVML event sets are not supported; XID series left out");
                            self.pending.clear();
                            return;
                        }
                        still.push(index);
                        continue;
                    }
                },
            };
            match device.register_events(EventTypes::CRITICAL_XID_ERROR, base) {
                Ok(set) => {
                    self.set = Some(set);
                    self.good.push(index);
                    shared.registered.lock().insert(index);
                }
                Err(e) => {
                    if for_good(&e.error) {
                        log::info!(
                            "GPU {index}: XID events cannot be registered; XID series left out"
                        );
                    } else {
                        log::debug!(
                            "GPU {index}: XID registration failed ({}); retrying",
                            e.error
                        );
                        shared.count("nvmlDeviceRegisterEvents", &e.error);
                        still.push(index);
                    }
                }
            }
        }
        // `rebuild` may have put GPUs back too.
        self.pending.extend(still);
    }

    /// A fresh event set with the registered GPUs in it again; a GPU that
    /// fails now goes back to pending. `Err(true)`: event sets are not
    /// supported at all.
    fn rebuild(
        &mut self,
        nvml: &'n Nvml,
        shared: &Shared,
    ) -> Result<nvml_wrapper::EventSet<'n>, bool> {
        let mut set = match nvml.create_event_set() {
            Ok(set) => set,
            Err(e) if for_good(&e) => return Err(true),
            Err(e) => {
                shared.count("nvmlEventSetCreate", &e);
                return Err(false);
            }
        };
        for index in std::mem::take(&mut self.good) {
            let registered = nvml
                .device_by_index(index)
                .map_err(|e| ("nvmlDeviceGetHandleByIndex_v2", e))
                .and_then(|d| {
                    d.register_events(EventTypes::CRITICAL_XID_ERROR, set)
                        .map_err(|e| ("nvmlDeviceRegisterEvents", e.error))
                });
            match registered {
                Ok(s) => {
                    set = s;
                    self.good.push(index);
                }
                Err((call, e)) => {
                    shared.count(call, &e);
                    shared.registered.lock().remove(&index);
                    self.pending.push(index);
                    // The set is gone with the failed registration.
                    return self.rebuild(nvml, shared);
                }
            }
        }
        Ok(set)
    }
}
