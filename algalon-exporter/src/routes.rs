//! The HTTP routes: `/metrics`, `/health`, `/api/v1/gpus` and the page at
//! `/`, behind a guard that applies basic auth, the request timeout and the
//! web config's extra headers. Connections, TLS and their limits are
//! [`crate::connections`]' concern.
//!
//! Handlers never call NVML. The GPU part of `/metrics` is encoded (and
//! compressed) once per sample; a scrape adds only the exporter's own
//! series, a few kilobytes encoded on the spot ([`crate::telemetry`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use algalon_core::Format;
use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::Verdict;
use crate::state::{Shared, accepts_gzip};
use crate::telemetry::Telemetry;
use crate::webconfig::WebConfig;

/// Longest a request may take once read (only basic auth can wait).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The page at `/`.
const INDEX_HTML: &str = include_str!("index.html");

/// What the handlers read.
#[derive(Debug)]
pub struct AppState {
    /// Pre-encoded bodies, replaced after every sample.
    pub published: Shared,
    /// Current web config (TLS, basic auth, extra headers).
    pub web: Arc<ArcSwap<WebConfig>>,
    /// /health turns 503 when the last sample is older than this.
    pub stale_after: Duration,
    /// The exporter's own counters, served at the end of /metrics.
    pub telemetry: Arc<Telemetry>,
    /// The sampler and its collectors config, for /api/v1/fields.
    pub sampling: Arc<crate::sampling::Sampling>,
    /// `--kubernetes`: the pod mapping's state, for
    /// `algalon_kubernetes_up` and `/health`.
    pub kubernetes: Option<Arc<crate::kubernetes::PodLabels>>,
}

/// The routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/api/v1/gpus", get(gpus))
        .route("/api/v1/fields", get(fields))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// Basic auth (all paths but /health), the request timeout and the web
/// config's extra headers.
async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let web = state.web.load_full();
    let handler = Telemetry::handler(req.uri().path());
    let work = async {
        if req.uri().path() != "/health"
            && let Some(auth) = &web.auth
        {
            let header = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
            match auth.check(header).await {
                Verdict::Allowed => {}
                Verdict::Denied => {
                    state.telemetry.auth_failure();
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(
                            WWW_AUTHENTICATE,
                            HeaderValue::from_static(
                                "Basic realm=\"algalon-exporter\", charset=\"UTF-8\"",
                            ),
                        )],
                        "Unauthorized\n",
                    )
                        .into_response();
                }
                Verdict::Busy => {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(
                            axum::http::header::RETRY_AFTER,
                            HeaderValue::from_static("1"),
                        )],
                        "too many password checks in progress; retry shortly\n",
                    )
                        .into_response();
                }
            }
        }
        next.run(req).await
    };
    let mut response = match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
    };
    for (name, value) in &web.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    state.telemetry.request(handler, response.status().as_u16());
    response
}

async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    let gzip = accepts_gzip(headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()));
    let mut tail = state.telemetry.encode(format);
    if let Some(k8s) = &state.kubernetes {
        tail.insert_str(0, &crate::kubernetes::up_series(k8s.status().0));
    }
    let body = state
        .published
        .load()
        .metrics(format, gzip, tail.as_bytes());
    let mut response = Response::new(Body::new(Chunks(body)));
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    if gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// A `/metrics` body of chunks sent in order: the published GPU part is a
/// refcount of the sampler's bytes, never copied per scrape. Its exact
/// length is known, so the response carries `Content-Length`.
struct Chunks([bytes::Bytes; 2]);

impl hyper::body::Body for Chunks {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let next = self
            .get_mut()
            .0
            .iter_mut()
            .find(|chunk| !chunk.is_empty())
            .map(std::mem::take);
        std::task::Poll::Ready(next.map(|chunk| Ok(hyper::body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.iter().all(bytes::Bytes::is_empty)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.iter().map(|c| c.len() as u64).sum())
    }
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let published = state.published.load();
    let (status, mut text) = match published.health(Instant::now(), state.stale_after) {
        Ok(msg) => (StatusCode::OK, msg),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
    };
    // The GPU series keep coming without pod labels while the kubelet is
    // down: /health says so but stays 200.
    if let Some(k8s) = &state.kubernetes {
        text.push('\n');
        text.push_str(&k8s.status().1);
    }
    (
        status,
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        format!("{text}\n"),
    )
        .into_response()
}

async fn gpus(State(state): State<Arc<AppState>>) -> Response {
    let body = state.published.load().json.clone();
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

async fn fields(State(state): State<Arc<AppState>>) -> Response {
    let body = state.sampling.fields_json();
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     connect-src 'self'; img-src 'self' data:",
                ),
            ),
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: try /metrics, /health, /api/v1/gpus, /api/v1/fields or /\n",
    )
        .into_response()
}
