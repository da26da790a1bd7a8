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
//!
//! Every value node_exporter's toolkit accepts is accepted. Where rustls
//! cannot do what Go does, the closest safe thing is served and a one-line
//! warning says so ([`WebConfig::warnings`]): `min_version: TLS10`/`TLS11`
//! serve TLS 1.2 and 1.3 (rustls has no TLS 1.0/1.1); cipher suites and
//! curves rustls lacks (CBC suites, P-521) are left out of the lists given.
//! The certificate, key and client CA files are watched
//! ([`WebConfig::watched`]): when one changes the config is reloaded without
//! a SIGHUP, as the toolkit re-reads them on each new connection, so a
//! rotated certificate is served at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde::Deserialize;

use crate::auth::BasicAuth;

mod tls;
use crate::error::StartError;
use tls::build_tls;

/// A loaded and checked web config.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// TLS, when `tls_server_config` is set.
    pub tls: Option<Arc<ServerConfig>>,
    /// Basic auth, when `basic_auth_users` is set and not empty.
    pub auth: Option<Arc<BasicAuth>>,
    /// Extra response headers (`http_server_config.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Values accepted but served differently than Go would, one line each.
    pub warnings: Vec<String>,
    /// The certificate, key and client CA files the TLS config was read
    /// from: a change to any of them reloads the web config.
    pub watched: Vec<PathBuf>,
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

        let mut warnings = Vec::new();
        let mut watched = Vec::new();
        let tls = match &file.tls_server_config {
            Some(t) => {
                for f in [&t.cert_file, &t.key_file, &t.client_ca_file]
                    .into_iter()
                    .flatten()
                    .filter(|f| !f.is_empty())
                {
                    watched.push(dir.join(f));
                }
                Some(Arc::new(build_tls(t, &dir, &err, &mut warnings)?))
            }
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

        let at = |key: &str| match line_of(text, key) {
            Some(line) => format!("{}:{line}: ", path.display()),
            None => format!("{}: ", path.display()),
        };
        let warnings = warnings
            .into_iter()
            .map(|(key, msg): (&str, String)| format!("{}{msg}", at(key)))
            .collect();
        Ok(WebConfig {
            tls,
            auth,
            headers,
            warnings,
            watched,
        })
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
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
    fn every_client_auth_type_and_toolkit_key_is_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let clients =
            rcgen::generate_simple_self_signed(vec!["client".to_owned()]).expect("certificate");
        std::fs::write(dir.path().join("s.crt"), server.cert.pem()).expect("write");
        std::fs::write(dir.path().join("s.key"), server.signing_key.serialize_pem())
            .expect("write");
        std::fs::write(dir.path().join("ca.crt"), clients.cert.pem()).expect("write");
        let web = dir.path().join("web.yml");
        for kind in [
            "NoClientCert",
            "RequestClientCert",
            "RequireAnyClientCert",
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ] {
            let ca = if kind == "NoClientCert" {
                ""
            } else {
                "  client_ca_file: ca.crt\n"
            };
            let text = format!(
                "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  \
                 client_auth_type: {kind}\n{ca}  min_version: TLS11\n  max_version: TLS12\n  \
                 prefer_server_cipher_suites: false\n  cipher_suites: []\n  \
                 curve_preferences: [CurveP256, CurveP384, CurveP521, X25519]\n\
                 http_server_config:\n  http2: false\n  headers:\n    \
                 Strict-Transport-Security: max-age=31536000\n"
            );
            let config = WebConfig::parse(&text, &web).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(config.tls.is_some(), "{kind}");
            assert_eq!(config.warnings.len(), 2, "{kind}: {:?}", config.warnings);
            assert!(
                config.warnings[0].starts_with(&format!("{}:", web.display())),
                "{:?}",
                config.warnings
            );
            let watched = if ca.is_empty() { 2 } else { 3 };
            assert_eq!(config.watched.len(), watched, "{kind}");
        }
    }
}
