//! The background sampler: a fixed-rate thread that publishes the latest
//! snapshot, so that readers never wait on NVML.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::sync::{Condvar, PoisonError};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::sampler::Sampler;
use crate::snapshot::Snapshot;

/// Samples on a fixed-rate thread and publishes the latest snapshot.
///
/// Readers call [`BackgroundSampler::latest`], which clones an `Arc` under a
/// lock held for nanoseconds: a slow or hung NVML call delays the next
/// snapshot, never a reader. The thread stops when this value is dropped.
pub struct BackgroundSampler {
    shared: Arc<BgShared>,
    thread: Option<JoinHandle<()>>,
}

type OnSample = Box<dyn FnMut(&Arc<Snapshot>) + Send>;

struct BgShared {
    latest: RwLock<Arc<Snapshot>>,
    /// The sampler and the callback, taken together so that snapshots are
    /// published (and handed to the callback) in the order they were taken.
    engine: Mutex<(Sampler, OnSample)>,
    /// The thread's stop flag and wake-up. `std`'s futex-based pair, not
    /// parking_lot's: the thread spends its life parked here, and
    /// parking_lot records parked threads in a process-wide table that a
    /// `fork()`ed child inherits with entries for threads it does not have —
    /// a fresh sampler in the child then walked them and aborted.
    stop: std::sync::Mutex<bool>,
    wake: Condvar,
    interval: Duration,
}

impl BgShared {
    fn sample_and_publish(&self) -> Arc<Snapshot> {
        let mut engine = self.engine.lock();
        let (sampler, on_sample) = &mut *engine;
        let snapshot = Arc::new(sampler.sample());
        *self.latest.write() = Arc::clone(&snapshot);
        on_sample(&snapshot);
        snapshot
    }
}

impl std::fmt::Debug for BackgroundSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundSampler")
            .field("interval", &self.shared.interval)
            .field("seq", &self.shared.latest.read().seq)
            .finish()
    }
}

/// How long dropping a [`BackgroundSampler`] waits for an in-flight sample
/// (a hung NVML call) before leaving the thread to finish on its own.
const DROP_WAIT: Duration = Duration::from_secs(5);

impl BackgroundSampler {
    /// Takes a first sample now (so [`latest`](Self::latest) has data at
    /// once), then samples every `interval` on a thread named
    /// `algalon-sampler`. `on_sample` runs after each sample is published —
    /// the exporter pre-encodes its `/metrics` body there, the job tracker
    /// accumulates windows.
    pub fn spawn<F>(mut sampler: Sampler, interval: Duration, mut on_sample: F) -> Result<Self>
    where
        F: FnMut(&Arc<Snapshot>) + Send + 'static,
    {
        if interval < Duration::from_millis(1) {
            return Err(Error::InvalidInterval(interval));
        }
        let first = Arc::new(sampler.sample());
        on_sample(&first);
        let shared = Arc::new(BgShared {
            latest: RwLock::new(first),
            engine: Mutex::new((sampler, Box::new(on_sample))),
            stop: std::sync::Mutex::new(false),
            wake: Condvar::new(),
            interval,
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("algalon-sampler".into())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                loop {
                    {
                        let mut stop = thread_shared
                            .stop
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        loop {
                            let now = Instant::now();
                            if *stop || now >= next {
                                break;
                            }
                            stop = thread_shared
                                .wake
                                .wait_timeout(stop, next - now)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                        }
                        if *stop {
                            return;
                        }
                    }
                    thread_shared.sample_and_publish();
                    next += interval;
                    let now = Instant::now();
                    if next < now {
                        // Sampling took longer than the interval: skip the
                        // missed ticks instead of bursting to catch up.
                        let behind = now - next;
                        let skip = behind.as_nanos() / interval.as_nanos() + 1;
                        next += interval * u32::try_from(skip).unwrap_or(u32::MAX);
                    }
                }
            })?;
        Ok(BackgroundSampler {
            shared,
            thread: Some(thread),
        })
    }

    /// The most recent snapshot.
    pub fn latest(&self) -> Arc<Snapshot> {
        Arc::clone(&self.shared.latest.read())
    }

    /// Takes a sample now, on the calling thread, and publishes it like a
    /// scheduled one (the callback runs too). Job windows use this for exact
    /// boundaries. Waits for an in-flight scheduled sample to finish first.
    pub fn sample_now(&self) -> Arc<Snapshot> {
        self.shared.sample_and_publish()
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.shared.interval
    }

    /// Stops the thread and waits for it (at most one in-flight sample).
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops the thread, waiting at most `timeout` for an in-flight sample.
    /// Returns false when the thread was still busy (a hung NVML call); it is
    /// then left to exit on its own when the call returns.
    pub fn stop_timeout(mut self, timeout: Duration) -> bool {
        self.stop_within(timeout)
    }

    fn signal_stop(&self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
    }

    fn stop_within(&mut self, timeout: Duration) -> bool {
        self.signal_stop();
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                log::warn!("the sampling thread is stuck in an NVML call; leaving it behind");
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = thread.join();
        true
    }
}

impl Drop for BackgroundSampler {
    fn drop(&mut self) {
        self.stop_within(DROP_WAIT);
    }
}
