use super::*;

const SHIPPED: &[&str] = &["h100x8", "mixed", "faulty", "scaling", "h100-mig"];

fn shipped(name: &str) -> Scenario {
    let path = format!("{}/../scenarios/{name}.json", env!("CARGO_MANIFEST_DIR"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A minimal valid scenario (one H100) with `extra` spliced into its only
/// GPU entry.
pub(super) fn one_gpu(extra: &str) -> String {
    format!(
        r#"{{
  "driver_version": "550.54.15", "nvml_version": "12.550.54.15", "cuda_driver_version": 12040,
  "gpus": [{{
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-00000000-0000-0000-0000-0000000000a0",
    "pci_bus_id": "00000000:18:00.0",
    "memory": {{"total_mib": 81559, "reserved_mib": 549, "used_mib": 1000}}{extra}
  }}]
}}"#
    )
}

fn invalid(json: &str) -> (String, String) {
    match Scenario::from_json_str(json) {
        Err(ScenarioError::Invalid { at, message, .. }) => (at, message),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn shipped_scenarios_load() {
    for name in SHIPPED {
        let s = shipped(name);
        assert!(!s.devices().is_empty(), "{name}");
    }
    assert_eq!(shipped("h100x8").devices().len(), 8);
    assert_eq!(shipped("mixed").devices().len(), 4);
    assert_eq!(shipped("faulty").devices().len(), 4);
    assert_eq!(shipped("scaling").devices().len(), 8);
    assert_eq!(shipped("h100-mig").devices().len(), 8);
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let dir = std::env::temp_dir().join(format!("fake-nvml-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("broken.json");
    std::fs::write(
        &path,
        "{\n  \"driver_version\": \"550.54.15\",\n  \"gpus\": [,]\n}\n",
    )
    .expect("write");
    let err = Scenario::load(&path).expect_err("broken JSON");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:3:12: ", path.display())),
        "{text}"
    );
    assert!(text.contains("expected value"), "{text}");
    assert!(!text.contains(" at line "), "position not repeated: {text}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_file_is_an_io_error() {
    let err = Scenario::load("/nonexistent/scenario.json").expect_err("missing");
    assert!(matches!(err, ScenarioError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/scenario.json"));
}

#[test]
fn unknown_fields_are_rejected() {
    let err = Scenario::from_json_str(&one_gpu(r#", "temprature_c": 50"#))
        .expect_err("typo")
        .to_string();
    assert!(err.contains("unknown field `temprature_c`"), "{err}");
    assert!(err.starts_with("<inline>:"), "{err}");

    let err = Scenario::from_json_str(&one_gpu(
        r#", "pcie": {"link_gen": 4, "link_width": 16, "tx": 1}"#,
    ))
    .expect_err("nested typo")
    .to_string();
    assert!(err.contains("unknown field `tx`"), "{err}");
}

#[test]
fn impossible_scenarios_are_explained() {
    let (at, msg) = invalid(&one_gpu(
        r#", "power_w": {"sine": {"base": 10, "amplitude": 20, "period_s": 5}}"#,
    ));
    assert_eq!(at, "gpus[0].power_w");
    assert!(msg.contains("negative"), "{msg}");

    let (at, _) = invalid(&one_gpu(r#", "energy_counter": true"#));
    assert_eq!(at, "gpus[0].energy_counter");

    let (at, msg) = invalid(&one_gpu(r#", "unsupported": ["nvmlDeviceGetPowerUsag"]"#));
    assert_eq!(at, "gpus[0].unsupported[0]");
    assert!(msg.contains("nvmlDeviceGetPowerUsag"), "{msg}");

    let (at, _) = invalid(&one_gpu(r#", "count": 0"#));
    assert_eq!(at, "gpus[0].count");

    let (at, _) = invalid(&one_gpu(r#", "count": 300"#));
    assert_eq!(at, "gpus[0].pci_bus_id", "bus 0x18 + 299 overflows");

    let (at, _) = invalid(&one_gpu(
        r#", "utilization": {"gpu": {"steps": [[5, 1], [2, 3]]}, "memory": 0}"#,
    ));
    assert_eq!(at, "gpus[0].utilization.gpu");

    let over = one_gpu("").replace(r#""used_mib": 1000"#, r#""used_mib": 81500"#);
    let (at, msg) = invalid(&over);
    assert_eq!(at, "gpus[0].memory");
    assert!(msg.contains("exceeds total_mib"), "{msg}");

    let faulty = one_gpu("").replace(
        "\n}",
        r#", "faults": [{"call": "nvmlDeviceGetPowerUsage", "gpu": 3, "error": "NO_PERMISSION"}]}"#,
    );
    let (at, msg) = invalid(&faulty);
    assert_eq!(at, "faults[0].gpu");
    assert!(msg.contains("has 1"), "{msg}");

    let bad_call = one_gpu("").replace(
        "\n}",
        r#", "latency": [{"call": "nvmlGetPower", "ms": 5}]}"#,
    );
    assert_eq!(invalid(&bad_call).0, "latency[0].call");

    let bad_error = one_gpu("").replace(
        "\n}",
        r#", "faults": [{"call": "*", "error": "NO_PERMISION"}]}"#,
    );
    let err = Scenario::from_json_str(&bad_error)
        .expect_err("bad error name")
        .to_string();
    assert!(err.contains("unknown NVML error \"NO_PERMISION\""), "{err}");

    let new_driver = one_gpu("").replace("550.54.15\", \"nvml", "580.95.05\", \"nvml");
    assert_eq!(invalid(&new_driver).0, "driver_version");

    let dup = one_gpu(r#", "count": 2"#).replace(
        "  }]\n}",
        r#"  }, {"name": "x", "uuid": "GPU-00000000-0000-0000-0000-0000000000a1",
              "pci_bus_id": "0000:40:00.0", "memory": {"total_mib": 1, "used_mib": 0}}]
}"#,
    );
    let (at, msg) = invalid(&dup);
    assert_eq!(at, "GPU 2");
    assert!(msg.contains("duplicate UUID"), "{msg}");
}

#[test]
fn count_expands_identity() {
    let s = Scenario::from_json_str(&one_gpu(
        r#", "count": 3, "minor_number": 4, "serial": "1654922004599",
            "mig": {"enabled": true, "instances": [{"profile": "1g.10gb", "gpu_instance_id": 1,
              "compute_instance_id": 0, "uuid": "MIG-00000000-0000-0000-0000-00000000000f",
              "memory_total_mib": 9984, "memory_used_mib": 0}],
              "schedule": [{"at_s": 9, "enabled": true, "instances": [{"profile": "7g.80gb",
                "gpu_instance_id": 0, "compute_instance_id": 0,
                "uuid": "MIG-00000000-0000-0000-0000-0000000000f0", "memory_used_mib": 0}]}]}"#,
    ))
    .expect("valid");
    let d = s.devices();
    assert_eq!(d.len(), 3);
    let uuids: Vec<&str> = d.iter().map(|d| d.spec.uuid.as_str()).collect();
    assert_eq!(
        uuids,
        [
            "GPU-00000000-0000-0000-0000-0000000000a0",
            "GPU-00000000-0000-0000-0000-0000000000a1",
            "GPU-00000000-0000-0000-0000-0000000000a2"
        ]
    );
    let buses: Vec<&str> = d.iter().map(|d| d.spec.pci_bus_id.as_str()).collect();
    assert_eq!(
        buses,
        ["00000000:18:00.0", "00000000:19:00.0", "00000000:1A:00.0"]
    );
    assert_eq!(d[2].pci.bus, 0x1a);
    let minors: Vec<u32> = d.iter().filter_map(|d| d.spec.minor_number).collect();
    assert_eq!(minors, [4, 5, 6]);
    assert_eq!(d[2].spec.serial.as_deref(), Some("1654922004601"));
    assert_eq!(d.iter().map(|d| d.index).collect::<Vec<_>>(), [0, 1, 2]);
    let mig_uuid = &d[1].mig_devices_at(0.0)[0].spec.uuid;
    assert_eq!(mig_uuid, "MIG-00000000-0000-0000-0000-000000000010");
    let later = &d[2].mig_devices_at(9.0)[0].spec.uuid;
    assert_eq!(later, "MIG-00000000-0000-0000-0000-0000000000f2");
    assert!(d.iter().all(|d| d.spec.count.is_none()));
}

#[test]
fn scaling_count_is_editable_to_64() {
    let path = format!("{}/../scenarios/scaling.json", env!("CARGO_MANIFEST_DIR"));
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json");
    json["gpus"][0]["count"] = 64.into();
    let s = Scenario::from_json_str(&json.to_string()).expect("64 GPUs");
    assert_eq!(s.devices().len(), 64);
    assert_eq!(s.devices()[63].spec.pci_bus_id, "00000000:57:00.0");
}

#[test]
fn energy_is_the_exact_integral_of_power() {
    let s = Scenario::from_json_str(&one_gpu(
        r#", "power_w": {"sine": {"base": 400, "amplitude": 200, "period_s": 30, "phase_s": 7}},
            "energy_counter": true, "energy_offset_mj": 1000"#,
    ))
    .expect("valid");
    let d = &s.devices()[0];
    let t = 47.25;
    let w = std::f64::consts::TAU / 30.0;
    let joules = 400.0 * t - 200.0 / w * ((w * (t + 7.0)).cos() - (w * 7.0).cos());
    assert_eq!(
        d.energy_mj(t),
        Some(1000 + (joules * 1000.0).round() as u64)
    );
    assert_eq!(d.energy_mj(0.0), Some(1000));
    // Whole periods: exactly base · t.
    assert_eq!(d.energy_mj(60.0), Some(1000 + 400 * 60 * 1000));
    let watts_at_0 = 400.0 + 200.0 * (w * 7.0).sin();
    assert_eq!(d.power_mw(0.0), Some((watts_at_0 * 1000.0).round() as u32));

    let no_counter = Scenario::from_json_str(&one_gpu(r#", "power_w": 100"#)).expect("valid");
    assert_eq!(no_counter.devices()[0].energy_mj(10.0), None);
    assert_eq!(no_counter.devices()[0].power_mw(10.0), Some(100_000));
}

#[test]
fn memory_v1_folds_reserved_into_used() {
    let s = Scenario::from_json_str(&one_gpu("")).expect("valid");
    let m = s.devices()[0].memory(0.0);
    assert_eq!(m.total, 81559 * MIB);
    assert_eq!(m.reserved, 549 * MIB);
    assert_eq!(m.used, 1000 * MIB);
    assert_eq!(m.free, (81559 - 549 - 1000) * MIB);
    assert_eq!(m.used_v1, (1000 + 549) * MIB);
    assert_eq!(m.free_v1, m.total - m.used_v1);
}

#[test]
fn faults_and_latency_match_call_gpu_and_window() {
    let json = one_gpu(r#", "count": 2"#).replace(
        "\n}",
        r#", "faults": [
              {"call": "nvmlDeviceGetPowerUsage", "gpu": 1, "error": "NO_PERMISSION"},
              {"call": "*", "error": 999, "from_s": 10, "until_s": 20},
              {"call": "nvmlInit_v2", "error": "DRIVER_NOT_LOADED", "until_s": 5}],
            "latency": [{"call": "*", "ms": 2}, {"call": "nvmlDeviceGetName", "gpu": 0, "ms": 3},
                        {"call": "nvmlInit_v2", "ms": 7, "from_s": 10}]}"#,
    );
    let s = Scenario::from_json_str(&json).expect("valid");
    assert_eq!(s.fault("nvmlDeviceGetPowerUsage", Some(1), 0.0), Some(4));
    assert_eq!(s.fault("nvmlDeviceGetPowerUsage", Some(0), 0.0), None);
    assert_eq!(s.fault("nvmlDeviceGetName", Some(0), 10.0), Some(999));
    assert_eq!(s.fault("nvmlSystemGetDriverVersion", None, 19.9), Some(999));
    assert_eq!(
        s.fault("nvmlDeviceGetName", Some(0), 20.0),
        None,
        "until is exclusive"
    );
    assert_eq!(s.fault("nvmlInit_v2", None, 0.0), Some(9));
    assert_eq!(
        s.fault("nvmlInit", None, 12.0),
        None,
        "* never matches init"
    );
    assert_eq!(
        s.latency("nvmlDeviceGetName", Some(0), 0.0),
        Duration::from_millis(5)
    );
    assert_eq!(
        s.latency("nvmlDeviceGetName", Some(1), 0.0),
        Duration::from_millis(2)
    );
    // Init waits only for entries naming it, inside their window.
    assert_eq!(s.latency("nvmlInit_v2", None, 0.0), Duration::ZERO);
    assert_eq!(
        s.latency("nvmlInit_v2", None, 10.0),
        Duration::from_millis(7)
    );
    assert_eq!(s.latency("nvmlInitWithFlags", None, 10.0), Duration::ZERO);
}

#[test]
fn processes_have_lifetimes() {
    let s = shipped("h100x8");
    let gpu2 = &s.devices()[2];
    let pids = |t: f64| gpu2.processes_at(t).map(|p| p.pid).collect::<Vec<_>>();
    assert_eq!(pids(5.0), [4244]);
    assert_eq!(pids(10.0), [4244, 7001]);
    assert_eq!(pids(40.0), [4244]);
    let mixed = shipped("mixed");
    let unknown_mem = ProcessSpec {
        used_mib: None,
        ..mixed.devices()[0].spec.processes[0].clone()
    };
    assert_eq!(unknown_mem.used_bytes(0.0), u64::MAX);
}

#[test]
fn pci_addresses_parse_in_all_nvml_forms() {
    let full = PciAddress::parse("00000000:18:00.0").expect("full");
    assert_eq!(PciAddress::parse("0000:18:00.0"), Some(full));
    assert_eq!(PciAddress::parse("18:00.0"), Some(full));
    assert_eq!(
        PciAddress::parse("00000000:ab:00.0").map(|p| p.bus),
        Some(0xab)
    );
    assert_eq!(full.bus_id(), "00000000:18:00.0");
    assert_eq!(full.bus_id_legacy(), "0000:18:00.0");
    assert_eq!(PciAddress::parse("18:00"), None);
    assert_eq!(PciAddress::parse("zz:00.0"), None);
    assert_eq!(PciAddress::parse("1:2:3:4.0"), None);
}
