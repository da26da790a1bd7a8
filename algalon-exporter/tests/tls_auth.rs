//! TLS (rustls) and basic auth from an exporter-toolkit web config.

mod common;

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use common::{Exporter, get_tls};

struct Tls {
    _dir: tempfile::TempDir,
    web: std::path::PathBuf,
    cert_pem: String,
}

fn self_signed() -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("self-signed certificate");
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

/// A web config with TLS (relative paths, as the toolkit allows) and one
/// basic-auth user `prometheus` / `s3cret`.
fn tls_config() -> Tls {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_pem, key_pem) = self_signed();
    std::fs::write(dir.path().join("server.crt"), &cert_pem).expect("write cert");
    std::fs::write(dir.path().join("server.key"), &key_pem).expect("write key");
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .expect("write web config");
    Tls {
        _dir: dir,
        web,
        cert_pem,
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn start(tls: &Tls) -> Exporter {
    Exporter::start(
        "steps.json",
        &[
            "-c",
            "1000",
            "--web-config-file",
            tls.web.to_str().expect("utf-8"),
        ],
    )
}

#[test]
fn tls_with_basic_auth() {
    let tls = tls_config();
    let exporter = start(&tls);
    assert!(exporter.https, "logs listening on https://");
    let addr = exporter.addr;

    let ok = get_tls(
        addr,
        &tls.cert_pem,
        "/metrics",
        &[("Authorization", &basic("prometheus", "s3cret"))],
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\""));
    // Cached verification, same answer.
    let again = get_tls(
        addr,
        &tls.cert_pem,
        "/metrics",
        &[("Authorization", &basic("prometheus", "s3cret"))],
    );
    assert_eq!(again.status, 200);

    for (user, password) in [
        ("prometheus", "wrong"),
        ("nobody", "s3cret"),
        ("prometheus", ""),
    ] {
        let r = get_tls(
            addr,
            &tls.cert_pem,
            "/metrics",
            &[("Authorization", &basic(user, password))],
        );
        assert_eq!(r.status, 401, "{user}:{password}");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic realm=")),
            "{:?}",
            r.headers
        );
    }
    let anonymous = get_tls(addr, &tls.cert_pem, "/metrics", &[]);
    assert_eq!(anonymous.status, 401);
    let api = get_tls(addr, &tls.cert_pem, "/api/v1/gpus", &[]);
    assert_eq!(api.status, 401, "every path but /health needs the password");
    // /health stays open for container health checks.
    let health = get_tls(addr, &tls.cert_pem, "/health", &[]);
    assert_eq!(health.status, 200, "{}", health.text());
}

#[test]
fn plain_http_to_the_tls_port_is_refused() {
    let tls = tls_config();
    let exporter = start(&tls);
    let mut tcp = std::net::TcpStream::connect(exporter.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.0 400"), "{text}");
    assert!(
        text.contains("Client sent an HTTP request to an HTTPS server"),
        "{text}"
    );
    assert!(!text.contains("DCGM_"), "no metrics over plain HTTP");
}

#[test]
fn healthcheck_mode_speaks_tls() {
    let tls = tls_config();
    let exporter = start(&tls);
    let out = std::process::Command::new(common::BIN)
        .args([
            "--healthcheck",
            &format!("https://{}/health", exporter.addr),
        ])
        .output()
        .expect("run --healthcheck");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_a_start_up_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_pem, _) = self_signed();
    let (_, other_key) = self_signed();
    std::fs::write(dir.path().join("server.crt"), cert_pem).expect("write");
    std::fs::write(dir.path().join("server.key"), other_key).expect("write");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .expect("write");
    let lines = start_up_error(&web);
    assert!(
        lines[0].contains("does not match the certificate"),
        "{lines:?}"
    );
    assert!(lines[0].contains(&web.display().to_string()), "{lines:?}");
}

fn start_up_error(web: &Path) -> Vec<String> {
    let mut cmd = common::command(&common::scenario("steps.json"));
    cmd.arg("--nvml-lib")
        .arg(common::fake_nvml())
        .args(["-a", "127.0.0.1:0", "--web-config-file"])
        .arg(web);
    let (status, lines) = common::run_to_failure(cmd);
    assert!(!status.success());
    assert_eq!(lines.len(), 1, "exactly one line: {lines:?}");
    lines
}
