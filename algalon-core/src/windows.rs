//! dcgm-exporter's windowed counts: XIDs and clock events per GPU over the
//! last N milliseconds (`DCGM_EXP_XID_ERRORS_COUNT`,
//! `DCGM_EXP_CLOCK_EVENTS_COUNT`).
//!
//! dcgm-exporter asks DCGM for every value of `DCGM_FI_DEV_XID_ERRORS` and
//! `DCGM_FI_DEV_CLOCKS_EVENT_REASONS` recorded in the window and counts
//! them: each XID once per event, each clock-event reason once per sample
//! whose bitmask has it. [`EventWindows`] keeps the same record from
//! Algalon's snapshots: the XIDs that arrived between two samples (from
//! each GPU's running `xid_counts`) and the reasons of each sample's
//! throttle bitmask, each stamped with the snapshot's time, and forgets
//! what falls out of the window.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use crate::catalog::Field;
use crate::encoder::WindowCounts;
use crate::snapshot::Snapshot;

/// dcgm-exporter's names of the clock-event reasons (DCGM's
/// `DCGM_CLOCKS_EVENT_REASON_*` bits, named as `dcgmi` names them).
pub const CLOCK_EVENT_NAMES: &[(u64, &str)] = &[
    (0x1, "gpu_idle"),
    (0x2, "clocks_setting"),
    (0x4, "power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal"),
    (0x40, "hw_thermal"),
    (0x80, "hw_power_brake"),
    (0x100, "display_clocks"),
];

/// One counted event: when, on which GPU (UUID), what, how many.
#[derive(Debug, Clone)]
struct Event {
    at: SystemTime,
    gpu: String,
    what: String,
    count: u64,
}

/// Sliding windows of XIDs and clock events, fed one snapshot at a time.
#[derive(Debug, Clone)]
pub struct EventWindows {
    xid_window: Duration,
    clock_window: Duration,
    /// Each GPU's `xid_counts` at the last snapshot, to take differences.
    last_xids: HashMap<String, BTreeMap<u64, u64>>,
    xids: VecDeque<Event>,
    clock_events: VecDeque<Event>,
}

impl EventWindows {
    /// Windows of `xid_window` and `clock_window` (dcgm-exporter's
    /// `--xid-count-window-size` and `--clock-events-count-window-size`).
    pub fn new(xid_window: Duration, clock_window: Duration) -> Self {
        EventWindows {
            xid_window,
            clock_window,
            last_xids: HashMap::new(),
            xids: VecDeque::new(),
            clock_events: VecDeque::new(),
        }
    }

    /// Records what `snapshot` adds: the XIDs each GPU got since the last
    /// snapshot (a count that went down — a new sampler after a reload —
    /// counts from zero) and the clock-event reasons of its throttle bitmask.
    pub fn record(&mut self, snapshot: &Snapshot) {
        let at = snapshot.taken_at;
        for gpu in &snapshot.gpus {
            let before = self.last_xids.get(&gpu.uuid);
            for (xid, count) in &gpu.xid_counts {
                let prev = before.and_then(|b| b.get(xid)).copied().unwrap_or(0);
                let new = if *count >= prev { count - prev } else { *count };
                if new > 0 {
                    self.xids.push_back(Event {
                        at,
                        gpu: gpu.uuid.clone(),
                        what: xid.to_string(),
                        count: new,
                    });
                }
            }
            self.last_xids
                .insert(gpu.uuid.clone(), gpu.xid_counts.clone());
            if let Some(crate::snapshot::Value::Int(mask)) = gpu.get(Field::ClockThrottleReasons) {
                for (bit, name) in CLOCK_EVENT_NAMES {
                    if mask & bit != 0 {
                        self.clock_events.push_back(Event {
                            at,
                            gpu: gpu.uuid.clone(),
                            what: (*name).to_owned(),
                            count: 1,
                        });
                    }
                }
            }
        }
        if self.last_xids.len() > snapshot.gpus.len() {
            self.last_xids
                .retain(|uuid, _| snapshot.gpu_by_uuid(uuid).is_some());
        }
        forget_before(&mut self.xids, at, self.xid_window);
        forget_before(&mut self.clock_events, at, self.clock_window);
    }

    /// XIDs per GPU in the window ending at `now`.
    pub fn xid_counts(&self, now: SystemTime) -> WindowCounts {
        counts(&self.xids, now, self.xid_window)
    }

    /// Clock events per GPU in the window ending at `now`.
    pub fn clock_event_counts(&self, now: SystemTime) -> WindowCounts {
        counts(&self.clock_events, now, self.clock_window)
    }
}

/// Whether `at` lies in the window of length `window` ending at `now`.
fn in_window(at: SystemTime, now: SystemTime, window: Duration) -> bool {
    now.duration_since(at).map_or(true, |age| age <= window)
}

fn forget_before(events: &mut VecDeque<Event>, now: SystemTime, window: Duration) {
    while events
        .front()
        .is_some_and(|e| !in_window(e.at, now, window))
    {
        events.pop_front();
    }
}

fn counts(events: &VecDeque<Event>, now: SystemTime, window: Duration) -> WindowCounts {
    let mut by_gpu: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for e in events.iter().filter(|e| in_window(e.at, now, window)) {
        *by_gpu
            .entry(e.gpu.clone())
            .or_default()
            .entry(e.what.clone())
            .or_default() += e.count;
    }
    WindowCounts {
        window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        by_gpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{GpuSample, Value};

    fn snapshot(at_s: u64, gpus: Vec<GpuSample>) -> Snapshot {
        Snapshot {
            hostname: "w1".into(),
            driver_version: None,
            nvml_version: None,
            cuda_driver_version: None,
            taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(at_s),
            duration: Duration::ZERO,
            seq: at_s,
            gpus,
            errors: Vec::new(),
        }
    }

    fn gpu(xids: &[(u64, u64)], mask: Option<u64>) -> GpuSample {
        let mut g = GpuSample::new(0, "GPU-a".into(), "00000000:18:00.0".into(), "H100".into());
        g.xid_counts = xids.iter().copied().collect();
        g.set(Field::ClockThrottleReasons, mask.map(Value::Int));
        g
    }

    #[test]
    fn xids_are_counted_while_in_the_window() {
        let mut w = EventWindows::new(Duration::from_secs(10), Duration::from_secs(10));
        w.record(&snapshot(100, vec![gpu(&[(79, 1)], None)]));
        w.record(&snapshot(105, vec![gpu(&[(79, 3), (48, 1)], None)]));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(105);
        let c = w.xid_counts(now);
        assert_eq!(c.window_ms, 10_000);
        assert_eq!(c.by_gpu["GPU-a"]["79"], 3);
        assert_eq!(c.by_gpu["GPU-a"]["48"], 1);
        // At 112 s the first XID (at 100 s) has left the window.
        w.record(&snapshot(112, vec![gpu(&[(79, 3), (48, 1)], None)]));
        let c = w.xid_counts(SystemTime::UNIX_EPOCH + Duration::from_secs(112));
        assert_eq!(c.by_gpu["GPU-a"]["79"], 2);
        // At 120 s nothing is left.
        w.record(&snapshot(120, vec![gpu(&[(79, 3), (48, 1)], None)]));
        let c = w.xid_counts(SystemTime::UNIX_EPOCH + Duration::from_secs(120));
        assert!(c.by_gpu.is_empty(), "{c:?}");
        // A new sampler counts from zero again.
        w.record(&snapshot(121, vec![gpu(&[(13, 1)], None)]));
        let c = w.xid_counts(SystemTime::UNIX_EPOCH + Duration::from_secs(121));
        assert_eq!(c.by_gpu["GPU-a"].len(), 1);
        assert_eq!(c.by_gpu["GPU-a"]["13"], 1);
    }

    #[test]
    fn each_sample_counts_each_reason_of_its_bitmask() {
        let mut w = EventWindows::new(Duration::from_secs(300), Duration::from_secs(6));
        w.record(&snapshot(1, vec![gpu(&[], Some(0x4 | 0x40))]));
        w.record(&snapshot(6, vec![gpu(&[], Some(0x4))]));
        let c = w.clock_event_counts(SystemTime::UNIX_EPOCH + Duration::from_secs(6));
        assert_eq!(c.window_ms, 6000);
        assert_eq!(c.by_gpu["GPU-a"]["power_cap"], 2);
        assert_eq!(c.by_gpu["GPU-a"]["hw_thermal"], 1);
        w.record(&snapshot(11, vec![gpu(&[], Some(0))]));
        let c = w.clock_event_counts(SystemTime::UNIX_EPOCH + Duration::from_secs(11));
        assert_eq!(c.by_gpu["GPU-a"]["power_cap"], 1, "{c:?}");
        assert!(!c.by_gpu["GPU-a"].contains_key("hw_thermal"), "{c:?}");
    }
}
