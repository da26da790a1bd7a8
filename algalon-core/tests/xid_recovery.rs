//! XID events across a GPU loss, against the fake NVML.
//!
//! NVML does not keep a lost GPU's event registration: a GPU that comes back
//! must be registered again, or its later XIDs never reach
//! `DCGM_FI_DEV_XID_ERRORS` / `algalon_xid_errors_total`. And a GPU that stays
//! lost must not make the listener's retries look like an error storm in
//! `algalon_nvml_errors_total`. Scenario time comes from a clock file
//! (`ALGALON_FAKE_NVML_CLOCK_FILE`) the tests step; see
//! `tests/scenarios/xid-recovery.json` for the timeline.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use algalon_core::{Encoder, Field, Format, Sampler, Snapshot, Value};
use common::{eventually, options, sampler, scenario, with_scenario};

/// Scenario time in a file the fake NVML re-reads at every call.
struct Clock {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Clock {
    fn new(t: f64) -> Clock {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Clock {
            path: dir.path().join("clock"),
            _dir: dir,
        };
        clock.set(t);
        clock
    }

    fn set(&self, t: f64) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{t}")).expect("write clock");
        std::fs::rename(&tmp, &self.path).expect("move clock");
    }
}

/// Runs `f` on the xid-recovery scenario with its clock at `t`.
fn with_clock<T>(t: f64, f: impl FnOnce(&Clock) -> T) -> T {
    let clock = Clock::new(t);
    with_scenario(&scenario("xid-recovery"), None, || {
        // SAFETY: with_scenario holds the lock every environment change of
        // this test binary takes.
        unsafe { std::env::set_var("ALGALON_FAKE_NVML_CLOCK_FILE", &clock.path) };
        let out = f(&clock);
        unsafe { std::env::remove_var("ALGALON_FAKE_NVML_CLOCK_FILE") };
        out
    })
}

/// Samples until `cond` holds on a snapshot, for up to `secs` seconds.
fn sample_until(s: &mut Sampler, secs: f64, mut cond: impl FnMut(&Snapshot) -> bool) -> Snapshot {
    let mut last = None;
    eventually(secs, || {
        let snap = s.sample();
        let done = cond(&snap);
        last = Some(snap);
        done
    });
    last.expect("sampled at least once")
}

/// How often the listener's failures for GPU-lost were counted so far
/// (`algalon_nvml_errors_total{error="GpuLost"}` summed over calls).
fn lost_errors(snap: &Snapshot) -> u64 {
    snap.errors
        .iter()
        .filter(|e| e.error == "GpuLost")
        .map(|e| e.count)
        .sum()
}

/// The `algalon_xid_errors_total` line of `gpu` and `xid`, if any.
fn xid_counter(snap: Snapshot, gpu: u32, xid: u64) -> Option<String> {
    let text = Encoder::default().encode(&Arc::new(snap), Format::PrometheusText);
    let prefix = format!("algalon_xid_errors_total{{gpu=\"{gpu}\",");
    let suffix = format!(",xid=\"{xid}\"}}");
    text.lines()
        .find(|l| l.starts_with(&prefix) && l.contains(&suffix))
        .map(str::to_string)
}

#[test]
fn xids_after_a_gpu_comes_back_are_counted() {
    with_clock(1.0, |clock| {
        let mut s = sampler(options());
        clock.set(6.0);
        let snap = sample_until(&mut s, 5.0, |s| s.gpus[1].xid_counts.get(&13) == Some(&1));
        assert_eq!(
            snap.gpus[1].xid_counts.get(&13),
            Some(&1),
            "XID 13 before the loss never arrived"
        );

        clock.set(12.0);
        let snap = s.sample();
        assert!(!snap.gpus[1].up, "GPU 1 is lost at t = 12");
        assert!(snap.gpus[0].up);

        clock.set(22.0);
        let snap = s.sample();
        assert!(
            snap.gpus[1].up,
            "GPU 1 is back at t = 22: {:?}",
            snap.gpus[1].down_reason
        );

        clock.set(26.0);
        let snap = sample_until(&mut s, 5.0, |s| s.gpus[1].xid_counts.contains_key(&31));
        let gpu = &snap.gpus[1];
        assert_eq!(
            gpu.xid_counts.get(&31),
            Some(&1),
            "XID 31, after GPU 1 came back, never arrived: its events were not registered again"
        );
        assert_eq!(gpu.get(Field::XidErrors), Some(Value::Int(31)), "last XID");
        assert_eq!(
            gpu.xid_counts.get(&13),
            Some(&1),
            "an XID from before the loss is counted once"
        );
        assert!(
            snap.gpus[0].xid_counts.is_empty(),
            "the control GPU has none"
        );
        let line = xid_counter(snap, 1, 31).expect("algalon_xid_errors_total for XID 31");
        assert!(line.ends_with(" 1"), "{line}");
    });
}

#[test]
fn a_gpu_that_stays_lost_is_one_error_not_a_storm() {
    with_clock(1.0, |clock| {
        let mut s = sampler(options());
        let first = s.sample();
        assert!(!first.gpus[2].up, "GPU 2 is lost from the start");
        assert_eq!(first.gpus[2].get(Field::XidErrors), None);
        assert!(
            lost_errors(&first) >= 1,
            "the failed XID registration of GPU 2 is counted: {:?}",
            first.errors
        );
        // The listener retries on its own schedule meanwhile: well past the
        // first few retries, the count must not have moved.
        let watch = Instant::now();
        let mut last = first;
        while watch.elapsed() < Duration::from_secs(4) {
            std::thread::sleep(Duration::from_millis(100));
            last = s.sample();
        }
        assert_eq!(
            lost_errors(&last),
            1,
            "GPU 2 stayed lost for 4 s; its XID registration failure must be counted once: {:?}",
            last.errors
        );

        // Back at t = 61: registered again at once, and its next XID counts.
        clock.set(61.0);
        let snap = sample_until(&mut s, 5.0, |s| {
            s.gpus[2].up && s.gpus[2].get(Field::XidErrors).is_some()
        });
        assert!(
            snap.gpus[2].up,
            "GPU 2 is back: {:?}",
            snap.gpus[2].down_reason
        );
        assert_eq!(
            snap.gpus[2].get(Field::XidErrors),
            Some(Value::Int(0)),
            "GPU 2's XID series is back, with no XID yet"
        );
        clock.set(66.0);
        let snap = sample_until(&mut s, 5.0, |s| s.gpus[2].xid_counts.contains_key(&43));
        assert_eq!(
            snap.gpus[2].xid_counts.get(&43),
            Some(&1),
            "XID 43 never arrived"
        );
        assert_eq!(lost_errors(&snap), 1, "{:?}", snap.errors);
        let line = xid_counter(snap, 2, 43).expect("algalon_xid_errors_total for XID 43");
        assert!(line.ends_with(" 1"), "{line}");
    });
}

#[test]
fn a_gpu_refusing_xid_registration_does_not_silence_the_others() {
    // NVML frees the whole event set when one registration fails: GPU 0,
    // registered before GPU 1 refused, must be registered again and keep
    // delivering its XIDs.
    with_scenario(&scenario("xid-register-fails"), Some(10.0), || {
        let mut s = sampler(options());
        let snap = sample_until(&mut s, 5.0, |s| s.gpus[0].xid_counts.contains_key(&13));
        assert_eq!(
            snap.gpus[0].get(Field::XidErrors),
            Some(Value::Int(13)),
            "GPU 0's XID 13 never arrived after GPU 1 refused registration"
        );
        assert_eq!(
            snap.gpus[1].get(Field::XidErrors),
            None,
            "GPU 1 cannot deliver XIDs: its XID series is absent, not 0"
        );
    });
}
