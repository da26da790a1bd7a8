//! MIG instances through the real exporter and the fake NVML's
//! `h100-mig` scenario: `-d g+i` writes each instance as dcgm-exporter
//! does (the parent's labels plus `GPU_I_PROFILE` and `GPU_I_ID`), checked
//! against a golden file; instances created and destroyed while the
//! exporter runs (the scenario's schedule, stepped with a clock file) show
//! up within one sample, with no stale series and no NVML errors.
//! Regenerate the golden file with `UPDATE_GOLDEN=1` (`make golden`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Exporter, command, fake_nvml, scenario, value, wait_for};

fn spawn(devices: &str, clock: impl FnOnce(&mut std::process::Command)) -> Exporter {
    let mut cmd = command(&scenario("h100-mig.json"));
    clock(&mut cmd);
    cmd.arg("--nvml-lib")
        .arg(fake_nvml())
        .args([
            "-a",
            "127.0.0.1:0",
            "-c",
            "100",
            "--processes",
            "-d",
            devices,
        ])
        // The scenario's PIDs are made up: no name or cgroup from this machine.
        .args(["--proc-root", "/dev/null/no-proc"]);
    Exporter::spawn(cmd)
}

fn samples(text: &str) -> f64 {
    value(text, "algalon_samples_total", &[]).unwrap_or(0.0)
}

/// A scrape taken after at least `n` more samples than `after`.
fn scrape_after(exporter: &Exporter, after: f64, n: f64) -> String {
    wait_for(Duration::from_secs(20), "more samples", || {
        let t = exporter.metrics();
        (samples(&t) >= after + n).then_some(t)
    })
}

/// The DCGM field families and the per-process series, with the host name
/// normalised: what `-d g+i` changes.
fn mig_view(body: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned();
    let host_label = format!("Hostname=\"{host}\"");
    let mut out = String::new();
    for line in body.lines() {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        if name.starts_with("DCGM_FI_") || name.starts_with("algalon_process_") {
            out.push_str(&line.replace(&host_label, "Hostname=\"<host>\""));
            out.push('\n');
        }
    }
    out
}

/// The series of GPU `gpu`'s instance `gi` (`GPU_I_ID`).
fn on_instance(gpu: u32, gi: u32) -> [String; 2] {
    [format!("gpu=\"{gpu}\","), format!("GPU_I_ID=\"{gi}\"")]
}

fn instance_value(text: &str, name: &str, gpu: u32, gi: u32) -> Option<f64> {
    let labels = on_instance(gpu, gi);
    value(text, name, &[&labels[0], &labels[1]])
}

#[test]
fn g_plus_i_writes_instances_as_dcgm_exporter_does() {
    let exporter = spawn("g+i", |cmd| {
        cmd.env("ALGALON_FAKE_NVML_FROZEN_TIME", "35");
    });
    // GPM ratios need two samples one interval apart.
    let text = scrape_after(&exporter, 0.0, 2.0);

    // GPU 0: 1g.10gb instances; GI 7 runs vllm (8205 MiB in the scenario).
    let gi7 = "GPU_I_PROFILE=\"1g.10gb\",GPU_I_ID=\"7\"";
    assert!(
        text.contains(&format!(
            "DCGM_FI_DEV_FB_USED{{gpu=\"0\",UUID=\"GPU-a3c81f52-6d0e-4b9a-8f27-5e1d9c4b7010\",\
             pci_bus_id=\"00000000:18:00.0\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",\
             {gi7},"
        )),
        "no GI 7 framebuffer series:\n{text}"
    );
    assert_eq!(
        instance_value(&text, "DCGM_FI_DEV_FB_USED", 0, 7),
        Some(8205.0)
    );
    // Whole-GPU readings stay on the GPU's series (no GPU_I_ID).
    let whole = text
        .lines()
        .find(|l| l.starts_with("DCGM_FI_DEV_FB_USED{gpu=\"0\",") && !l.contains("GPU_I_ID"))
        .expect("GPU 0's own FB_USED");
    assert!(whole.ends_with(" 26715"), "{whole}");
    assert!(!text.contains("DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-a3c81f52-6d0e-4b9a-8f27-5e1d9c4b7010\",pci_bus_id=\"00000000:18:00.0\",device=\"nvidia0\",modelName=\"NVIDIA H100 80GB HBM3\",GPU_I"));
    // GPM per GPU instance: the scenario's sine at t = 35 (80 + 8·sin(2π·35/20)).
    let sm = instance_value(&text, "DCGM_FI_PROF_GR_ENGINE_ACTIVE", 0, 7).expect("GI 7 GPM");
    assert!((sm - 0.72).abs() < 1e-9, "{sm}");
    // A process is written on the instance it runs in.
    assert!(
        text.lines()
            .any(|l| l.starts_with("algalon_process_gpu_memory_bytes{")
                && l.contains(gi7)
                && l.contains("pid=\"6101\"")),
        "vllm (6101) is not on GI 7:\n{text}"
    );
    // GPU 2 went MIG at t = 30: 4g.40gb + 3g.40gb.
    assert!(text.contains("GPU_I_PROFILE=\"4g.40gb\",GPU_I_ID=\"1\""));
    common::check_golden("mig", "mig-g+i.prom", &mig_view(&text));
    // Without `+i` nothing of the instances is written.
    drop(exporter);
    let plain = spawn("g", |cmd| {
        cmd.env("ALGALON_FAKE_NVML_FROZEN_TIME", "35");
    });
    let text = scrape_after(&plain, 0.0, 2.0);
    assert!(!text.contains("GPU_I_ID"), "{text}");
}

#[test]
fn g_colon_list_plus_i_list_selects_by_gpu_instance_id() {
    let exporter = spawn("g:0+i:7,10", |cmd| {
        cmd.env("ALGALON_FAKE_NVML_FROZEN_TIME", "35");
    });
    let text = scrape_after(&exporter, 0.0, 2.0);
    assert!(instance_value(&text, "DCGM_FI_DEV_FB_USED", 0, 7).is_some());
    // GI 10 has never run a process: selected by the id NVML gives.
    assert!(instance_value(&text, "DCGM_FI_DEV_FB_USED", 0, 10).is_some());
    assert!(instance_value(&text, "DCGM_FI_DEV_FB_USED", 0, 8).is_none());
    // `g:0` names whole GPU 0 only: its instances are read, no other GPU's.
    assert!(instance_value(&text, "DCGM_FI_DEV_FB_USED", 1, 2).is_none());
    assert!(instance_value(&text, "DCGM_FI_DEV_FB_USED", 1, 1).is_none());
}

fn write_clock(path: &Path, t: u32) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, t.to_string()).expect("write clock");
    std::fs::rename(&tmp, path).expect("rename clock");
}

#[test]
fn repartitioning_shows_within_one_sample_without_stale_series_or_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = dir.path().join("clock");
    write_clock(&clock, 20);
    let exporter = spawn("g+i", |cmd| {
        cmd.env("ALGALON_FAKE_NVML_CLOCK_FILE", &clock);
    });
    let before = scrape_after(&exporter, 0.0, 2.0);
    // t = 20: GPU 1 is 3g.40gb + 2g.20gb + 1g.10gb …; GPU 2 is a whole GPU.
    assert!(before.contains("GPU_I_PROFILE=\"2g.20gb\",GPU_I_ID=\"3\""));
    assert!(instance_value(&before, "DCGM_FI_DEV_FB_USED", 1, 9).is_some());
    assert!(!before.contains("gpu=\"2\",UUID=\"GPU-a3c81f52-6d0e-4b9a-8f27-5e1d9c4b7012\",pci_bus_id=\"00000000:3A:00.0\",device=\"nvidia2\",modelName=\"NVIDIA H100 80GB HBM3\",GPU_I"));

    let seq = samples(&exporter.metrics());
    write_clock(&clock, 35);
    // Two samples on, one of them started after the step: the new layout.
    let after = scrape_after(&exporter, seq, 2.0);
    // GPU 1: 2 x 3g.40gb; GI 2 survived, GI 1 is new, GI 3 and 9 are gone.
    assert!(
        after.contains("GPU_I_PROFILE=\"3g.40gb\",GPU_I_ID=\"1\""),
        "{after}"
    );
    assert!(instance_value(&after, "DCGM_FI_DEV_FB_USED", 1, 2).is_some());
    for gone in [3, 9] {
        assert!(
            instance_value(&after, "DCGM_FI_DEV_FB_USED", 1, gone).is_none(),
            "GI {gone} of GPU 1 was destroyed but is still written"
        );
    }
    assert!(
        !after.contains("2g.20gb"),
        "a destroyed profile is still written"
    );
    // GPU 2 switched to MIG: its two instances appear.
    assert!(instance_value(&after, "DCGM_FI_DEV_FB_USED", 2, 1).is_some());
    assert!(instance_value(&after, "DCGM_FI_DEV_FB_USED", 2, 2).is_some());
    // The change is not an NVML failure: no error counted, every GPU up.
    let errors: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("algalon_nvml_errors"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    for gpu in 0..8 {
        assert_eq!(
            value(&after, "algalon_gpu_up", &[&format!("gpu=\"{gpu}\",")]),
            Some(1.0)
        );
    }
}

/// The exporter's start-up failure with `-d devices` at t = 35 (exit
/// status `code`: 1 for a device that does not exist, 2 for a value the
/// option does not take).
fn fails_with(code: i32, devices: &str) -> Vec<String> {
    let mut cmd = command(&scenario("h100-mig.json"));
    cmd.env("ALGALON_FAKE_NVML_FROZEN_TIME", "35")
        .arg("--nvml-lib")
        .arg(fake_nvml())
        .args(["-a", "127.0.0.1:0", "-d", devices]);
    let (status, lines) = common::run_to_failure(cmd);
    assert_eq!(status.code(), Some(code), "{devices}: {lines:?}");
    lines
}

fn fails(devices: &str) -> Vec<String> {
    fails_with(1, devices)
}

#[test]
fn a_gpu_instance_id_that_does_not_exist_is_one_error_naming_the_instances() {
    // GPU 1 has two instances at t = 35: GI 1 and GI 2.
    let lines = fails("g:1+i:9");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(
        line.contains("no MIG instance matches GPU instance id 9"),
        "{line}"
    );
    for there in [
        "GPU 1 GI 1 (3g.40gb, MIG-9d27f4a1-3c8e-5b06-a2d4-6e1f0c7b5905)",
        "GPU 1 GI 2 (3g.40gb, MIG-9d27f4a1-3c8e-5b06-a2d4-6e1f0c7b5901)",
        "-d g+i",
    ] {
        assert!(line.contains(there), "{there:?} missing from: {line}");
    }
    // A GPU that is not in MIG mode has no instance to pick.
    let lines = fails("g:3+i:1");
    assert!(
        lines[0].contains("no GPU among 3 is in MIG mode"),
        "{lines:?}"
    );
}

#[test]
fn a_mig_uuid_in_the_device_list_is_one_error() {
    // dcgm-exporter's -d takes no MIG UUID either: instances are `i:LIST`.
    let lines = fails_with(2, "MIG-4b1e7c20-0a5d-5f3e-9c61-7d2a8e0b3cff");
    assert_eq!(lines.len(), 1, "{lines:?}");
    for said in [
        "MIG-4b1e7c20-0a5d-5f3e-9c61-7d2a8e0b3cff",
        "is a MIG device UUID",
        "`g+i` every instance",
    ] {
        assert!(lines[0].contains(said), "{said:?} missing from {lines:?}");
    }
}
