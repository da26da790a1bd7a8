//! Jobs on MIG devices: `JobSession` over the fake NVML's `h100-mig`
//! scenario with `CUDA_VISIBLE_DEVICES` naming MIG devices in both forms
//! CUDA takes, the instance's memory, GPM activity and processes, the
//! parent GPU's shared energy and its estimate by compute slices, a MIG
//! UUID that does not exist, and an instance destroyed while a job runs.

mod common;

use std::path::Path;
use std::time::Duration;

use algalon_core::devices::Selector;
use algalon_core::jobs::{EnergyScope, GpuChoice, JobSession, JobSpec, SessionOptions};
use algalon_core::{Error, SamplerOptions};
use common::{options, scenario, with_scenario};

const GPU0: &str = "GPU-a3c81f52-6d0e-4b9a-8f27-5e1d9c4b7010";
const GPU1: &str = "GPU-a3c81f52-6d0e-4b9a-8f27-5e1d9c4b7011";
/// GPU 0, GI 7: 1g.10gb, vllm (6101), GPM sine around 70 % SM active.
const GPU0_GI7: &str = "MIG-4b1e7c20-0a5d-5f3e-9c61-7d2a8e0b3c01";
/// GPU 1, GI 2: 3g.40gb, vllm (6201), survives the repartitioning at t = 30.
const GPU1_GI2: &str = "MIG-9d27f4a1-3c8e-5b06-a2d4-6e1f0c7b5901";
/// GPU 1, GI 3: 2g.20gb, destroyed at t = 30.
const GPU1_GI3: &str = "MIG-9d27f4a1-3c8e-5b06-a2d4-6e1f0c7b5902";
const MIB: u64 = 1 << 20;

fn session_options(visible: &str) -> SessionOptions {
    let mut opts = SessionOptions::new(SamplerOptions {
        processes: true,
        xid_events: false,
        ..options()
    });
    opts.visible_devices = Some(visible.to_owned());
    opts.local_rank = None;
    opts
}

/// `h100-mig` with this process (as PID `pid`, 2048 MiB) running on GPU
/// 1's GI 2, written to `dir`.
fn with_own_process(dir: &Path, pid: u32) -> std::path::PathBuf {
    let text = std::fs::read_to_string(scenario("h100-mig")).expect("scenario");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let procs = doc["gpus"][1]["processes"]
        .as_array_mut()
        .expect("processes");
    procs.push(serde_json::json!({
        "pid": pid, "name": "python3", "type": "compute", "used_mib": 2048,
        "gpu_instance_id": 2, "compute_instance_id": 0
    }));
    let path = dir.join("h100-mig-own.json");
    std::fs::write(&path, doc.to_string()).expect("write");
    path
}

#[test]
fn a_job_on_mig_devices_measures_the_instances_and_shares_the_parent_energy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let me = std::process::id();
    let path = with_own_process(dir.path(), me);
    // Both forms CUDA takes: the MIG UUID, and MIG-GPU-<uuid>/<gi>/<ci>.
    let visible = format!("{GPU0_GI7},MIG-{GPU1}/2/0");
    let report = with_scenario(&path, None, || {
        let mut opts = session_options(&visible);
        opts.interval = Some(Duration::from_millis(50));
        let session = JobSession::new(opts).expect("session");
        assert_eq!(session.measured(), [GPU0_GI7, GPU1_GI2]);
        let id = session
            .begin(JobSpec {
                name: "serve".into(),
                ..JobSpec::default()
            })
            .expect("begins");
        std::thread::sleep(Duration::from_millis(600));
        session.end(id, None).expect("ends")
    });
    assert_eq!(report.gpus.len(), 2, "{report:?}");
    let (gi7, gi2) = (&report.gpus[0], &report.gpus[1]);
    // Identity: the parent GPU, the instance under it, CUDA order.
    assert_eq!((gi7.index, gi7.uuid.as_str()), (0, GPU0));
    assert_eq!((gi2.index, gi2.uuid.as_str()), (1, GPU1));
    assert_eq!((gi7.cuda_index, gi2.cuda_index), (Some(0), Some(1)));
    let (m7, m2) = (
        gi7.mig.as_ref().expect("MIG"),
        gi2.mig.as_ref().expect("MIG"),
    );
    assert_eq!(
        (m7.uuid.as_str(), m7.profile.as_str()),
        (GPU0_GI7, "1g.10gb")
    );
    assert_eq!(
        (m2.uuid.as_str(), m2.profile.as_str()),
        (GPU1_GI2, "3g.40gb")
    );
    assert_eq!(
        (m2.gpu_instance_id, m2.compute_instance_id),
        (Some(2), Some(0))
    );
    assert_eq!((m7.slices, m7.parent_slices), (Some(1), Some(7)));
    assert_eq!((m2.slices, m2.parent_slices), (Some(3), Some(7)));
    // Memory is the instance's, not the GPU's (26715 / 47115 MiB).
    assert_eq!(gi7.memory_peak_bytes, Some(8205 * MIB));
    assert_eq!(gi2.memory_peak_bytes, Some(30733 * MIB));
    assert_eq!(m7.memory_total_bytes, Some(9984 * MIB));
    assert_eq!(m2.memory_total_bytes, Some(40448 * MIB));
    // The instance's processes, this one among them; its memory is the job's.
    assert_eq!(m7.pids, [6101]);
    let mut expect = vec![6201, me];
    expect.sort_unstable();
    assert_eq!(m2.pids, expect, "ascending");
    assert_eq!(gi2.process_memory_peak_bytes, Some(2048 * MIB));
    assert_eq!(gi7.process_memory_peak_bytes, None);
    // GPM per GPU instance: GI 7's SM activity is a sine around 70 %.
    let sm = m7.sm_active_mean.expect("GPM");
    assert!((0.55..=0.85).contains(&sm), "{sm}");
    assert!(m7.sm_occupancy_mean.is_some() && m7.tensor_active_mean.is_some());
    assert!(m7.dram_active_mean.is_some());
    // NVML has no whole-GPU utilization in MIG mode: none is reported.
    assert_eq!(gi7.util_mean, None);
    // Energy is the parent's, said so, and apportioned by compute slices.
    for (g, share) in [(gi7, 1.0 / 7.0), (gi2, 3.0 / 7.0)] {
        assert_eq!(g.energy_scope, EnergyScope::ParentGpu);
        let parent = g.energy_j.expect("parent energy");
        assert!(parent > 0.0, "{g:?}");
        let estimate = g.energy_estimate_j.expect("estimate");
        assert!((estimate - parent * share).abs() < 1e-9, "{g:?}");
        let note = g.note().expect("note");
        assert!(
            note.contains("shared by its MIG instances") && note.contains("an estimate"),
            "{note}"
        );
    }
    // The job's total never takes a whole shared GPU; the estimate adds shares.
    assert_eq!(report.energy_j, None);
    let total = report.energy_estimate_j.expect("estimate");
    let expect = gi7.energy_estimate_j.unwrap_or(0.0) + gi2.energy_estimate_j.unwrap_or(0.0);
    assert!((total - expect).abs() < 1e-9);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("energy_j counts whole GPUs only")),
        "{:?}",
        report.notes
    );
    // Schema 4 reads back exactly.
    let back = algalon_core::jobs::JobReport::from_json(&report.to_json()).expect("json");
    assert_eq!(back, report);
    let table = report.table();
    assert!(
        table.contains("1/GI 2") && table.contains("3 of 7 slices"),
        "{table}"
    );
}

#[test]
fn a_mig_device_chosen_by_gpus_beside_its_whole_gpu_is_not_counted_twice() {
    let report = with_scenario(&scenario("h100-mig"), None, || {
        let mut opts = session_options("0,1");
        // Any case, as every selector.
        opts.gpus = GpuChoice::Selected(vec![
            Selector::Uuid(GPU1.into()),
            Selector::Mig(GPU1_GI2.to_uppercase()),
        ]);
        let session = JobSession::new(opts).expect("session");
        assert_eq!(session.measured(), [GPU1, GPU1_GI2]);
        let id = session
            .begin(JobSpec {
                name: "both".into(),
                ..JobSpec::default()
            })
            .expect("begins");
        std::thread::sleep(Duration::from_millis(300));
        session.end(id, None).expect("ends")
    });
    let (whole, slice) = (&report.gpus[0], &report.gpus[1]);
    assert!(whole.mig.is_none() && slice.mig.is_some());
    assert_eq!(whole.energy_scope, EnergyScope::Gpu);
    let energy = whole.energy_j.expect("whole GPU energy");
    assert!(energy > 0.0);
    // The same boundary samples: the slice's parent energy is the GPU's.
    assert_eq!(slice.energy_j, Some(energy));
    assert_eq!(report.energy_j, Some(energy));
    // The whole GPU's energy already holds the slice's share.
    assert_eq!(report.energy_estimate_j, Some(energy));
}

#[test]
fn a_mig_uuid_that_does_not_exist_names_the_mig_devices_there_are() {
    with_scenario(&scenario("h100-mig"), Some(5.0), || {
        for (visible, why) in [
            ("MIG-00000000-0000-0000-0000-000000000000", ""),
            (&format!("MIG-{GPU1}/7/0") as &str, ""),
            ("MIG-GPU-a3c81f52/x", "write MIG-GPU-<gpu uuid>/"),
        ] {
            let err = JobSession::new(session_options(visible)).expect_err(visible);
            assert!(matches!(err, Error::NoSuchDevice { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains(&format!(
                    "CUDA_VISIBLE_DEVICES entry {visible:?} (a MIG device"
                )) && text.contains(why),
                "{text}"
            );
            assert!(
                text.contains(&format!("GPU 0 GI 7 CI 0 (1g.10gb, {GPU0_GI7})"))
                    && text.contains(&format!("GPU 1 GI 2 CI 0 (3g.40gb, {GPU1_GI2})")),
                "{text}"
            );
            assert!(!text.contains('\n'), "{text}");
        }
    });
    // A host without MIG devices says so.
    with_scenario(&scenario("constant"), Some(5.0), || {
        let err = JobSession::new(session_options(GPU0_GI7))
            .expect_err("no MIG")
            .to_string();
        assert!(err.contains("no MIG devices"), "{err}");
    });
}

#[test]
fn an_instance_destroyed_while_a_job_runs_ends_its_readings_not_the_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = dir.path().join("clock");
    let set = |t: f64| {
        let tmp = dir.path().join("clock.tmp");
        std::fs::write(&tmp, t.to_string()).expect("clock");
        std::fs::rename(&tmp, &clock).expect("clock");
    };
    set(20.0);
    // SAFETY: with_scenario holds the lock every environment change takes.
    let report = with_scenario(&scenario("h100-mig"), None, || {
        unsafe { std::env::set_var("ALGALON_FAKE_NVML_CLOCK_FILE", &clock) };
        let session = JobSession::new(session_options(&format!("{GPU1_GI3},{GPU1_GI2}")));
        unsafe { std::env::remove_var("ALGALON_FAKE_NVML_CLOCK_FILE") };
        let session = session.expect("session");
        let id = session
            .begin(JobSpec {
                name: "repartitioned".into(),
                ..JobSpec::default()
            })
            .expect("begins");
        set(25.0);
        session.sample().expect("open");
        // GPU 1 is repartitioned at t = 30: GI 3 is destroyed, GI 2 stays.
        set(31.0);
        let snap = session.sample().expect("open");
        set(33.0);
        session.sample().expect("open");
        assert!(
            snap.errors.is_empty(),
            "no NVML error for a destroyed instance: {:?}",
            snap.errors
        );
        session.end(id, None).expect("ends")
    });
    let gone = report
        .gpus
        .iter()
        .find(|g| g.mig.as_ref().is_some_and(|m| m.uuid == GPU1_GI3))
        .expect("GI 3 in the report");
    let kept = report
        .gpus
        .iter()
        .find(|g| g.mig.as_ref().is_some_and(|m| m.uuid == GPU1_GI2))
        .expect("GI 2 in the report");
    assert!(gone.mig.as_ref().expect("mig").destroyed_at.is_some());
    assert_eq!(gone.samples, 2, "readings stop when it is destroyed");
    assert_eq!(kept.samples, 5, "the job goes on");
    assert!(kept.mig.as_ref().expect("mig").destroyed_at.is_none());
    let note = gone.note().expect("note");
    assert!(
        note.contains(&format!(
            "the MIG device {GPU1_GI3} was destroyed during the window"
        )),
        "{note}"
    );
    assert!(!report.running);
}
