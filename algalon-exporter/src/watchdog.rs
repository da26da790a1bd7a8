//! Logs an NVML call that hangs, once when the sample has run past the
//! `/health` staleness limit and once when it finishes, with the GPU it is
//! stuck on (index and UUID) and how long it took. The sampler's own thread
//! is the one stuck, so this watches from outside: the age of the last
//! published sample and the core's [`SampleProgress`] say where it is.
//!
//! [`SampleProgress`]: algalon_core::SampleProgress

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sampling::Sampling;
use crate::state::{Published, Shared};

/// How often the last sample's age is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// A hang that started or ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// No sample finished for `waited`; the sampler is in a call on `gpu`
    /// (`None`: a host-level call).
    Hung {
        /// The GPU whose call hangs.
        gpu: Option<u32>,
        /// Since the last sample finished.
        waited: Duration,
    },
    /// A sample finished again after `after`.
    Recovered {
        /// The GPU named when the hang was logged.
        gpu: Option<u32>,
        /// From the last sample before the hang to the first after it.
        after: Duration,
    },
}

/// The hang state machine, fed the published sample on every check.
#[derive(Debug)]
pub struct Watchdog {
    limit: Duration,
    /// The sequence number, finish time and GPU of the sample before the
    /// hang, while one is logged.
    hung: Option<(u64, Instant, Option<u32>)>,
}

impl Watchdog {
    /// A watchdog that calls a sample older than `limit` hung.
    pub fn new(limit: Duration) -> Self {
        Watchdog { limit, hung: None }
    }

    /// What changed at `now`, given the last published sample.
    pub fn check(&mut self, now: Instant, published: &Published) -> Option<Event> {
        if published.seq == 0 {
            return None;
        }
        match self.hung {
            None => {
                let waited = now.saturating_duration_since(published.completed);
                if waited <= self.limit {
                    return None;
                }
                let gpu = published.progress.as_ref().and_then(|p| p.current_gpu());
                self.hung = Some((published.seq, published.completed, gpu));
                Some(Event::Hung { gpu, waited })
            }
            Some((seq, before, gpu)) if published.seq != seq => {
                self.hung = None;
                Some(Event::Recovered {
                    gpu,
                    after: published.completed.saturating_duration_since(before),
                })
            }
            Some(_) => None,
        }
    }
}

/// Starts the thread that logs hangs of `sampling`'s NVML calls.
pub fn spawn(published: Shared, sampling: &Arc<Sampling>, limit: Duration) -> std::io::Result<()> {
    let sampling = Arc::downgrade(sampling);
    std::thread::Builder::new()
        .name("algalon-watchdog".into())
        .spawn(move || {
            let mut watchdog = Watchdog::new(limit);
            loop {
                std::thread::sleep(CHECK_EVERY);
                let Some(sampling) = sampling.upgrade() else {
                    return;
                };
                let Some(event) = watchdog.check(Instant::now(), &published.load()) else {
                    continue;
                };
                let uuid_of = |gpu: Option<u32>| {
                    gpu.and_then(|i| {
                        sampling
                            .latest()
                            .and_then(|s| s.gpu(i).map(|g| g.uuid.clone()))
                    })
                    .unwrap_or_default()
                };
                log(&event, &uuid_of);
            }
        })
        .map(|_| ())
}

fn log(event: &Event, uuid_of: &dyn Fn(Option<u32>) -> String) {
    let on = |gpu: Option<u32>, uuid: &str| match gpu {
        Some(i) => format!("GPU {i} ({uuid})"),
        None => "a host-level call".to_owned(),
    };
    match *event {
        Event::Hung { gpu, waited } => {
            let uuid = uuid_of(gpu);
            tracing::warn!(
                gpu,
                uuid = %uuid,
                seconds = waited.as_secs_f64(),
                "NVML hangs: no sample finished for {:.1} s, stuck on {}",
                waited.as_secs_f64(),
                on(gpu, &uuid)
            );
        }
        Event::Recovered { gpu, after } => {
            let uuid = uuid_of(gpu);
            tracing::info!(
                gpu,
                uuid = %uuid,
                seconds = after.as_secs_f64(),
                "NVML answers again: the sample stuck on {} finished after {:.1} s",
                on(gpu, &uuid),
                after.as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hang_is_reported_once_at_start_and_once_at_recovery() {
        let limit = Duration::from_secs(10);
        let mut w = Watchdog::new(limit);
        let t0 = Instant::now();
        let mut p = Published::empty();
        assert_eq!(
            w.check(t0 + Duration::from_secs(60), &p),
            None,
            "no sample yet"
        );
        p.seq = 1;
        p.completed = t0;
        assert_eq!(w.check(t0 + Duration::from_secs(5), &p), None);
        assert_eq!(
            w.check(t0 + Duration::from_secs(11), &p),
            Some(Event::Hung {
                gpu: None,
                waited: Duration::from_secs(11)
            })
        );
        assert_eq!(w.check(t0 + Duration::from_secs(40), &p), None, "once");
        p.seq = 2;
        p.completed = t0 + Duration::from_secs(70);
        assert_eq!(
            w.check(t0 + Duration::from_secs(70), &p),
            Some(Event::Recovered {
                gpu: None,
                after: Duration::from_secs(70)
            })
        );
        assert_eq!(w.check(t0 + Duration::from_secs(71), &p), None, "once");
    }
}
