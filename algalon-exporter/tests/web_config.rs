//! The web config as node_exporter's exporter-toolkit reads it: every value
//! it accepts starts the exporter (with a one-line warning where rustls must
//! differ), and a rotated certificate is served without a SIGHUP.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Exporter;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

fn self_signed() -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("self-signed certificate");
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

/// What a handshake with a client limited to `suites`/`versions`/`groups`
/// gave: the negotiated suite and the response's status line, or the error.
fn handshake(
    addr: SocketAddr,
    ca_pem: &str,
    suites: Option<&[rustls::CipherSuite]>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    groups: Option<&[rustls::NamedGroup]>,
) -> Result<(rustls::CipherSuite, String), String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = suites {
        provider
            .cipher_suites
            .retain(|s| suites.contains(&s.suite()));
    }
    if let Some(groups) = groups {
        provider.kx_groups.retain(|g| groups.contains(&g.name()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    if let Err(e) = tls.read_to_end(&mut raw)
        && raw.is_empty()
    {
        return Err(e.to_string());
    }
    let suite = tls
        .conn
        .negotiated_cipher_suite()
        .map(|s| s.suite())
        .ok_or("no suite")?;
    let head = String::from_utf8_lossy(&raw);
    Ok((suite, head.lines().next().unwrap_or("").to_owned()))
}

const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS12, &rustls::version::TLS13];

#[test]
fn a_rotated_certificate_is_served_without_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_a, key_a) = self_signed();
    std::fs::write(dir.path().join("server.crt"), &cert_a).expect("write");
    std::fs::write(dir.path().join("server.key"), &key_a).expect("write");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .expect("write");
    let exporter = Exporter::start(
        "steps.json",
        &[
            "-c",
            "1000",
            "--web-config-file",
            web.to_str().expect("utf-8"),
        ],
    );
    handshake(exporter.addr, &cert_a, None, BOTH, None).expect("the first certificate");

    // Rotate as cert-manager does: new files written in place.
    let (cert_b, key_b) = self_signed();
    std::fs::write(dir.path().join("server.key"), &key_b).expect("write");
    std::fs::write(dir.path().join("server.crt"), &cert_b).expect("write");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if handshake(exporter.addr, &cert_b, None, BOTH, None).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served 15 s after rotation:\n{}",
            exporter.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        handshake(exporter.addr, &cert_a, None, BOTH, None).is_err(),
        "the old certificate is gone"
    );
    let log = exporter.log().join("\n");
    assert!(log.contains("TLS files changed"), "{log}");
    assert!(!log.contains("SIGHUP"), "no signal was needed: {log}");
}

#[test]
fn every_value_node_exporter_accepts_starts_and_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed();
    let (client_ca, _) = self_signed();
    std::fs::write(dir.path().join("server.crt"), &cert).expect("write");
    std::fs::write(dir.path().join("server.key"), &key).expect("write");
    std::fs::write(dir.path().join("clients.crt"), &client_ca).expect("write");
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let web = dir.path().join("web.yml");
    // rcgen's certificates are ECDSA P-256: the ECDSA suites apply.
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: clients.crt\n  \
             min_version: TLS10\n  max_version: TLS13\n  \
             cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n    \
             - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA\n  \
             curve_preferences: [CurveP521, X25519]\n  \
             prefer_server_cipher_suites: true\n\
             http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .expect("write");
    let exporter = Exporter::start(
        "steps.json",
        &[
            "-c",
            "1000",
            "--web-config-file",
            web.to_str().expect("utf-8"),
        ],
    );
    let web_name = web.display().to_string();
    for (key, needle) in [
        ("min_version", "serving TLS 1.2 and 1.3"),
        (
            "cipher_suites",
            "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA not available",
        ),
        ("curve_preferences", "CurveP521 not available"),
    ] {
        let line = exporter.wait_log(needle, Duration::from_secs(5));
        assert!(line.contains("WARN"), "{line}");
        assert!(
            line.contains(&format!("{web_name}:")),
            "file and line for {key}: {line}"
        );
        assert_eq!(
            exporter.log().iter().filter(|l| l.contains(needle)).count(),
            1,
            "one line"
        );
    }
    use rustls::CipherSuite as S;
    let tls12 = &[&rustls::version::TLS12][..];
    // The listed TLS 1.2 suite is served, one not listed is refused.
    let (suite, status) = handshake(
        exporter.addr,
        &cert,
        Some(&[S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]),
        tls12,
        None,
    )
    .expect("the listed suite");
    assert_eq!(suite, S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    assert!(status.contains("200"), "{status}");
    assert!(
        handshake(
            exporter.addr,
            &cert,
            Some(&[S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]),
            tls12,
            None
        )
        .is_err(),
        "a suite not listed"
    );
    // TLS 1.3 stays on; only X25519 is offered for key exchange.
    handshake(exporter.addr, &cert, None, &[&rustls::version::TLS13], None).expect("TLS 1.3");
    assert!(
        handshake(
            exporter.addr,
            &cert,
            None,
            BOTH,
            Some(&[rustls::NamedGroup::secp256r1])
        )
        .is_err(),
        "P-256 is not in curve_preferences"
    );
    let r = common::get_tls(exporter.addr, &cert, "/health", &[]);
    assert_eq!(r.header("x-frame-options"), Some("deny"));
}
