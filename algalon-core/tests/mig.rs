//! MIG instances in the snapshot: the fake NVML's `h100-mig` scenario read
//! through the real sampler, with `SamplerOptions::instances`.

mod common;

use algalon_core::devices::InstanceSet;
use algalon_core::{Field, Value};
use common::{options, sampler, scenario, with_scenario};

/// The second sample (GPM needs two) of every GPU and instance at t = 35.
fn second_sample_with_every_instance(path: &std::path::Path) -> algalon_core::Snapshot {
    with_scenario(path, Some(35.0), || {
        let mut s = sampler(algalon_core::SamplerOptions {
            instances: InstanceSet::All,
            processes: true,
            ..options()
        });
        s.sample();
        s.sample()
    })
}

#[test]
fn instances_are_under_their_gpu_with_profile_ids_uuid_and_readings() {
    let snap = second_sample_with_every_instance(&scenario("h100-mig"));
    // GPU 0: seven 1g.10gb instances in ascending GPU instance id.
    let gpu0 = snap.gpu(0).expect("GPU 0");
    assert_eq!(gpu0.mig.len(), 7);
    assert!(gpu0.mig.iter().all(|m| m.profile == "1g.10gb"));
    let gi7 = &gpu0.mig[0];
    assert_eq!(gi7.uuid, "MIG-4b1e7c20-0a5d-5f3e-9c61-7d2a8e0b3c01");
    assert_eq!(gi7.gpu_instance_id, Some(7));
    assert_eq!(gi7.compute_instance_id, Some(0));
    assert_eq!(gi7.pids, vec![6101]);
    assert_eq!(gi7.get(Field::FbUsed), Some(Value::Int(8205)));
    assert!(
        gi7.get(Field::ProfGrEngineActive).is_some(),
        "GPM per GPU instance"
    );
    // An instance no process has run in: its ids straight from NVML, its
    // memory and GPM read like any other's.
    let idle = gpu0
        .mig
        .iter()
        .find(|m| m.uuid.ends_with("3c04"))
        .expect("GI 10");
    assert!(idle.pids.is_empty());
    assert_eq!(idle.gpu_instance_id, Some(10));
    assert_eq!(idle.compute_instance_id, Some(0));
    assert_eq!(idle.get(Field::FbUsed), Some(Value::Int(13)));
    assert_eq!(idle.get(Field::ProfGrEngineActive), Some(Value::Float(0.0)));
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    // GPU 1 after its repartitioning: 2 x 3g.40gb; GPU 3 is a whole GPU.
    let gpu1 = snap.gpu(1).expect("GPU 1");
    let ids: Vec<_> = gpu1
        .mig
        .iter()
        .map(|m| (m.gpu_instance_id, m.profile.as_str()))
        .collect();
    assert_eq!(ids, vec![(Some(1), "3g.40gb"), (Some(2), "3g.40gb")]);
    assert!(snap.gpu(3).expect("GPU 3").mig.is_empty());
    // The whole GPU keeps its own readings.
    assert_eq!(gpu0.get(Field::FbUsed), Some(Value::Int(26715)));
}

#[test]
fn no_instances_are_read_unless_asked_and_a_list_picks_by_gpu_instance_id() {
    let (none, some) = with_scenario(&scenario("h100-mig"), Some(35.0), || {
        let none = sampler(options()).sample();
        let some = sampler(algalon_core::SamplerOptions {
            instances: InstanceSet::List(vec![2]),
            processes: true,
            ..options()
        })
        .sample();
        (none, some)
    });
    assert!(none.gpus.iter().all(|g| g.mig.is_empty()));
    let picked: Vec<(u32, Option<u32>)> = some
        .gpus
        .iter()
        .flat_map(|g| g.mig.iter().map(move |m| (g.index, m.gpu_instance_id)))
        .collect();
    assert_eq!(picked, vec![(1, Some(2)), (2, Some(2))]);
}

#[test]
fn without_the_id_calls_ids_come_from_processes() {
    // A driver that does not answer nvmlDeviceGetGpuInstanceId: an instance
    // with a process still gets its ids (processes carry them); an idle one
    // is in the snapshot without ids, and nothing is counted as an error.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scenario("h100-mig")).expect("h100-mig.json"),
    )
    .expect("JSON");
    spec["faults"] = serde_json::json!([
        {"call": "nvmlDeviceGetGpuInstanceId", "error": "NOT_SUPPORTED"}
    ]);
    let path = dir.path().join("no-id-calls.json");
    std::fs::write(&path, spec.to_string()).expect("write scenario");
    let snap = second_sample_with_every_instance(&path);
    let gpu0 = snap.gpu(0).expect("GPU 0");
    let busy = gpu0
        .mig
        .iter()
        .find(|m| m.uuid.ends_with("3c01"))
        .expect("GI 7");
    assert_eq!(busy.gpu_instance_id, Some(7));
    let idle = gpu0
        .mig
        .iter()
        .find(|m| m.uuid.ends_with("3c04"))
        .expect("GI 10");
    assert_eq!(idle.gpu_instance_id, None);
    assert!(idle.get(Field::FbTotal).is_some());
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
}
