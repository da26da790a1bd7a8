//! Pod metadata (UID, labels) from the Kubernetes API server, with the
//! pod's in-cluster service-account credentials, as client-go's
//! `rest.InClusterConfig` reads them: `KUBERNETES_SERVICE_HOST` and
//! `KUBERNETES_SERVICE_PORT`, the bearer token and CA certificate under
//! `/var/run/secrets/kubernetes.io/serviceaccount/`.
//!
//! One `GET /api/v1/namespaces/{namespace}/pods/{name}` per pod (RBAC:
//! `get` on `pods`; nothing else), over HTTPS that trusts only the
//! cluster's CA. The token file is re-read every minute, as client-go does,
//! because projected service-account tokens are rotated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::{Request, StatusCode, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::Error;

/// Where Kubernetes mounts a pod's service-account token and CA.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How often the token file is re-read (client-go: one minute).
const TOKEN_REREAD: Duration = Duration::from_secs(60);
/// Largest pod object accepted.
const MAX_POD_BYTES: usize = 4 * 1024 * 1024;

/// Where the API server is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InCluster {
    /// `https://HOST:PORT`.
    pub base_url: String,
    /// The bearer token file.
    pub token_file: PathBuf,
    /// The CA bundle that signed the API server's certificate.
    pub ca_file: PathBuf,
}

impl InCluster {
    /// From this pod's environment and service-account mount.
    pub fn from_env() -> Result<InCluster, Error> {
        InCluster::from_parts(
            |name| std::env::var(name).ok(),
            Path::new(SERVICE_ACCOUNT_DIR),
        )
    }

    /// From variables read by `var` and a service-account directory
    /// holding `token` and `ca.crt`.
    pub fn from_parts(
        var: impl Fn(&str) -> Option<String>,
        service_account_dir: &Path,
    ) -> Result<InCluster, Error> {
        let get = |variable: &'static str| {
            var(variable)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| Error::InClusterEnv {
                    variable,
                    problem: "not set".into(),
                })
        };
        let host = get("KUBERNETES_SERVICE_HOST")?;
        let port = get("KUBERNETES_SERVICE_PORT")?;
        let port: u16 = port.trim().parse().map_err(|_| Error::InClusterEnv {
            variable: "KUBERNETES_SERVICE_PORT",
            problem: format!("{port:?}, not a port number"),
        })?;
        let host = host.trim();
        let base_url = if host.contains(':') {
            format!("https://[{host}]:{port}")
        } else {
            format!("https://{host}:{port}")
        };
        Ok(InCluster {
            base_url,
            token_file: service_account_dir.join("token"),
            ca_file: service_account_dir.join("ca.crt"),
        })
    }
}

/// A pod as the API server describes it (the parts Algalon uses).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct PodObject {
    /// `metadata`.
    pub metadata: PodObjectMeta,
}

/// `metadata` of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
pub struct PodObjectMeta {
    /// `metadata.uid`.
    #[serde(default)]
    pub uid: Option<String>,
    /// `metadata.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Why a pod's metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The pod does not exist (any more).
    #[error("pod not found")]
    NotFound,
    /// The token was rejected (401).
    #[error("the API server rejected the service-account token (401): {0}")]
    Unauthorized(String),
    /// The service account may not get pods (403).
    #[error(
        "the service account may not get pods (403): {0}; grant `get` on `pods` \
         (deploy/kubernetes/overlays/pod-labels/rbac.yaml)"
    )]
    Forbidden(String),
    /// No answer within the deadline.
    #[error("no answer within {:.1} s", .0.as_secs_f64())]
    TimedOut(Duration),
    /// Anything else: connection, TLS, status, body.
    #[error("{0}")]
    Other(String),
}

/// A client for pod objects.
#[derive(Debug, Clone)]
pub struct ApiServer {
    base_url: String,
    token: Arc<TokenFile>,
    timeout: Duration,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

#[derive(Debug)]
struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(Instant, Arc<str>)>>,
}

impl TokenFile {
    fn read(&self) -> Result<Arc<str>, ApiError> {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, token)) = cached.as_ref()
            && at.elapsed() < TOKEN_REREAD
        {
            return Ok(Arc::clone(token));
        }
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                let token: Arc<str> = Arc::from(text.trim());
                *cached = Some((Instant::now(), Arc::clone(&token)));
                Ok(token)
            }
            // A rotation in progress: keep using the last token a while.
            Err(_) if cached.is_some() => Ok(cached
                .as_ref()
                .map(|(_, t)| Arc::clone(t))
                .unwrap_or_else(|| Arc::from(""))),
            Err(e) => Err(ApiError::Other(format!(
                "cannot read the service-account token {}: {e}",
                self.path.display()
            ))),
        }
    }
}

impl ApiServer {
    /// A client for `config`; each request gives up after `timeout`. Reads
    /// the CA bundle and the token once now, so a missing mount is an
    /// error at start-up.
    pub fn new(config: &InCluster, timeout: Duration) -> Result<ApiServer, Error> {
        let ca_error = |reason: String| Error::ServiceAccount {
            path: config.ca_file.clone(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&config.ca_file)
            .map_err(|e| ca_error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ca_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let token = Arc::new(TokenFile {
            path: config.token_file.clone(),
            cached: Mutex::new(None),
        });
        token.read().map_err(|e| Error::ServiceAccount {
            path: config.token_file.clone(),
            reason: e.to_string(),
        })?;
        Ok(ApiServer {
            base_url: config.base_url.clone(),
            token,
            timeout,
            client,
        })
    }

    /// The pod `namespace/name`.
    pub async fn pod(&self, namespace: &str, name: &str) -> Result<PodObject, ApiError> {
        for (what, value) in [("namespace", namespace), ("pod name", name)] {
            // DNS labels and subdomains: nothing that could change the path.
            let valid = !value.is_empty()
                && value.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid {
                return Err(ApiError::Other(format!("invalid {what} {value:?}")));
            }
        }
        let token = self.token.read()?;
        let uri = format!(
            "{}/api/v1/namespaces/{namespace}/pods/{name}",
            self.base_url
        );
        let request = Request::get(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("algalon/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| ApiError::Other(format!("GET {uri}: {e}")))?;
        let work = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ApiError::Other(format!("GET {uri}: {}", error_chain(&e))))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_POD_BYTES)
                .collect()
                .await
                .map_err(|e| ApiError::Other(format!("GET {uri}: reading the body: {e}")))?
                .to_bytes();
            Ok::<_, ApiError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ApiError::TimedOut(self.timeout))??;
        let reason = || {
            // A Kubernetes Status object says why; fall back to the code.
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| status.to_string())
        };
        match status {
            StatusCode::OK => serde_json::from_slice(&body)
                .map_err(|e| ApiError::Other(format!("GET {uri}: not a pod object: {e}"))),
            StatusCode::NOT_FOUND => Err(ApiError::NotFound),
            StatusCode::UNAUTHORIZED => Err(ApiError::Unauthorized(reason())),
            StatusCode::FORBIDDEN => Err(ApiError::Forbidden(reason())),
            _ => Err(ApiError::Other(format!(
                "GET {uri}: {status}: {}",
                reason()
            ))),
        }
    }
}

/// An error and its sources on one line: hyper's top-level message alone
/// ("client error (Connect)") does not say what went wrong.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_environment() {
        let dir = Path::new("/sa");
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = InCluster::from_parts(
            env(&[
                ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                ("KUBERNETES_SERVICE_PORT", "443"),
            ]),
            dir,
        )
        .expect("valid");
        assert_eq!(c.base_url, "https://10.96.0.1:443");
        assert_eq!(c.token_file, Path::new("/sa/token"));
        assert_eq!(c.ca_file, Path::new("/sa/ca.crt"));
        let v6 = InCluster::from_parts(
            env(&[
                ("KUBERNETES_SERVICE_HOST", "fd00::1"),
                ("KUBERNETES_SERVICE_PORT", "6443"),
            ]),
            dir,
        )
        .expect("valid");
        assert_eq!(v6.base_url, "https://[fd00::1]:6443");
        let missing = InCluster::from_parts(env(&[("KUBERNETES_SERVICE_PORT", "443")]), dir)
            .expect_err("no host");
        assert!(
            missing
                .to_string()
                .contains("KUBERNETES_SERVICE_HOST is not set"),
            "{missing}"
        );
        let bad = InCluster::from_parts(
            env(&[
                ("KUBERNETES_SERVICE_HOST", "h"),
                ("KUBERNETES_SERVICE_PORT", "https"),
            ]),
            dir,
        )
        .expect_err("bad port");
        assert!(bad.to_string().contains("not a port number"), "{bad}");
    }

    #[test]
    fn missing_service_account_is_one_clear_error() {
        let tmp = tempfile::tempdir().expect("tmp");
        let config = InCluster {
            base_url: "https://127.0.0.1:1".into(),
            token_file: tmp.path().join("token"),
            ca_file: tmp.path().join("ca.crt"),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let err = ApiServer::new(&config, Duration::from_secs(1)).expect_err("no CA");
        let msg = err.to_string();
        assert!(msg.contains("ca.crt"), "{msg}");
        assert!(msg.contains("automountServiceAccountToken"), "{msg}");
    }

    #[test]
    fn pod_object_parsing() {
        let pod: PodObject = serde_json::from_str(
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"a","namespace":"b",
                "uid":"1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
                "labels":{"app":"x","team":"y"}},"spec":{"nodeName":"n"}}"#,
        )
        .expect("pod");
        assert_eq!(
            pod.metadata.uid.as_deref(),
            Some("1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(pod.metadata.labels.len(), 2);
        let bare: PodObject = serde_json::from_str(r#"{"metadata":{}}"#).expect("bare");
        assert!(bare.metadata.labels.is_empty() && bare.metadata.uid.is_none());
    }
}
