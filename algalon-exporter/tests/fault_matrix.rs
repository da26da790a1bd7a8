//! NVML faults seen through the real exporter binary: what a scraper and a
//! health check see while NVML misbehaves, and that it all comes back without
//! a restart. The exhaustive (call × error) matrix runs in-process in
//! `algalon-core/tests/fault_matrix.rs`; these cases add what only the
//! served exporter shows (`/metrics`, `/health`, the process staying up).
//!
//! Scenario time comes from a clock file each test steps
//! (`ALGALON_FAKE_NVML_CLOCK_FILE`), into and out of the fault windows of
//! `tests/scenarios/fault-windows.json`; every wait is bounded.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Exporter, command, fake_nvml, scenario, value, wait_for};

/// How long any change may take to show (many sampling intervals).
const SHOW: Duration = Duration::from_secs(20);

/// An exporter on `fault-windows.json` whose scenario clock the test holds.
struct Fixture {
    exporter: Exporter,
    clock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start(args: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = dir.path().join("clock");
        std::fs::write(&clock, "0").expect("write clock");
        let mut cmd = command(&scenario("fault-windows.json"));
        cmd.env("ALGALON_FAKE_NVML_CLOCK_FILE", &clock)
            .arg("--nvml-lib")
            .arg(fake_nvml())
            .args(["-a", "127.0.0.1:0", "-c", "100"])
            .args(args);
        Fixture {
            exporter: Exporter::spawn(cmd),
            clock,
            _dir: dir,
        }
    }

    fn set_time(&self, t: f64) {
        let tmp = self.clock.with_extension("tmp");
        std::fs::write(&tmp, t.to_string()).expect("write clock");
        std::fs::rename(&tmp, &self.clock).expect("move clock");
    }

    /// Waits until `/metrics` satisfies `check`; returns that body.
    fn metrics_until(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        wait_for(SHOW, what, || {
            let text = self.exporter.metrics();
            check(&text).then_some(text)
        })
    }

    /// Waits until `/health` answers `status`; returns its text.
    fn health_until(&self, status: u16, what: &str) -> String {
        wait_for(SHOW, what, || {
            let r = self.exporter.get("/health");
            (r.status == status).then(|| r.text())
        })
    }
}

fn up(text: &str, gpu: &str) -> Option<f64> {
    value(text, "algalon_gpu_up", &[&format!("gpu=\"{gpu}\"")])
}

fn reading(text: &str, name: &str, gpu: &str) -> Option<f64> {
    value(text, name, &[&format!("gpu=\"{gpu}\"")])
}

#[test]
fn a_lost_gpu_goes_down_alone_and_comes_back() {
    let fx = Fixture::start(&[]);
    let pid = fx.exporter.pid();
    fx.metrics_until("both GPUs up", |t| {
        up(t, "0") == Some(1.0) && up(t, "1") == Some(1.0)
    });
    fx.set_time(10.0);
    let text = fx.metrics_until("GPU 1 down", |t| up(t, "1") == Some(0.0));
    assert_eq!(up(&text, "0"), Some(1.0), "GPU 0 keeps reporting");
    assert_eq!(reading(&text, "DCGM_FI_DEV_GPU_UTIL", "0"), Some(30.0));
    assert_eq!(
        reading(&text, "DCGM_FI_DEV_GPU_UTIL", "1"),
        None,
        "a lost GPU's readings are left out, never 0:\n{text}"
    );
    assert_eq!(reading(&text, "DCGM_FI_DEV_POWER_USAGE", "1"), None);
    let health = fx.exporter.get("/health");
    assert_eq!(health.status, 200, "one GPU of two is still up");
    assert!(
        health.text().contains("GPU 1: ") && health.text().contains("fell off the bus"),
        "/health says which GPU and why: {}",
        health.text()
    );
    fx.set_time(20.0);
    let text = fx.metrics_until("GPU 1 back", |t| up(t, "1") == Some(1.0));
    assert_eq!(reading(&text, "DCGM_FI_DEV_GPU_UTIL", "1"), Some(30.0));
    assert!(
        text.contains("UUID=\"GPU-00000000-aaaa-4bbb-8ccc-dddddddddd01\""),
        "identity read again:\n{text}"
    );
    assert_eq!(fx.exporter.pid(), pid);
    println!("exporter fault case survived: GPU lost and back");
}

#[test]
fn a_failing_reading_is_left_out_and_counted() {
    let fx = Fixture::start(&[]);
    fx.metrics_until("power read", |t| {
        reading(t, "DCGM_FI_DEV_POWER_USAGE", "0") == Some(100.0)
    });
    fx.set_time(30.0);
    let errors = |t: &str| {
        value(
            t,
            "algalon_nvml_errors_total",
            &["call=\"nvmlDeviceGetPowerUsage\"", "error=\"NoPermission\""],
        )
    };
    let text = fx.metrics_until("the error counted", |t| errors(t).is_some());
    assert_eq!(
        reading(&text, "DCGM_FI_DEV_POWER_USAGE", "0"),
        None,
        "unknown power is left out, never 0:\n{text}"
    );
    assert_eq!(reading(&text, "DCGM_FI_DEV_POWER_USAGE", "1"), Some(100.0));
    assert_eq!(up(&text, "0"), Some(1.0), "the GPU itself answers");
    assert_eq!(reading(&text, "DCGM_FI_DEV_GPU_UTIL", "0"), Some(30.0));
    fx.set_time(40.0);
    let text = fx.metrics_until("power back", |t| {
        reading(t, "DCGM_FI_DEV_POWER_USAGE", "0") == Some(100.0)
    });
    assert!(
        errors(&text).is_some_and(|n| n >= 1.0),
        "the counter stays:\n{text}"
    );
    println!("exporter fault case survived: reading failing (NO_PERMISSION)");
}

#[test]
fn a_hung_call_takes_its_gpu_down_alone_and_health_says_why() {
    let fx = Fixture::start(&[]);
    fx.health_until(200, "healthy at first");
    // From t = 50 s GPU 0's power reading takes 4 s: past the sampler's
    // 2 s GPU timeout, GPU 0 is reported down while its call hangs, and
    // GPU 1's readings keep arriving at the full rate.
    fx.set_time(50.0);
    let text = fx.metrics_until("GPU 0 down while its call hangs", |t| {
        up(t, "0") == Some(0.0)
    });
    assert_eq!(
        reading(&text, "DCGM_FI_DEV_POWER_USAGE", "0"),
        None,
        "no stale or invented reading for the hung GPU:\n{text}"
    );
    assert_eq!(up(&text, "1"), Some(1.0), "the other GPU is read");
    assert_eq!(reading(&text, "DCGM_FI_DEV_POWER_USAGE", "1"), Some(100.0));
    let health = fx.health_until(200, "/health ok while one GPU hangs");
    assert!(
        health.contains("1 of 2 GPUs up")
            && health.contains("GPU 0: nvmlDeviceGetPowerUsage")
            && health.contains("no answer for"),
        "the hung call is GPU 0's power reading: {health}"
    );
    let samples = |t: &str| value(t, "algalon_samples_total", &[]);
    let before = samples(&text).expect("sample count");
    fx.metrics_until("sampling goes on while GPU 0 hangs", |t| {
        samples(t).is_some_and(|n| n >= before + 3.0) && up(t, "1") == Some(1.0)
    });
    fx.set_time(60.0);
    fx.metrics_until("GPU 0 back once its call returns", |t| {
        up(t, "0") == Some(1.0) && reading(t, "DCGM_FI_DEV_POWER_USAGE", "0") == Some(100.0)
    });
    fx.health_until(200, "/health with both GPUs up");
    println!("exporter fault case survived: call hung past the GPU timeout");
}

#[test]
fn an_unloaded_driver_is_reported_and_nvml_reinitialised_without_restart() {
    let fx = Fixture::start(&[]);
    let pid = fx.exporter.pid();
    fx.metrics_until("GPUs up", |t| {
        up(t, "0") == Some(1.0) && up(t, "1") == Some(1.0)
    });
    fx.set_time(70.0);
    let text = fx.metrics_until("every GPU down", |t| {
        up(t, "0") == Some(0.0) && up(t, "1") == Some(0.0)
    });
    for gpu in ["0", "1"] {
        assert_eq!(
            reading(&text, "DCGM_FI_DEV_GPU_UTIL", gpu),
            None,
            "no readings without a driver:\n{text}"
        );
    }
    let reason = fx.health_until(503, "/health to fail with every GPU down");
    assert!(
        reason.contains("every GPU is down") && reason.contains("driver"),
        "/health says why: {reason}"
    );
    fx.set_time(80.0);
    let text = fx.metrics_until("GPUs back", |t| {
        up(t, "0") == Some(1.0)
            && up(t, "1") == Some(1.0)
            && reading(t, "DCGM_FI_DEV_GPU_UTIL", "1") == Some(30.0)
    });
    assert_eq!(reading(&text, "DCGM_FI_DEV_POWER_USAGE", "0"), Some(100.0));
    fx.health_until(200, "/health to recover");
    fx.exporter
        .wait_log("NVML re-initialised", Duration::from_secs(5));
    assert_eq!(fx.exporter.pid(), pid, "the same process throughout");
    println!("exporter fault case survived: driver unloaded and reloaded");
}
