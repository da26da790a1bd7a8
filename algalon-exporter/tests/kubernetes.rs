//! `--kubernetes` against the kubelet stand-in (`testing/kubelet/standin.py`,
//! the real pod-resources v1 API on a unix socket) and the fake NVML's
//! `mixed.json` node: GPU 0 in MIG mode, GPU 1 held by `trainer-a`, GPU 2
//! by `trainer-b` (and `trainer-c` in the `churn` state), GPU 3
//! time-sliced between `infer-0`, `infer-1` and `infer-2`.

mod common;
#[path = "../../algalon-kubernetes/tests/common/mod.rs"]
mod standin;

use std::time::Duration;

use common::{Exporter, wait_for};
use standin::{StandIn, standin_available};

const GPU1: &str = "GPU-4e6a8c0e-2a4c-46e8-b0d2-6a8c0e2a4c90";
const GPU2: &str = "GPU-9a7c5e3b-1d2f-4e6a-8c0b-2d4f6a8c0e11";
const GPU3: &str = "GPU-d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f22";
const TRAINER_A_UID: &str = "0a6f2c1e-3b4d-4e5f-8a9b-0c1d2e3f4a01";
const NOTEBOOK_3G_UID: &str = "0a6f2c1e-3b4d-4e5f-8a9b-0c1d2e3f4a11";
const INFER_1_UID: &str = "0a6f2c1e-3b4d-4e5f-8a9b-0c1d2e3f4a21";

/// The `DCGM_FI_DEV_GPU_UTIL` lines of one GPU.
fn util_lines<'t>(text: &'t str, uuid: &str) -> Vec<&'t str> {
    let want = format!("UUID=\"{uuid}\"");
    text.lines()
        .filter(|l| l.starts_with("DCGM_FI_DEV_GPU_UTIL{") && l.contains(&want))
        .collect()
}

/// A /proc with the cgroups of three GPU processes: 6301 (GPU 1) in
/// `trainer-a`'s pod, 9911 (GPU 3) in `infer-1`'s, 5101 (GPU 0's MIG
/// instance 1) in `notebook-3g`'s, as the kubelet's
/// systemd and cgroupfs drivers name them.
fn proc_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let systemd = |uid: &str| {
        format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-0123.scope\n",
            uid.replace('-', "_")
        )
    };
    for (pid, comm, cgroup) in [
        ("6301", "ffmpeg", systemd(TRAINER_A_UID)),
        ("5101", "python3", systemd(NOTEBOOK_3G_UID)),
        (
            "9911",
            "tritonserver",
            format!("0::/kubepods/besteffort/pod{INFER_1_UID}/4567cdef\n"),
        ),
    ] {
        let p = dir.path().join(pid);
        std::fs::create_dir_all(&p).expect("mkdir");
        std::fs::write(p.join("comm"), format!("{comm}\n")).expect("comm");
        std::fs::write(p.join("cgroup"), cgroup).expect("cgroup");
    }
    dir
}

/// `/var/log/pods` as the kubelet lays it out: the pod UIDs the
/// pod-resources API does not give.
fn pod_logs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(standin::scenario("node.json")).expect("node.json"),
    )
    .expect("node.json parses");
    for pod in scenario["pods"].as_object().expect("pods").values() {
        let name = format!(
            "{}_{}_{}",
            pod["namespace"].as_str().expect("a string"),
            pod["name"].as_str().expect("a string"),
            pod["uid"].as_str().expect("a string")
        );
        std::fs::create_dir_all(dir.path().join(name)).expect("mkdir");
    }
    dir
}

fn start(
    kubelet: &StandIn,
    procs: &tempfile::TempDir,
    logs: &tempfile::TempDir,
    extra: &[&str],
) -> Exporter {
    let socket = kubelet.socket.to_str().expect("utf-8 path");
    let mut args = vec![
        "-c",
        "200",
        "--kubernetes",
        "--pod-resources-kubelet-socket",
        socket,
        "--processes",
        "--proc-root",
        procs.path().to_str().expect("a UTF-8 path"),
        "--kubernetes-pod-logs-dir",
        logs.path().to_str().expect("a UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    Exporter::start("mixed.json", &args)
}

#[test]
fn gpu_and_process_series_carry_the_pods_that_hold_them() {
    if !standin_available() {
        return;
    }
    let kubelet = StandIn::start("node.json", "node", false);
    let (procs, logs) = (proc_root(), pod_logs());
    let exporter = start(
        &kubelet,
        &procs,
        &logs,
        &["--kubernetes-virtual-gpus", "--kubernetes-enable-pod-uid"],
    );
    let text = wait_for(Duration::from_secs(20), "pod labels", || {
        let t = exporter.metrics();
        t.contains("pod=\"trainer-a\"").then_some(t)
    });

    // An exclusive GPU: one series, dcgm-exporter's attribute names.
    let gpu1 = util_lines(&text, GPU1);
    assert_eq!(gpu1.len(), 1, "{gpu1:?}");
    for want in [
        "container=\"main\"",
        "namespace=\"ml\"",
        "pod=\"trainer-a\"",
        &format!("pod_uid=\"{TRAINER_A_UID}\""),
    ] {
        assert!(gpu1[0].contains(want), "{want} missing: {}", gpu1[0]);
    }
    // A time-sliced GPU shared by three pods: one series per pod, with
    // the replica in `vgpu`.
    let gpu3 = util_lines(&text, GPU3);
    assert_eq!(gpu3.len(), 3, "{gpu3:?}");
    for (i, line) in gpu3.iter().enumerate() {
        assert!(line.contains(&format!("pod=\"infer-{i}\"")), "{line}");
        assert!(line.contains(&format!("vgpu=\"{i}\"")), "{line}");
        assert!(line.contains("container=\"server\""), "{line}");
    }
    // GPU 0 is in MIG mode: its instances are held (MIG-… ids), not the
    // GPU, so its whole-GPU series carry no pod.
    let gpu0: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\""))
        .collect();
    assert!(gpu0.iter().all(|l| !l.contains("pod=")), "{gpu0:?}");

    // Per-process series: the cgroup's pod UID joined with the kubelet's answer.
    let process = |pid: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("algalon_process_gpu_memory_bytes{")
                    && l.contains(&format!("pid=\"{pid}\""))
            })
            .unwrap_or_else(|| panic!("no process series for {pid}:\n{text}"))
            .to_owned()
    };
    let p = process("6301");
    for want in [
        "pod=\"trainer-a\"",
        "namespace=\"ml\"",
        "container=\"main\"",
    ] {
        assert!(p.contains(want), "{want} missing: {p}");
    }
    let p = process("9911");
    assert!(
        p.contains("pod=\"infer-1\"") && p.contains("container=\"server\""),
        "{p}"
    );
    assert!(!process("6302").contains("pod="), "no cgroup, no pod");

    assert!(text.contains("\nalgalon_kubernetes_up 1\n"), "{text}");
    let health = exporter.get("/health");
    assert_eq!(health.status, 200);
    assert!(
        health.text().contains("kubernetes: up, "),
        "{}",
        health.text()
    );
}

#[test]
fn pods_coming_and_going_and_the_kubelet_going_away() {
    if !standin_available() {
        return;
    }
    let mut kubelet = StandIn::start("node.json", "node", false);
    let (procs, logs) = (proc_root(), pod_logs());
    let exporter = start(&kubelet, &procs, &logs, &[]);
    wait_for(Duration::from_secs(20), "trainer-b on GPU 2", || {
        let t = exporter.metrics();
        util_lines(&t, GPU2)
            .iter()
            .any(|l| l.contains("pod=\"trainer-b\""))
            .then_some(())
    });
    // Without --kubernetes-virtual-gpus, a shared GPU keeps one series:
    // the last holder, as dcgm-exporter's map overwrites earlier ones.
    let text = exporter.metrics();
    let gpu3 = util_lines(&text, GPU3);
    assert_eq!(gpu3.len(), 1, "{gpu3:?}");
    assert!(!gpu3[0].contains("vgpu="), "{}", gpu3[0]);

    // trainer-b leaves, trainer-c takes GPU 2.
    kubelet.switch("churn");
    wait_for(Duration::from_secs(20), "trainer-c on GPU 2", || {
        let t = exporter.metrics();
        let lines = util_lines(&t, GPU2);
        (lines.len() == 1 && lines[0].contains("pod=\"trainer-c\"")).then_some(())
    });

    // The socket removed (the kubelet restarting): the GPU series keep
    // coming; the gauge and /health say so at once; one warning.
    let before = exporter.log().len();
    kubelet.switch("restarting");
    let text = wait_for(Duration::from_secs(20), "algalon_kubernetes_up 0", || {
        let t = exporter.metrics();
        t.contains("\nalgalon_kubernetes_up 0\n").then_some(t)
    });
    assert_eq!(util_lines(&text, GPU1).len(), 1, "{text}");
    let health = exporter.get("/health");
    assert_eq!(health.status, 200, "the GPUs are still served");
    assert!(
        health.text().contains("does not exist"),
        "{}",
        health.text()
    );
    std::thread::sleep(Duration::from_millis(1000));
    let warnings = exporter.log()[before..]
        .iter()
        .filter(|l| l.contains("kubelet pod-resources API:"))
        .count();
    assert_eq!(warnings, 1, "one warning per change:\n{:?}", exporter.log());

    // The socket back but nothing listening (the kubelet crashed): a new
    // state, so one more warning, and /health names it.
    kubelet.switch("crashed");
    wait_for(Duration::from_secs(20), "nothing listens", || {
        exporter
            .get("/health")
            .text()
            .contains("nothing listens on")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(1000));
    let warnings = exporter.log()[before..]
        .iter()
        .filter(|l| l.contains("kubelet pod-resources API:"))
        .count();
    assert_eq!(warnings, 2, "one warning per change:\n{:?}", exporter.log());

    // Back: the labels return.
    kubelet.switch("node");
    wait_for(Duration::from_secs(20), "kubelet back", || {
        let t = exporter.metrics();
        (t.contains("\nalgalon_kubernetes_up 1\n")
            && util_lines(&t, GPU2)
                .iter()
                .any(|l| l.contains("pod=\"trainer-b\"")))
        .then_some(())
    });
}

#[test]
fn pod_labels_from_the_api_server_through_the_allowlist() {
    if !standin_available() {
        return;
    }
    let kubelet = StandIn::start("node.json", "node", true);
    let (procs, logs) = (proc_root(), pod_logs());
    let sa = kubelet.dir.path().join("sa");
    let host = kubelet.ready["host"].as_str().expect("host").to_owned();
    let port = kubelet.ready["port"].to_string();
    let socket = kubelet.socket.to_str().expect("a UTF-8 path");
    let mut cmd = common::command(&common::scenario("mixed.json"));
    cmd.arg("--nvml-lib")
        .arg(common::fake_nvml())
        .args(["-a", "127.0.0.1:0", "-c", "200", "--kubernetes"])
        .args(["--pod-resources-kubelet-socket", socket])
        .args(["--processes", "--proc-root"])
        .arg(procs.path())
        .arg("--kubernetes-pod-logs-dir")
        .arg(logs.path())
        .args([
            "--kubernetes-enable-pod-labels",
            "--kubernetes-enable-pod-uid",
            "--kubernetes-pod-label-allowlist-regex",
            "^team$,^app\\.kubernetes\\.io/name$,[",
        ])
        .arg("--kubernetes-service-account-dir")
        .arg(&sa)
        .env("KUBERNETES_SERVICE_HOST", host)
        .env("KUBERNETES_SERVICE_PORT", port);
    let exporter = Exporter::spawn(cmd);
    let text = wait_for(Duration::from_secs(20), "pod labels", || {
        let t = exporter.metrics();
        t.contains("team=\"vision\"").then_some(t)
    });
    let gpu1 = util_lines(&text, GPU1);
    assert_eq!(gpu1.len(), 1, "{gpu1:?}");
    for want in [
        "pod=\"trainer-a\"",
        "team=\"vision\"",
        "app_kubernetes_io_name=\"trainer\"",
        &format!("pod_uid=\"{TRAINER_A_UID}\""),
    ] {
        assert!(gpu1[0].contains(want), "{want} missing: {}", gpu1[0]);
    }
    assert!(
        !gpu1[0].contains("pod_template_hash"),
        "not in the allowlist: {}",
        gpu1[0]
    );
    // The pattern that does not compile: skipped with one warning.
    let log = exporter.log().join("\n");
    assert_eq!(log.matches("does not compile").count(), 1, "{log}");
}

#[test]
fn mig_devices_label_their_instance_series_and_processes() {
    if !standin_available() {
        return;
    }
    let kubelet = StandIn::start("node.json", "node", false);
    let (procs, logs) = (proc_root(), pod_logs());
    let exporter = start(&kubelet, &procs, &logs, &["-d", "g+i"]);
    let text = wait_for(Duration::from_secs(20), "MIG pod labels", || {
        let t = exporter.metrics();
        t.contains("pod=\"notebook-3g\"").then_some(t)
    });
    let instance = |gi: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| {
                l.starts_with("DCGM_FI_DEV_FB_USED{") && l.contains(&format!("GPU_I_ID=\"{gi}\""))
            })
            .collect()
    };
    let (gi1, gi5) = (instance("1"), instance("5"));
    assert_eq!(gi1.len(), 1, "{text}");
    for want in [
        "pod=\"notebook-3g\"",
        "namespace=\"research\"",
        "container=\"jupyter\"",
    ] {
        assert!(gi1[0].contains(want), "{want} missing: {}", gi1[0]);
    }
    // Instance 5's series (when the fake NVML gives them) carry its holder.
    assert!(
        gi5.iter().all(|l| l.contains("pod=\"notebook-2g\"")),
        "{gi5:?}"
    );
    // The whole GPU's series: no MIG holder's pod.
    let whole: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("DCGM_FI_DEV_FB_USED{gpu=\"0\"") && !l.contains("GPU_I_ID"))
        .collect();
    assert!(whole.iter().all(|l| !l.contains("pod=")), "{whole:?}");
    let p = text
        .lines()
        .find(|l| l.starts_with("algalon_process_gpu_memory_bytes{") && l.contains("pid=\"5101\""))
        .unwrap_or_else(|| panic!("no series for 5101:\n{text}"));
    assert!(
        p.contains("pod=\"notebook-3g\"") && p.contains("container=\"jupyter\""),
        "{p}"
    );
}
