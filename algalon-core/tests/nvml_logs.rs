//! A GPU's persistent NVML failures are logged once when they start and
//! once when they end, with the GPU's index and UUID, the call and the error
//! as structured values; "not supported" stays quiet.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use common::{eventually, options, sampler, with_scenario};

/// One captured record: level, message, key-values.
#[derive(Debug, Clone)]
struct Record {
    level: log::Level,
    message: String,
    kv: BTreeMap<String, String>,
}

static RECORDS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        struct Visit(BTreeMap<String, String>);
        impl<'kvs> log::kv::VisitSource<'kvs> for Visit {
            fn visit_pair(
                &mut self,
                key: log::kv::Key<'kvs>,
                value: log::kv::Value<'kvs>,
            ) -> Result<(), log::kv::Error> {
                self.0.insert(key.to_string(), value.to_string());
                Ok(())
            }
        }
        let mut visit = Visit(BTreeMap::new());
        let _ = record.key_values().visit(&mut visit);
        RECORDS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Record {
                level: record.level(),
                message: record.args().to_string(),
                kv: visit.0,
            });
    }

    fn flush(&self) {}
}

fn records() -> Vec<Record> {
    RECORDS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Records about `call` on GPU 1 at `level`.
fn about(level: log::Level, call: &str) -> Vec<Record> {
    records()
        .into_iter()
        .filter(|r| {
            r.level == level
                && r.kv.get("gpu").map(String::as_str) == Some("1")
                && r.kv.get("call").map(String::as_str) == Some(call)
        })
        .collect()
}

#[test]
fn persistent_read_errors_are_logged_once_per_change_with_gpu_and_uuid() {
    static CAPTURE: Capture = Capture;
    log::set_logger(&CAPTURE).expect("the only logger of this binary");
    log::set_max_level(log::LevelFilter::Info);
    let dir = tempfile::tempdir().expect("temp dir");
    let template = common::workspace().join("testing/scenarios/scaling.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(template).expect("scaling.json"))
            .expect("JSON");
    spec["gpus"][0]["count"] = serde_json::json!(2);
    // GPU 1 may not read power for the first 1.5 s, and its temperature
    // sensor fails for good; scaling.json's H100 has no fan (not supported).
    spec["faults"] = serde_json::json!([
        {"call": "nvmlDeviceGetPowerUsage", "gpu": 1, "error": "NO_PERMISSION",
         "from_s": 0, "until_s": 1.5},
        {"call": "nvmlDeviceGetTemperature", "gpu": 1, "error": "UNKNOWN"}
    ]);
    let scenario = dir.path().join("failing.json");
    std::fs::write(&scenario, spec.to_string()).expect("write scenario");
    with_scenario(&scenario, None, || {
        let mut s = sampler(options());
        let uuid = {
            let snap = s.sample();
            snap.gpu(1).expect("GPU 1").uuid.clone()
        };
        for _ in 0..3 {
            s.sample();
        }
        let power = about(log::Level::Warn, "nvmlDeviceGetPowerUsage");
        assert_eq!(power.len(), 1, "once at the start: {:#?}", records());
        assert_eq!(power[0].kv["uuid"], uuid);
        assert_eq!(power[0].kv["error"], "NoPermission");
        assert!(power[0].message.contains(&format!("GPU 1 ({uuid})")));
        let temperature = about(log::Level::Warn, "nvmlDeviceGetTemperature");
        assert_eq!(temperature.len(), 1, "{:#?}", records());
        assert_eq!(temperature[0].kv["error"], "Unknown");
        assert!(
            records()
                .iter()
                .filter(|r| r.level <= log::Level::Warn)
                .all(|r| r.kv.get("error").map(String::as_str) != Some("NotSupported")),
            "not supported stays quiet: {:#?}",
            records()
        );
        let recovered = eventually(10.0, || {
            s.sample();
            !about(log::Level::Info, "nvmlDeviceGetPowerUsage").is_empty()
        });
        assert!(recovered, "no recovery line: {:#?}", records());
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..3 {
            s.sample();
        }
        let back = about(log::Level::Info, "nvmlDeviceGetPowerUsage");
        assert_eq!(back.len(), 1, "once at the end: {:#?}", records());
        assert_eq!(back[0].kv["uuid"], uuid);
        assert!(
            back[0].message.contains("answers again"),
            "{}",
            back[0].message
        );
        assert_eq!(
            about(log::Level::Warn, "nvmlDeviceGetPowerUsage").len(),
            1,
            "no new warning after recovery"
        );
        assert_eq!(
            about(log::Level::Warn, "nvmlDeviceGetTemperature").len(),
            1,
            "a failure that persists is not logged again"
        );
        assert!(about(log::Level::Info, "nvmlDeviceGetTemperature").is_empty());
    });
}
