//! SIGHUP reloads of the collectors CSV and the web config.

mod common;

use std::time::Duration;

use common::{Exporter, value, wait_for};

const UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";
const TEMP: &str = "DCGM_FI_DEV_GPU_TEMP";
const FB_USED: &str = "DCGM_FI_DEV_FB_USED";

/// Sends SIGHUP and waits for the reload's outcome line.
fn hup(exporter: &Exporter, outcome: &str) -> String {
    let before = exporter.log().len();
    exporter.signal("HUP");
    exporter.wait_log_after(before, outcome, Duration::from_secs(15))
}

#[test]
fn sighup_keeps_the_old_collectors_on_a_bad_csv_and_applies_a_good_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("collectors.csv");
    std::fs::write(
        &csv,
        "# util and memory only\nDCGM_FI_DEV_GPU_UTIL, gauge, GPU utilization (in %).\n\
         DCGM_FI_DEV_FB_USED, gauge, Framebuffer memory used (in MiB).\n",
    )
    .expect("write csv");
    let csv_arg = csv.to_str().expect("utf-8 path");
    let exporter = Exporter::start("steps.json", &["-c", "200", "-f", csv_arg]);
    let text = exporter.metrics();
    assert!(value(&text, UTIL, &[r#"gpu="0""#]).is_some(), "{text}");
    assert!(value(&text, TEMP, &[r#"gpu="0""#]).is_none(), "{text}");

    // A broken file: logged with file and line, the old config keeps serving.
    std::fs::write(
        &csv,
        "DCGM_FI_DEV_GPU_UTIL, gauge, ok\nDCGM_FI_DEV_NOT_A_FIELD, gauge, typo\n",
    )
    .expect("write csv");
    let line = hup(&exporter, "collectors reload failed");
    assert!(
        line.contains(&format!("{}:2:", csv.display())),
        "file:line in {line:?}"
    );
    assert!(line.contains("previous collectors keep serving"), "{line}");
    std::thread::sleep(Duration::from_millis(500));
    let text = exporter.metrics();
    assert!(value(&text, UTIL, &[r#"gpu="0""#]).is_some(), "{text}");
    assert!(value(&text, FB_USED, &[r#"gpu="1""#]).is_some(), "{text}");
    assert!(exporter.get("/health").status == 200);

    // A good file with a narrower set: applied at once (same sampler).
    std::fs::write(
        &csv,
        "DCGM_FI_DEV_GPU_TEMP, gauge, GPU temperature (in C).\n",
    )
    .expect("write");
    hup(&exporter, "collectors reloaded");
    let text = exporter.metrics();
    assert_eq!(value(&text, TEMP, &[r#"gpu="1""#]), Some(41.0), "{text}");
    assert!(value(&text, UTIL, &[r#"gpu="0""#]).is_none(), "{text}");
    assert!(value(&text, FB_USED, &[r#"gpu="0""#]).is_none(), "{text}");

    // A good file with a field the running sampler does not read: a new
    // sampler takes over.
    std::fs::write(
        &csv,
        "DCGM_FI_DEV_POWER_MGMT_LIMIT, gauge, Power management limit (in W).\n\
         DCGM_FI_DEV_GPU_TEMP, gauge, GPU temperature (in C).\n",
    )
    .expect("write");
    hup(&exporter, "collectors reloaded");
    let text = wait_for(Duration::from_secs(5), "the power limit series", || {
        let t = exporter.metrics();
        value(&t, "DCGM_FI_DEV_POWER_MGMT_LIMIT", &[r#"gpu="0""#]).map(|_| t)
    });
    assert_eq!(
        value(&text, "DCGM_FI_DEV_POWER_MGMT_LIMIT", &[r#"gpu="0""#]),
        Some(400.0)
    );
    assert!(value(&text, TEMP, &[r#"gpu="0""#]).is_some(), "{text}");
    // And it keeps sampling.
    let seq = value(&text, "algalon_samples_total", &[]).expect("samples");
    wait_for(Duration::from_secs(5), "samples to continue", || {
        (value(&exporter.metrics(), "algalon_samples_total", &[])? > seq).then_some(())
    });
}

#[test]
fn sighup_reloads_the_web_config_and_keeps_the_old_one_when_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "# no TLS, no auth yet\n").expect("write");
    let web_arg = web.to_str().expect("utf-8 path");
    let exporter = Exporter::start("steps.json", &["-c", "500", "--web-config-file", web_arg]);
    assert_eq!(exporter.get("/metrics").status, 200);

    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("write");
    hup(&exporter, "web config reloaded");
    assert_eq!(exporter.get("/metrics").status, 401);
    let token = "cHJvbWV0aGV1czpzM2NyZXQ="; // prometheus:s3cret
    let ok = exporter.get_with("/metrics", &[("Authorization", &format!("Basic {token}"))]);
    assert_eq!(ok.status, 200);

    std::fs::write(&web, "basic_auth_users:\n  prometheus: [not, a, hash\n").expect("write");
    let line = hup(&exporter, "web config reload failed");
    assert!(line.contains(&format!("{}:", web.display())), "{line}");
    assert!(line.contains("previous web config keeps serving"), "{line}");
    assert_eq!(exporter.get("/metrics").status, 401, "auth is still on");
}
