//! `--healthcheck URL`: a tiny HTTP(S) GET for container HEALTHCHECKs in
//! images that have no curl. Exit 0 on 200, 1 otherwise. The certificate is
//! not verified: the check talks to the exporter in the same container.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

const TIMEOUT: Duration = Duration::from_secs(5);

/// The /health URL of an exporter started with the same `--address` and
/// `--web-config-file` (or their `ALGALON_*` variables): what
/// `--healthcheck auto` checks. Wildcard addresses become loopback.
pub fn auto_url(address: &str, web_config: Option<&Path>) -> String {
    let tls = web_config.is_some_and(|p| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|text| serde_norway::from_str::<serde_norway::Value>(&text).ok())
            .is_some_and(|v| v.get("tls_server_config").is_some_and(|t| !t.is_null()))
    });
    let scheme = if tls { "https" } else { "http" };
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => ("", address),
    };
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" => "[::1]",
        h => h,
    };
    format!("{scheme}://{host}:{port}/health")
}

/// Runs the check; returns whether the URL answered 200.
pub fn run(url: &str) -> bool {
    match get(url) {
        Ok((status, line)) => {
            println!("{url}: {line}");
            status == 200
        }
        Err(e) => {
            eprintln!("algalon-exporter: healthcheck {url}: {e}");
            false
        }
    }
}

fn get(url: &str) -> Result<(u16, String), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err("the URL must start with http:// or https://".into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else if tls {
        format!("{authority}:443")
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {with_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{with_port} resolves to no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: algalon-exporter-healthcheck\r\nConnection: close\r\n\r\n"
    );
    let mut response = Vec::new();
    if tls {
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name =
            ServerName::try_from(host.to_owned()).map_err(|e| format!("server name: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth();
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("TLS: {e}"))?;
        // A peer that closes without close_notify still gave us the head.
        let _ = stream.read_to_end(&mut response);
    } else {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let _ = tcp.read_to_end(&mut response);
    }
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().ok_or("empty response")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    let first = body.lines().next().unwrap_or("");
    Ok((status, format!("{status} {first}")))
}

/// Accepts any server certificate (the check targets the local exporter).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_url_targets_loopback() {
        assert_eq!(auto_url(":9400", None), "http://127.0.0.1:9400/health");
        assert_eq!(
            auto_url("0.0.0.0:9500", None),
            "http://127.0.0.1:9500/health"
        );
        assert_eq!(auto_url("[::]:9400", None), "http://[::1]:9400/health");
        assert_eq!(
            auto_url("10.1.2.3:9400", None),
            "http://10.1.2.3:9400/health"
        );
        let dir = std::env::temp_dir().join(format!("algalon-hc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let web = dir.join("web.yml");
        std::fs::write(&web, "tls_server_config:\n  cert_file: a\n  key_file: b\n").expect("write");
        assert_eq!(
            auto_url(":9400", Some(&web)),
            "https://127.0.0.1:9400/health"
        );
        std::fs::write(&web, "basic_auth_users:\n  a: b\n").expect("write");
        assert_eq!(
            auto_url(":9400", Some(&web)),
            "http://127.0.0.1:9400/health"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
