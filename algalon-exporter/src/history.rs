//! A few minutes of every GPU's readings, kept in the exporter's memory for
//! the sparklines of the live page at `/` and served with its data
//! (`/api/v1/gpus`, key `history`).
//!
//! Bounded: at most [`MAX_POINTS`] points per GPU, one per step, where the
//! step is the sampling interval but never shorter than [`MIN_STEP`] (faster
//! sampling is averaged into one point per step). At the default 5 s interval
//! that is the last 10 minutes; at 1 s, the last 2. A reading NVML could not
//! give, or a GPU that was down for the whole step, is `null` in its point —
//! a gap in the line, never a 0. Nothing is written to disk: a restarted
//! exporter starts a new history.
//!
//! The JSON is rebuilt only when a point is added, so sampling faster than the
//! step costs one accumulation per GPU, not a re-serialisation.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use algalon_core::{Snapshot, unix_seconds};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::api::SnapshotView;

/// Most points kept per GPU.
pub const MAX_POINTS: usize = 120;
/// Shortest time between two points.
pub const MIN_STEP: Duration = Duration::from_secs(1);

const MIB: f64 = 1024.0 * 1024.0;
/// Readings kept per point: utilization %, memory used MiB, power W, temperature °C.
const SERIES: usize = 4;

/// Per-GPU history of utilization, memory, power and temperature.
#[derive(Debug)]
pub struct History {
    step: Duration,
    interval: Duration,
    last_point: Option<SystemTime>,
    /// By UUID, so a reload that renumbers or narrows the GPUs keeps each
    /// GPU's line its own.
    gpus: BTreeMap<String, GpuHistory>,
    json: Box<RawValue>,
}

#[derive(Debug, Default)]
struct GpuHistory {
    index: u32,
    /// Unix seconds of each point, oldest first.
    times: VecDeque<f64>,
    points: VecDeque<[Option<f64>; SERIES]>,
    /// Readings since the last point: sum and count per series.
    sum: [f64; SERIES],
    count: [u32; SERIES],
}

impl GpuHistory {
    fn accumulate(&mut self, readings: [Option<f64>; SERIES]) {
        for (i, r) in readings.into_iter().enumerate() {
            if let Some(v) = r.filter(|v| v.is_finite()) {
                self.sum[i] += v;
                self.count[i] += 1;
            }
        }
    }

    fn close_point(&mut self, at: f64) {
        let mut point = [None; SERIES];
        for (i, p) in point.iter_mut().enumerate() {
            if self.count[i] > 0 {
                // One decimal is what a sparkline can show; it keeps the JSON small.
                *p = Some((self.sum[i] / f64::from(self.count[i]) * 10.0).round() / 10.0);
            }
        }
        self.sum = [0.0; SERIES];
        self.count = [0; SERIES];
        self.times.push_back(at);
        self.points.push_back(point);
        while self.points.len() > MAX_POINTS {
            self.points.pop_front();
            self.times.pop_front();
        }
    }
}

/// The JSON form of one GPU's history: columns of equal length.
#[derive(Serialize)]
struct GpuJson<'a> {
    /// The NVML index, under dcgm-exporter's label name.
    gpu: u32,
    #[serde(rename = "UUID")]
    uuid: &'a str,
    t: Vec<f64>,
    util: Vec<Option<f64>>,
    mem_mib: Vec<Option<f64>>,
    power_w: Vec<Option<f64>>,
    temp_c: Vec<Option<f64>>,
}

#[derive(Serialize)]
struct HistoryJson<'a> {
    step_s: f64,
    max_points: usize,
    gpus: Vec<GpuJson<'a>>,
}

/// `/api/v1/gpus`: the snapshot's fields and the history beside them.
#[derive(Serialize)]
struct PageData<'a> {
    #[serde(flatten)]
    snapshot: SnapshotView<'a>,
    history: &'a RawValue,
}

fn readings(gpu: &algalon_core::GpuSample) -> [Option<f64>; SERIES] {
    [
        gpu.gpu_util(),
        gpu.memory_used_bytes().map(|b| b as f64 / MIB),
        gpu.power_w(),
        gpu.temperature_c(),
    ]
}

impl History {
    /// An empty history for a sampler running every `interval`.
    pub fn new(interval: Duration) -> History {
        let mut history = History {
            step: interval.max(MIN_STEP),
            interval,
            last_point: None,
            gpus: BTreeMap::new(),
            json: RawValue::from_string("{}".to_owned()).expect("literal JSON"),
        };
        history.rebuild_json();
        history
    }

    /// Time between two points.
    pub fn step(&self) -> Duration {
        self.step
    }

    /// Adds `snapshot`'s readings; returns whether it closed a new point.
    pub fn record(&mut self, snapshot: &Snapshot) -> bool {
        self.gpus
            .retain(|uuid, _| snapshot.gpus.iter().any(|g| &g.uuid == uuid));
        for gpu in &snapshot.gpus {
            let h = self.gpus.entry(gpu.uuid.clone()).or_default();
            h.index = gpu.index;
            if gpu.up {
                h.accumulate(readings(gpu));
            }
        }
        // Half an interval of slack: samples a few milliseconds early still
        // close a point each when the step is the interval.
        let due = match self.last_point {
            None => true,
            Some(last) => match snapshot.taken_at.duration_since(last) {
                Ok(elapsed) => elapsed + self.interval / 2 >= self.step,
                // The wall clock went back: start counting from now.
                Err(_) => true,
            },
        };
        if !due {
            return false;
        }
        self.last_point = Some(snapshot.taken_at);
        let at = unix_seconds(snapshot.taken_at);
        for h in self.gpus.values_mut() {
            h.close_point(at);
        }
        self.rebuild_json();
        true
    }

    fn rebuild_json(&mut self) {
        let mut gpus: Vec<GpuJson<'_>> = self
            .gpus
            .iter()
            .map(|(uuid, h)| {
                let column = |i: usize| h.points.iter().map(|p| p[i]).collect();
                GpuJson {
                    gpu: h.index,
                    uuid,
                    t: h.times.iter().copied().collect(),
                    util: column(0),
                    mem_mib: column(1),
                    power_w: column(2),
                    temp_c: column(3),
                }
            })
            .collect();
        gpus.sort_by_key(|g| g.gpu);
        let doc = HistoryJson {
            step_s: self.step.as_secs_f64(),
            max_points: MAX_POINTS,
            gpus,
        };
        match serde_json::value::to_raw_value(&doc) {
            Ok(raw) => self.json = raw,
            Err(e) => tracing::error!("cannot serialise the GPU history: {e}"),
        }
    }

    /// The history as JSON.
    pub fn json(&self) -> &RawValue {
        &self.json
    }

    /// The body of `/api/v1/gpus`: `snapshot` with this history under `history`.
    pub fn page_data(&self, snapshot: &Snapshot) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&PageData {
            snapshot: SnapshotView::new(snapshot),
            history: &self.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use algalon_core::{Field, GpuSample, Value};
    use std::time::UNIX_EPOCH;

    fn snapshot(at_s: u64, utils: &[Option<u32>]) -> Snapshot {
        let mut s = Snapshot {
            hostname: "w1".into(),
            driver_version: None,
            nvml_version: None,
            cuda_driver_version: None,
            taken_at: UNIX_EPOCH + Duration::from_secs(at_s),
            duration: Duration::ZERO,
            seq: 1,
            gpus: Vec::new(),
            errors: Vec::new(),
        };
        for (i, u) in utils.iter().enumerate() {
            let mut g = GpuSample::new(i as u32, format!("GPU-{i}"), String::new(), "H100".into());
            g.up = u.is_some();
            g.set(Field::GpuUtil, u.map(|u| Value::Int(u64::from(u))));
            s.gpus.push(g);
        }
        s
    }

    fn json(h: &History) -> serde_json::Value {
        serde_json::from_str(h.json().get()).expect("valid JSON")
    }

    #[test]
    fn bounded_and_ordered() {
        let mut h = History::new(Duration::from_secs(5));
        for i in 0..(MAX_POINTS as u64 + 30) {
            assert!(h.record(&snapshot(1000 + 5 * i, &[Some(10), Some(20)])));
        }
        let j = json(&h);
        assert_eq!(j["step_s"], 5.0);
        let gpus = j["gpus"].as_array().expect("gpus");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[1]["gpu"], 1);
        assert_eq!(gpus[1]["util"].as_array().expect("util").len(), MAX_POINTS);
        let t = gpus[0]["t"].as_array().expect("t");
        assert_eq!(t.len(), MAX_POINTS);
        // The newest points are kept.
        assert_eq!(t.last(), Some(&serde_json::json!(1000.0 + 5.0 * 149.0)));
    }

    #[test]
    fn fast_sampling_is_averaged_into_one_point_per_step() {
        let mut h = History::new(Duration::from_millis(250));
        assert_eq!(h.step(), MIN_STEP);
        let mut s = snapshot(100, &[Some(0)]);
        assert!(h.record(&s), "the first sample starts the history");
        let mut closed = 0;
        for (k, util) in [10, 20, 30, 40].into_iter().enumerate() {
            s.taken_at = UNIX_EPOCH + Duration::from_millis(100_000 + 250 * (k as u64 + 1));
            s.gpus[0].set(Field::GpuUtil, Some(Value::Int(util)));
            closed += usize::from(h.record(&s));
        }
        assert_eq!(closed, 1, "four 250 ms samples make one 1 s point");
        assert_eq!(json(&h)["gpus"][0]["util"], serde_json::json!([0.0, 25.0]));
    }

    #[test]
    fn a_down_gpu_is_a_gap_not_a_zero_and_a_removed_gpu_is_dropped() {
        let mut h = History::new(Duration::from_secs(1));
        h.record(&snapshot(1, &[Some(50), Some(60)]));
        h.record(&snapshot(2, &[Some(50), None]));
        let j = json(&h);
        assert_eq!(j["gpus"][1]["util"], serde_json::json!([60.0, null]));
        assert_eq!(j["gpus"][1]["power_w"], serde_json::json!([null, null]));
        h.record(&snapshot(3, &[Some(50)]));
        assert_eq!(json(&h)["gpus"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn page_data_keeps_the_snapshot_fields() {
        let mut h = History::new(Duration::from_secs(1));
        let s = snapshot(7, &[Some(42)]);
        h.record(&s);
        let body: serde_json::Value =
            serde_json::from_slice(&h.page_data(&s).expect("serialises")).expect("JSON");
        assert_eq!(body["gpus"][0]["gpu"], 0);
        assert_eq!(body["taken_at"], 7.0);
        assert_eq!(
            body["history"]["gpus"][0]["util"],
            serde_json::json!([42.0])
        );
    }
}
