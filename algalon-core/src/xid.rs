//! XID errors, delivered by an NVML event set rather than polled.
//!
//! A dedicated thread waits on `nvmlEventSetWait` for critical XID events of
//! the selected GPUs and records, per GPU, the last XID and how often each XID
//! occurred. The sampler reads that record; it never waits on events itself.
//!
//! Registration is kept up to date by the thread:
//!
//! - A GPU whose registration fails for a reason that may pass (anything but
//!   "not supported") is tried again, first after half a second, then with
//!   the wait doubling up to `RETRY_MAX` (5 s), so a GPU that stays lost costs a
//!   few NVML calls every few seconds.
//! - A GPU that was down (lost) and answers again is registered again at
//!   the thread's next wake-up (`XidListener::renew`, called by the
//!   sampler when it sees the GPU back): NVML does not keep a lost GPU's
//!   registration, and without this its XIDs after the recovery would never
//!   arrive. A renewal also cuts a pending GPU's back-off short.
//! - After NVML is re-initialised (driver reload) the sampler starts a new
//!   listener, which registers every GPU afresh.
//!
//! The thread's NVML failures are handed to the sampler's error counts once
//! per change: the first failure after a success, and each new (call, error)
//! after that — not once per retry, so a GPU that stays lost shows as one
//! error, not as a counter climbing for ever. While a GPU's registration is
//! failing its XID series are left out.

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

use crate::nvml_error::{ErrorCounts, Verdict, count_error, error_name, verdict};

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
    /// NVML failures since the sampler last took them, by GPU, call and error.
    errors: Mutex<ErrorCounts>,
    /// NVML indices of GPUs that came back: register them again.
    renew: Mutex<HashSet<u32>>,
    stop: AtomicBool,
}

impl Shared {
    fn count(&self, gpu: Option<u32>, call: &'static str, e: &NvmlError) {
        count_error(&mut self.errors.lock(), gpu, call, e);
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

    /// Registers the XID events of GPU `index` again at the thread's next
    /// wake-up: the GPU was down (lost) and answers again. Also retries at
    /// once a GPU whose registration was failing.
    pub(crate) fn renew(&self, index: u32) {
        self.shared.renew.lock().insert(index);
    }

    /// NVML failures of the listener since the last call, by call and error.
    pub(crate) fn take_errors(&self) -> ErrorCounts {
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
    let now = Instant::now();
    let mut reg = Registration {
        set: None,
        good: Vec::new(),
        pending: indices.iter().map(|&i| Pending::new(i, now)).collect(),
        failures: Failures::default(),
    };
    reg.retry_due(nvml, shared);
    let _ = ready.send(());
    while !shared.stop.load(Ordering::Relaxed) {
        let renewed: Vec<u32> = shared.renew.lock().drain().collect();
        for index in renewed {
            reg.renew(index);
        }
        reg.retry_due(nvml, shared);
        let Some(set) = reg.set.as_ref() else {
            let Some(due) = reg.pending.iter().map(|p| p.due).min() else {
                return; // no GPU delivers XIDs, for good
            };
            // Sleep in short steps: a stop or a renewal may come first.
            let nap = due.saturating_duration_since(Instant::now());
            std::thread::sleep(nap.min(RETRY_FIRST));
            continue;
        };
        match set.wait(WAIT_MS) {
            Ok(event) => {
                reg.failures.ok(Subject::Wait);
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
            Err(NvmlError::Timeout) => {
                reg.failures.ok(Subject::Wait);
            }
            Err(e) => {
                // A lost GPU or a driver going away makes waits fail at once;
                // back off so the thread does not spin.
                if !for_good(&e) {
                    reg.failures
                        .fail(shared, Subject::Wait, "nvmlEventSetWait_v2", &e);
                }
                std::thread::sleep(Duration::from_millis(u64::from(WAIT_MS)));
            }
        }
    }
}

/// The first wait before a failed registration is tried again.
const RETRY_FIRST: Duration = Duration::from_millis(WAIT_MS as u64);

/// The longest wait between two tries of a registration that keeps failing:
/// also how long a GPU can take to deliver XIDs again after a failure that
/// the sampler does not see (it renews a GPU it sees come back at once).
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether an error says the GPU will never deliver XID events.
fn for_good(e: &NvmlError) -> bool {
    matches!(verdict(e), Verdict::Unsupported)
}

/// What a listener failure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Subject {
    /// Registering one GPU's events.
    Gpu(u32),
    /// Creating the event set.
    Set,
    /// Waiting on the event set.
    Wait,
}

/// The last failure of each subject, so that a failure that repeats is
/// counted (and logged as a warning) once, not at every retry.
#[derive(Debug, Default)]
struct Failures {
    last: HashMap<Subject, (&'static str, &'static str)>,
}

impl Failures {
    fn fail(&mut self, shared: &Shared, subject: Subject, call: &'static str, e: &NvmlError) {
        let key = (call, error_name(e));
        if self.last.insert(subject, key) == Some(key) {
            log::debug!("{subject:?}: {call} still failing: {e}");
            return;
        }
        let gpu = match subject {
            Subject::Gpu(index) => Some(index),
            Subject::Set | Subject::Wait => None,
        };
        shared.count(gpu, call, e);
        match subject {
            Subject::Gpu(index) => log::warn!(
                "GPU {index}: XID events not registered ({call}: {e}); retrying, \
                 XID series left out meanwhile"
            ),
            Subject::Set => log::warn!("XID event set not created ({call}: {e}); retrying"),
            Subject::Wait => log::warn!("waiting for XID events failed ({call}: {e})"),
        }
    }

    /// Forgets the subject's failure: the next one is counted again.
    fn ok(&mut self, subject: Subject) {
        if self.last.remove(&subject).is_some()
            && let Subject::Gpu(index) = subject
        {
            log::info!("GPU {index}: XID events registered again");
        }
    }
}

/// A GPU whose registration is to be tried (again).
#[derive(Debug)]
struct Pending {
    index: u32,
    /// Not before this.
    due: Instant,
    /// The wait after the next failure.
    backoff: Duration,
}

impl Pending {
    fn new(index: u32, due: Instant) -> Pending {
        Pending {
            index,
            due,
            backoff: RETRY_FIRST,
        }
    }

    /// Tried and failed: wait longer before the next try.
    fn failed(mut self, now: Instant) -> Pending {
        self.due = now + self.backoff;
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
        self
    }
}

/// The event set and which GPUs it delivers for.
struct Registration<'n> {
    set: Option<nvml_wrapper::EventSet<'n>>,
    /// Registered in `set`.
    good: Vec<u32>,
    /// Failed for a reason that may pass, or came back: tried (again).
    pending: Vec<Pending>,
    failures: Failures,
}

impl<'n> Registration<'n> {
    /// GPU `index` came back: register it again now. A registered GPU stays
    /// in `set` meanwhile (its XID series stay until a registration fails).
    fn renew(&mut self, index: u32) {
        let now = Instant::now();
        if let Some(p) = self.pending.iter_mut().find(|p| p.index == index) {
            *p = Pending::new(index, now);
        } else if let Some(at) = self.good.iter().position(|&i| i == index) {
            self.good.remove(at);
            self.pending.push(Pending::new(index, now));
        }
        // Otherwise the GPU cannot deliver XIDs at all.
    }

    /// Registers every pending GPU that is due and supports critical-XID
    /// events. NVML releases the whole set when one registration fails, so
    /// the GPUs registered in it are then registered again, in a fresh set.
    /// `set` is `None` only while `good` is empty.
    fn retry_due(&mut self, nvml: &'n Nvml, shared: &Shared) {
        let now = Instant::now();
        let (mut due, mut still): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.due <= now);
        due.reverse(); // `pop` takes them in index order
        while let Some(p) = due.pop() {
            let index = p.index;
            let failed = |reg: &mut Self, call: &'static str, e: &NvmlError| {
                reg.failures.fail(shared, Subject::Gpu(index), call, e);
                shared.registered.lock().remove(&index);
            };
            let device = match nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    failed(self, "nvmlDeviceGetHandleByIndex_v2", &e);
                    still.push(p.failed(now));
                    continue;
                }
            };
            match device.supported_event_types() {
                Ok(t) if t.contains(EventTypes::CRITICAL_XID_ERROR) => {}
                Ok(_) => {
                    shared.registered.lock().remove(&index);
                    continue;
                }
                Err(e) if for_good(&e) => {
                    shared.registered.lock().remove(&index);
                    continue;
                }
                Err(e) => {
                    failed(self, "nvmlDeviceGetSupportedEventTypes", &e);
                    still.push(p.failed(now));
                    continue;
                }
            }
            let base = match self.set.take() {
                Some(set) => set,
                None => match nvml.create_event_set() {
                    Ok(set) => {
                        self.failures.ok(Subject::Set);
                        set
                    }
                    Err(e) if for_good(&e) => {
                        // No event set can ever be made: no XIDs at all.
                        log::info!("NVML event sets are not supported; XID series left out");
                        shared.registered.lock().clear();
                        return;
                    }
                    Err(e) => {
                        self.failures
                            .fail(shared, Subject::Set, "nvmlEventSetCreate", &e);
                        still.push(p.failed(now));
                        continue;
                    }
                },
            };
            match device.register_events(EventTypes::CRITICAL_XID_ERROR, base) {
                Ok(set) => {
                    self.set = Some(set);
                    self.good.push(index);
                    self.failures.ok(Subject::Gpu(index));
                    shared.registered.lock().insert(index);
                }
                Err(e) => {
                    // The set is gone with the failed registration: the GPUs
                    // it held are registered again, in a fresh one.
                    due.extend(self.good.drain(..).map(|i| Pending::new(i, now)));
                    if for_good(&e.error) {
                        log::info!(
                            "GPU {index}: XID events cannot be registered; XID series left out"
                        );
                        shared.registered.lock().remove(&index);
                    } else {
                        failed(self, "nvmlDeviceRegisterEvents", &e.error);
                        still.push(p.failed(now));
                    }
                }
            }
        }
        self.pending = still;
    }
}
