//! Prometheus exporter-toolkit web config (`--web-config-file`): TLS with
//! rustls and HTTP basic auth with bcrypt hashes, in the toolkit's YAML.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative to this file's directory
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: clients-ca.crt                 # optional
//!   min_version: TLS12                             # optional
//! basic_auth_users:
//!   prometheus: $2y$10$…                           # bcrypt hash
//! ```
//!
//! Like the toolkit, unknown keys are errors. Everything is checked when the
//! file is loaded — readable PEM, a key that matches the certificate, valid
//! bcrypt hashes — so a mistake is reported at start-up or reload, not on the
//! first connection.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use serde::Deserialize;

use crate::auth::BasicAuth;
use crate::error::StartError;

/// A loaded and checked web config.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// TLS, when `tls_server_config` is set.
    pub tls: Option<Arc<ServerConfig>>,
    /// Basic auth, when `basic_auth_users` is set and not empty.
    pub auth: Option<Arc<BasicAuth>>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<String>,
    key_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_ca: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// Where a key appears in the YAML text (1-based line), for messages.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let needle = format!("{key}:");
    text.lines()
        .position(|l| {
            l.trim_start()
                .trim_start_matches(['"', '\''])
                .starts_with(&needle)
        })
        .map(|i| i + 1)
}

impl WebConfig {
    /// Reads, parses and checks a web config file.
    pub fn load(path: &Path) -> Result<WebConfig, StartError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartError::web(path, None, format!("cannot read: {e}")))?;
        Self::parse(&text, path)
    }

    /// Parses and checks web config `text`; `path` names the file and is the
    /// base for relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<WebConfig, StartError> {
        let file: FileConfig = match serde_norway::from_str::<Option<FileConfig>>(text) {
            Ok(f) => f.unwrap_or_default(),
            Err(e) => {
                let line = e.location().map(|l| l.line());
                let msg = e.to_string();
                // serde_norway appends " at line L column C"; the line is in
                // the prefix already.
                let msg = match msg.rfind(" at line ") {
                    Some(i) if line.is_some() => msg[..i].to_owned(),
                    _ => msg,
                };
                return Err(StartError::web(path, line, msg));
            }
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let err = |key: &str, msg: String| StartError::web(path, line_of(text, key), msg);

        let tls = match &file.tls_server_config {
            Some(t) => Some(Arc::new(build_tls(t, &dir, &err)?)),
            None => None,
        };

        let auth = match &file.basic_auth_users {
            Some(users) if !users.is_empty() => {
                Some(Arc::new(BasicAuth::new(users).map_err(|(user, msg)| {
                    err(&user, format!("basic_auth_users.{user}: {msg}"))
                })?))
            }
            _ => None,
        };

        let mut headers = Vec::new();
        if let Some(http) = &file.http_server_config {
            if http.http2 == Some(true) {
                tracing::debug!("http_server_config.http2: this exporter serves HTTP/1.1 only");
            }
            for (name, value) in http.headers.iter().flatten() {
                let n = HeaderName::try_from(name.as_str())
                    .map_err(|e| err(name, format!("http_server_config.headers: {name:?}: {e}")))?;
                let v = HeaderValue::try_from(value.as_str())
                    .map_err(|e| err(name, format!("http_server_config.headers.{name}: {e}")))?;
                headers.push((n, v));
            }
        }

        Ok(WebConfig { tls, auth, headers })
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM input given inline or as a file (relative to `dir`).
fn pem_input(
    inline: Option<&String>,
    file: Option<&String>,
    dir: &Path,
    key: &str,
) -> Result<Option<(Vec<u8>, String)>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: both {key} and {key}_file are set; use one"
        )),
        (Some(text), None) => Ok(Some((
            text.as_bytes().to_vec(),
            format!("tls_server_config.{key}"),
        ))),
        (None, Some(f)) if !f.is_empty() => {
            let p = dir.join(f);
            std::fs::read(&p)
                .map(|bytes| Some((bytes, p.display().to_string())))
                .map_err(|e| {
                    format!(
                        "tls_server_config.{key}_file {}: cannot read: {e}",
                        p.display()
                    )
                })
        }
        _ => Ok(None),
    }
}

fn build_tls(
    t: &TlsFile,
    dir: &Path,
    err: &dyn Fn(&str, String) -> StartError,
) -> Result<ServerConfig, StartError> {
    let (cert_pem, cert_src) = pem_input(t.cert.as_ref(), t.cert_file.as_ref(), dir, "cert")
        .map_err(|m| err("cert_file", m))?
        .ok_or_else(|| {
            err(
                "tls_server_config",
                "tls_server_config: cert_file is required".into(),
            )
        })?;
    let (key_pem, key_src) = pem_input(t.key.as_ref(), t.key_file.as_ref(), dir, "key")
        .map_err(|m| err("key_file", m))?
        .ok_or_else(|| {
            err(
                "tls_server_config",
                "tls_server_config: key_file is required".into(),
            )
        })?;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            err(
                "cert_file",
                format!("{cert_src}: not a PEM certificate chain: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(err(
            "cert_file",
            format!("{cert_src}: no PEM certificate found"),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        err(
            "key_file",
            format!("{key_src}: no usable PEM private key: {e}"),
        )
    })?;

    for (name, value) in [
        ("cipher_suites", t.cipher_suites.as_ref()),
        ("curve_preferences", t.curve_preferences.as_ref()),
        ("client_allowed_sans", t.client_allowed_sans.as_ref()),
    ] {
        if value.is_some_and(|v| !v.is_empty()) {
            return Err(err(
                name,
                format!(
                    "tls_server_config.{name} is not supported by algalon-exporter (rustls offers \
                     only modern suites and groups); remove it"
                ),
            ));
        }
    }

    let versions = versions(t.min_version.as_deref(), t.max_version.as_deref())
        .map_err(|m| err("min_version", m))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| err("min_version", format!("tls_server_config: {e}")))?;

    let verifier = client_verifier(t, dir).map_err(|m| err("client_auth_type", m))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        let detail = match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not match the certificate".to_owned()
            }
            other => other.to_string(),
        };
        err(
            "key_file",
            format!("tls_server_config: {key_src} and {cert_src}: {detail}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(false);
    Ok(config)
}

fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    fn rank(v: &str, key: &str) -> Result<u8, String> {
        match v {
            "TLS12" => Ok(2),
            "TLS13" => Ok(3),
            "TLS10" | "TLS11" => Err(format!(
                "tls_server_config.{key}: {v} is not supported (insecure); use TLS12 or TLS13"
            )),
            other => Err(format!(
                "tls_server_config.{key}: unknown TLS version {other:?}; use TLS12 or TLS13"
            )),
        }
    }
    let lo = min
        .map(|v| rank(v, "min_version"))
        .transpose()?
        .unwrap_or(2);
    let hi = max
        .map(|v| rank(v, "max_version"))
        .transpose()?
        .unwrap_or(3);
    if lo > hi {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let mut out = Vec::new();
    if lo <= 2 && 2 <= hi {
        out.push(&rustls::version::TLS12);
    }
    if lo <= 3 && 3 <= hi {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

fn client_verifier(t: &TlsFile, dir: &Path) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let kind = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let ca = pem_input(
        t.client_ca.as_ref(),
        t.client_ca_file.as_ref(),
        dir,
        "client_ca",
    )?;
    let roots = |ca: Option<(Vec<u8>, String)>| -> Result<Arc<RootCertStore>, String> {
        let (pem, src) = ca.ok_or_else(|| {
            format!("tls_server_config.client_auth_type {kind} needs client_ca_file")
        })?;
        let mut store = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{src}: not a PEM certificate: {e}"))?;
            store
                .add(cert)
                .map_err(|e| format!("{src}: unusable CA certificate: {e}"))?;
        }
        if store.is_empty() {
            return Err(format!("{src}: no PEM certificate found"));
        }
        Ok(Arc::new(store))
    };
    let webpki = |ca, optional: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
        let builder = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
    };
    match kind {
        "" | "NoClientCert" => {
            if ca.is_some() {
                return Err(
                    "tls_server_config: client_ca_file is set but client_auth_type is \
                     NoClientCert; set client_auth_type to RequireAndVerifyClientCert"
                        .into(),
                );
            }
            Ok(None)
        }
        "RequestClientCert" => Ok(Some(Arc::new(AnyClientCert::new(false)))),
        "RequireAnyClientCert" => Ok(Some(Arc::new(AnyClientCert::new(true)))),
        "VerifyClientCertIfGiven" => webpki(ca, true).map(Some),
        "RequireAndVerifyClientCert" => webpki(ca, false).map(Some),
        other => Err(format!(
            "tls_server_config.client_auth_type: unknown value {other:?}; use NoClientCert, \
             RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or \
             RequireAndVerifyClientCert"
        )),
    }
}

/// `RequestClientCert` / `RequireAnyClientCert`: asks for a client
/// certificate and checks the handshake signature, but not the chain (Go's
/// semantics for these two modes).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl AnyClientCert {
    fn new(mandatory: bool) -> Self {
        AnyClientCert {
            mandatory,
            provider: provider(),
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, String> {
        WebConfig::parse(text, Path::new("/nonexistent/web.yml")).map_err(|e| e.one_line())
    }

    #[test]
    fn empty_file_is_plain_http() {
        let c = parse("").expect("empty is valid");
        assert!(c.tls.is_none() && c.auth.is_none());
        let c = parse("# nothing\n").expect("comments only");
        assert!(c.tls.is_none());
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let e =
            parse("basic_auth_users: {}\ntls_server_confg:\n  cert_file: a\n").expect_err("typo");
        assert!(e.starts_with("web config /nonexistent/web.yml:2:"), "{e}");
        assert!(e.contains("tls_server_confg"), "{e}");
    }

    #[test]
    fn bad_hash_is_rejected() {
        let e = parse("basic_auth_users:\n  alice: plaintext\n").expect_err("not bcrypt");
        assert!(e.contains(":2: basic_auth_users.alice"), "{e}");
    }

    #[test]
    fn missing_cert_file_is_reported() {
        let e = parse("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n")
            .expect_err("missing files");
        assert!(e.contains("/nonexistent/nope.crt"), "{e}");
        assert!(e.contains(":2:"), "{e}");
    }

    #[test]
    fn versions_range() {
        assert_eq!(versions(None, None).expect("default").len(), 2);
        assert_eq!(versions(Some("TLS13"), None).expect("1.3 only").len(), 1);
        assert!(versions(Some("TLS10"), None).is_err());
        assert!(versions(Some("TLS13"), Some("TLS12")).is_err());
    }
}
