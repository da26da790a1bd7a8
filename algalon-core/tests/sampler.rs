//! The sampler against the fake NVML: values, absences, faults, threads.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use algalon_core::{
    BackgroundSampler, CATALOG, CollectorConfig, Error, Field, ProcessKind, SamplerOptions, Value,
};
use common::{eventually, options, sampler, scenario, with_scenario};

fn all_fields() -> SamplerOptions {
    SamplerOptions {
        fields: CATALOG.iter().map(|d| d.field).collect(),
        processes: true,
        ..options()
    }
}

#[test]
fn readings_match_the_scenario_in_dcgm_units() {
    with_scenario(&scenario("constant"), Some(10.0), || {
        let mut s = sampler(all_fields());
        let snap = s.sample();
        assert_eq!(snap.hostname, "test-host");
        assert_eq!(snap.driver_version.as_deref(), Some("550.54.15"));
        assert_eq!(snap.nvml_version.as_deref(), Some("12.550.54.15"));
        assert_eq!(snap.gpus.len(), 2);
        let h100 = &snap.gpus[0];
        assert!(h100.up);
        assert_eq!(h100.index, 0);
        assert_eq!(h100.uuid, "GPU-11111111-2222-3333-4444-555555555550");
        assert_eq!(h100.pci_bus_id, "00000000:18:00.0");
        assert_eq!(h100.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(h100.minor_number, Some(0));
        let int = |f: Field| h100.get(f).unwrap_or_else(|| panic!("{f:?} missing"));
        assert_eq!(int(Field::GpuUtil), Value::Int(85));
        assert_eq!(int(Field::MemCopyUtil), Value::Int(40));
        assert_eq!(int(Field::DecUtil), Value::Int(3));
        assert_eq!(int(Field::GpuTemp), Value::Int(63));
        assert_eq!(int(Field::MemoryTemp), Value::Int(71));
        assert_eq!(int(Field::PowerUsage), Value::Float(312.5));
        // offset + 312.5 W × 10 s, in mJ.
        assert_eq!(
            int(Field::TotalEnergyConsumption),
            Value::Int(1_000_000 + 3_125_000)
        );
        assert_eq!(int(Field::SmClock), Value::Int(1755));
        assert_eq!(int(Field::MemClock), Value::Int(2619));
        assert_eq!(int(Field::MaxSmClock), Value::Int(1980));
        assert_eq!(int(Field::FbTotal), Value::Int(81559));
        assert_eq!(int(Field::FbUsed), Value::Int(40000));
        assert_eq!(int(Field::FbReserved), Value::Int(549));
        assert_eq!(int(Field::FbFree), Value::Int(81559 - 549 - 40000));
        assert_eq!(int(Field::PcieReplayCounter), Value::Int(7));
        assert_eq!(int(Field::PcieTxThroughput), Value::Int(1200));
        assert_eq!(int(Field::PcieLinkGen), Value::Int(5));
        assert_eq!(int(Field::EccSbeAggTotal), Value::Int(12));
        assert_eq!(int(Field::PowerViolation), Value::Int(5000));
        assert_eq!(int(Field::CorrectableRemappedRows), Value::Int(2));
        assert_eq!(int(Field::UncorrectableRemappedRows), Value::Int(1));
        assert_eq!(int(Field::RowRemapFailure), Value::Int(0));
        assert_eq!(int(Field::NvlinkBandwidthTotal), Value::Int(123_456_789));
        assert_eq!(int(Field::NvlinkCrcFlitErrorCountTotal), Value::Int(3));
        assert_eq!(int(Field::PowerMgmtLimit), Value::Float(700.0));
        assert_eq!(int(Field::PState), Value::Int(0));
        // Hopper: no fan, no page retirement — absent, never 0, and no
        // NVML error counted for the fan (fan 0 of a fanless board is an
        // invalid argument on real drivers; `snap.errors` is checked below).
        assert_eq!(h100.get(Field::FanSpeed), None);
        assert_eq!(h100.get(Field::RetiredSbe), None);
        assert_eq!(h100.get(Field::RetiredPending), None);
        assert_eq!(
            h100.labels.get(&Field::DriverVersion).map(String::as_str),
            Some("550.54.15")
        );
        assert_eq!(
            h100.labels.get(&Field::Serial).map(String::as_str),
            Some("1650123456780")
        );
        assert_eq!(
            h100.labels.get(&Field::VbiosVersion).map(String::as_str),
            Some("96.00.74.00.01")
        );

        let [p] = h100.processes.as_slice() else {
            panic!("one process expected: {:?}", h100.processes)
        };
        assert_eq!(p.pid, 4242);
        assert_eq!(p.kind, ProcessKind::Compute);
        assert_eq!(p.used_memory_bytes, Some(30000 << 20));
        assert_eq!((p.sm_util, p.mem_util), (Some(80), Some(35)));

        let t4 = &snap.gpus[1];
        assert!(t4.up);
        assert_eq!(t4.get(Field::PowerUsage), Some(Value::Float(27.25)));
        assert_eq!(
            t4.get(Field::TotalEnergyConsumption),
            None,
            "T4 has no energy counter"
        );
        assert_eq!(
            t4.get(Field::EncUtil),
            None,
            "encoder utilization unsupported"
        );
        assert_eq!(t4.get(Field::RetiredSbe), Some(Value::Int(2)));
        assert_eq!(t4.get(Field::NvlinkBandwidthTotal), None, "no NVLink");
        assert_eq!(t4.get(Field::ProfSmActive), None, "no GPM");
        assert!(t4.processes.is_empty());
        assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    });
}

#[test]
fn gpm_metrics_appear_from_the_second_sample_as_ratios() {
    with_scenario(&scenario("constant"), Some(10.0), || {
        let mut s = sampler(all_fields());
        let first = s.sample();
        assert_eq!(
            first.gpus[0].get(Field::ProfSmActive),
            None,
            "needs two samples"
        );
        let second = s.sample();
        let g = &second.gpus[0];
        let ratio = |f| g.get_f64(f).unwrap_or_else(|| panic!("{f:?} missing"));
        assert!((ratio(Field::ProfGrEngineActive) - 0.90).abs() < 1e-9);
        assert!((ratio(Field::ProfSmActive) - 0.80).abs() < 1e-9);
        assert!((ratio(Field::ProfSmOccupancy) - 0.50).abs() < 1e-9);
        assert!((ratio(Field::ProfPipeTensorActive) - 0.60).abs() < 1e-9);
        assert!((ratio(Field::ProfDramActive) - 0.45).abs() < 1e-9);
        assert_eq!(ratio(Field::ProfPcieTxBytes), 1_000_000.0);
        assert_eq!(ratio(Field::ProfPcieRxBytes), 2_000_000.0);
        assert_eq!(second.seq, 2);
    });
}

#[test]
fn xid_events_arrive_through_the_event_set() {
    with_scenario(&scenario("constant"), None, || {
        let mut s = sampler(options());
        let seen = eventually(5.0, || {
            let snap = s.sample();
            snap.gpus[1].xid_counts.get(&48) == Some(&1)
        });
        assert!(seen, "XID 48 never arrived");
        let snap = s.sample();
        let t4 = &snap.gpus[1];
        assert_eq!(t4.get(Field::XidErrors), Some(Value::Int(48)), "last XID");
        assert_eq!(
            t4.xid_counts.get(&79),
            Some(&2),
            "a repeated XID is counted"
        );
        let h100 = &snap.gpus[0];
        assert_eq!(h100.get(Field::XidErrors), Some(Value::Int(0)), "none yet");
        assert!(h100.xid_counts.is_empty());
    });
}

#[test]
fn device_selectors_pick_gpus_by_index_uuid_and_prefix() {
    with_scenario(&scenario("constant"), Some(1.0), || {
        let pick = |sel: &[&str]| {
            let opts = SamplerOptions {
                devices: Some(sel.iter().map(|s| s.to_string()).collect()),
                ..options()
            };
            algalon_core::Sampler::new(opts).map(|s| s.gpu_indices())
        };
        assert_eq!(pick(&["1"]).expect("index"), vec![1]);
        assert_eq!(
            pick(&["GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee1", "0"]).expect("uuid"),
            vec![0, 1]
        );
        assert_eq!(pick(&["gpu-1111"]).expect("prefix, any case"), vec![0]);
        let err = pick(&["7"]).expect_err("no GPU 7").to_string();
        assert!(err.contains("no GPU matches \"7\""), "{err}");
        assert!(
            err.contains("0 (GPU-11111111-2222-3333-4444-555555555550)"),
            "{err}"
        );
        let err = pick(&["GPU-"]).expect_err("ambiguous").to_string();
        assert!(err.contains("ambiguous: matches 2 GPUs"), "{err}");
    });
}

#[test]
fn missing_library_says_what_was_tried_and_what_to_install() {
    let err = algalon_core::Sampler::new(SamplerOptions {
        nvml_lib: Some("/nonexistent/libnvidia-ml.so.1".into()),
        ..SamplerOptions::default()
    })
    .expect_err("no library there");
    assert!(matches!(err, Error::NvmlNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/libnvidia-ml.so.1"), "{msg}");
    assert!(msg.contains("Install the NVIDIA driver"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn driver_not_loaded_is_a_typed_error_with_a_hint() {
    // The fake behaves like a host without the kernel driver when it has no scenario.
    with_scenario(&scenario("constant"), None, || {
        // SAFETY: NVML_LOCK is held by with_scenario.
        unsafe { std::env::remove_var("ALGALON_FAKE_NVML_SCENARIO") };
        let err = algalon_core::Sampler::new(options()).expect_err("no driver");
        assert!(matches!(err, Error::NvmlInit { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("kernel driver is not loaded"), "{msg}");
        assert!(msg.contains("libnvidia-ml.so.1"), "{msg}");
    });
}

#[test]
fn faults_degrade_per_series_never_to_zero() {
    with_scenario(&scenario("faulty"), Some(5.0), || {
        let mut s = sampler(all_fields());
        let snap = s.sample();
        let lost: Vec<_> = snap.gpus.iter().filter(|g| !g.up).collect();
        assert_eq!(lost.len(), 1, "one GPU is lost after 2 s");
        let lost = lost[0];
        let reason = lost.down_reason.as_ref().expect("a reason").to_string();
        // nvml-wrapper's text misspells "inaccessible"; the core renders it
        // right for every face.
        assert!(reason.contains("inaccessible"), "{reason}");
        assert!(!reason.contains("inacessible"), "{reason}");
        assert!(
            Field::all().all(|f| lost.get(f).is_none()),
            "a lost GPU reports nothing"
        );

        let no_power: Vec<_> = snap
            .gpus
            .iter()
            .filter(|g| g.up && g.get(Field::PowerUsage).is_none())
            .collect();
        assert_eq!(no_power.len(), 1, "one GPU may not read power");
        let g = no_power[0];
        assert!(g.get(Field::GpuUtil).is_some(), "its other readings stay");
        assert!(g.get(Field::GpuTemp).is_none(), "temperature errors too");
        // Counted under the GPU that failed: faulty.json's GPU 1.
        let counted = |call: &str, error: &str| {
            snap.errors
                .iter()
                .any(|e| e.gpu == Some(1) && e.call == call && e.error == error && e.count >= 1)
        };
        assert!(
            counted("nvmlDeviceGetPowerUsage", "NoPermission"),
            "{:?}",
            snap.errors
        );
        assert!(
            counted("nvmlDeviceGetTemperature", "Unknown"),
            "{:?}",
            snap.errors
        );
        let healthy = snap
            .gpus
            .iter()
            .filter(|g| g.up && g.get(Field::PowerUsage).is_some());
        assert_eq!(healthy.count(), 2);
        // The slow GPU answers, just late.
        assert!(
            snap.duration >= Duration::from_millis(300),
            "{:?}",
            snap.duration
        );
        assert!(
            snap.gpus
                .iter()
                .filter(|g| g.up)
                .all(|g| g.get(Field::GpuUtil).is_some())
        );
    });
}

#[test]
fn background_readers_never_wait_for_a_slow_nvml() {
    with_scenario(&scenario("faulty"), None, || {
        let sampler = sampler(options());
        let progress = sampler.progress();
        let samples = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&samples);
        let bg = BackgroundSampler::spawn(sampler, Duration::from_millis(10), move |_| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .expect("spawn");
        assert_eq!(
            samples.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "first sample is synchronous"
        );
        assert_eq!(bg.latest().seq, 1);
        // Every sample spends >= 300 ms in one slow call on GPU 2. A reader
        // that waited for the sample could only return after it: a read that
        // starts and ends while the same sample is still inside NVML proves
        // readers do not wait. This holds however loaded the machine is; a
        // stall of the reader itself only costs an attempt.
        let mut proven = false;
        for _ in 0..20 {
            assert!(
                eventually(10.0, || progress.current_gpu() == Some(2)),
                "the sampler never reached the slow GPU"
            );
            let before = samples.load(std::sync::atomic::Ordering::SeqCst);
            let snap = bg.latest();
            assert!(snap.seq >= 1);
            if progress.current_gpu() == Some(2)
                && samples.load(std::sync::atomic::Ordering::SeqCst) == before
            {
                proven = true;
                break;
            }
        }
        assert!(
            proven,
            "in 20 attempts no read finished while a sample was inside a slow NVML call: readers wait for NVML"
        );
        assert!(
            eventually(10.0, || bg.latest().seq >= 2),
            "the thread keeps sampling"
        );
        bg.stop();
    });
}

#[test]
fn zero_interval_is_rejected() {
    with_scenario(&scenario("constant"), Some(1.0), || {
        let err = BackgroundSampler::spawn(sampler(options()), Duration::ZERO, |_| {})
            .expect_err("zero interval");
        assert!(err.to_string().contains("use at least 1 ms"), "{err}");
    });
}

#[test]
fn default_counters_cover_every_providable_series_on_h100() {
    with_scenario(&scenario("h100x8"), Some(30.0), || {
        let config = CollectorConfig::default();
        let mut s = sampler(options().with_collectors(&config));
        s.sample();
        let snap = s.sample();
        assert_eq!(snap.gpus.len(), 8);
        for gpu in &snap.gpus {
            assert!(gpu.up, "GPU {} down", gpu.index);
            for m in &config.metrics {
                assert!(
                    gpu.get(m.field).is_some(),
                    "GPU {}: {} missing",
                    gpu.index,
                    m.field.name()
                );
            }
            assert!(gpu.labels.contains_key(&Field::DriverVersion));
        }
    });
}

#[test]
fn a_gpu_that_falls_off_the_bus_keeps_its_xid_79() {
    with_scenario(&scenario("faulty"), None, || {
        let mut s = sampler(options());
        let seen = eventually(6.0, || {
            let snap = s.sample();
            snap.gpus[0].xid_counts.get(&79) == Some(&1) && !snap.gpus[0].up
        });
        assert!(seen, "XID 79 of the lost GPU 0 was never recorded");
        let snap = Arc::new(s.sample());
        let lost = &snap.gpus[0];
        assert_eq!(
            lost.get(Field::XidErrors),
            None,
            "no DCGM reading for a GPU that is down"
        );
        let text =
            algalon_core::Encoder::default().encode(&snap, algalon_core::Format::PrometheusText);
        let line = text
            .lines()
            .find(|l| l.starts_with("algalon_xid_errors_total{gpu=\"0\","))
            .unwrap_or_else(|| panic!("no XID counter for GPU 0:\n{text}"));
        assert!(line.ends_with(",xid=\"79\"} 1"), "{line}");
        assert!(text.contains("algalon_gpu_up{gpu=\"0\","));
    });
}

#[test]
fn progress_names_the_gpu_a_slow_sample_is_waiting_on() {
    // faulty.json: GPU 2 answers utilization 300 ms late, every sample.
    with_scenario(&scenario("faulty"), Some(5.0), || {
        let mut s = sampler(options());
        let progress = s.progress();
        assert_eq!(progress.current_gpu(), None, "no sample yet");
        let watcher = std::thread::spawn(move || {
            let start = Instant::now();
            let mut seen = Vec::new();
            while start.elapsed() < Duration::from_secs(3) {
                if let Some(gpu) = progress.current_gpu()
                    && seen.last() != Some(&gpu)
                {
                    seen.push(gpu);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        let progress = s.progress();
        let snap = s.sample();
        assert_eq!(progress.current_gpu(), None, "between samples: no GPU");
        assert!(snap.duration >= Duration::from_millis(300));
        let seen = watcher.join().expect("watcher");
        assert!(
            seen.contains(&2),
            "the 300 ms spent on GPU 2 must show as GPU 2: saw {seen:?}"
        );
    });
}
