//! What the HTTP handlers serve: bodies encoded once per sample, on the
//! sampler thread, and published behind an [`ArcSwap`]. A scrape loads the
//! current [`Published`] and clones a [`Bytes`] — a refcount bump — so its cost
//! does not depend on the GPU count, and a hung NVML call never holds one up.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use algalon_core::{Encoder, Format, SampleProgress, Snapshot};
use arc_swap::ArcSwap;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::history::History;

/// gzip level of the pre-compressed bodies: level 6 is zlib's default and
/// costs well under a millisecond for an 8-GPU body, once per sample.
const GZIP_LEVEL: u32 = 6;

/// One encoded body and its gzip-compressed twin.
#[derive(Debug, Clone, Default)]
pub struct Body {
    /// Uncompressed.
    pub plain: Bytes,
    /// gzip-compressed.
    pub gzip: Bytes,
}

impl Body {
    fn new(text: String) -> Body {
        let plain = Bytes::from(text);
        let gzip = gzip(&plain);
        Body { plain, gzip }
    }
}

/// Everything the handlers serve from one snapshot.
#[derive(Debug, Clone)]
pub struct Published {
    /// The snapshot's sequence number (0: nothing sampled yet).
    pub seq: u64,
    /// When the sample finished and was published (monotonic clock).
    pub completed: Instant,
    /// GPUs in the snapshot.
    pub gpus: usize,
    /// GPUs marked down, with their reasons (`GPU 3: nvml… failed: …`).
    pub down: Vec<String>,
    /// Prometheus text format 0.0.4.
    pub text: Body,
    /// OpenMetrics 1.0.
    pub openmetrics: Body,
    /// The snapshot as JSON with the GPUs' recent history (`/api/v1/gpus`).
    pub json: Bytes,
    /// Where the sampler that took this snapshot is now, so a stale
    /// `/health` can name the GPU whose NVML call hangs.
    pub progress: Option<Arc<SampleProgress>>,
}

impl Published {
    /// Before the first sample.
    pub fn empty() -> Published {
        Published {
            seq: 0,
            completed: Instant::now(),
            gpus: 0,
            down: Vec::new(),
            text: Body::default(),
            openmetrics: Body::default(),
            json: Bytes::from_static(b"{}"),
            progress: None,
        }
    }

    /// Encodes `snapshot` in every form the handlers serve; `progress` is
    /// the sampler's that took it, `history` the page's recent readings.
    pub fn render(
        snapshot: &Arc<Snapshot>,
        encoder: &Encoder,
        progress: &Arc<SampleProgress>,
        history: &History,
    ) -> Published {
        let text = Body::new(encoder.encode(snapshot, Format::PrometheusText));
        let openmetrics = Body::new(encoder.encode(snapshot, Format::OpenMetrics));
        let json = match history.page_data(snapshot) {
            Ok(v) => Bytes::from(v),
            Err(e) => {
                tracing::error!("cannot serialise the snapshot as JSON: {e}");
                Bytes::from_static(b"{}")
            }
        };
        let down = snapshot
            .gpus
            .iter()
            .filter(|g| !g.up)
            .map(|g| match &g.down_reason {
                Some(reason) => format!("GPU {}: {}", g.index, crate::api::down_text(reason)),
                None => format!("GPU {}: down", g.index),
            })
            .collect();
        Published {
            seq: snapshot.seq,
            completed: Instant::now(),
            gpus: snapshot.gpus.len(),
            down,
            text,
            openmetrics,
            json,
            progress: Some(Arc::clone(progress)),
        }
    }

    /// The body for a scrape.
    pub fn metrics(&self, format: Format, gzip: bool) -> &Bytes {
        let body = match format {
            Format::PrometheusText => &self.text,
            Format::OpenMetrics => &self.openmetrics,
        };
        if gzip { &body.gzip } else { &body.plain }
    }

    /// `Ok(message)` while healthy, `Err(reason)` when /health must say 503.
    pub fn health(&self, now: Instant, stale_after: Duration) -> Result<String, String> {
        if self.seq == 0 {
            return Err("no sample taken yet".to_owned());
        }
        let age = now.saturating_duration_since(self.completed);
        if age > stale_after {
            let at = match self.progress.as_ref().and_then(|p| p.current_gpu()) {
                Some(gpu) => format!(" in a call on GPU {gpu}"),
                None => String::new(),
            };
            return Err(format!(
                "stale: the last sample finished {:.1} s ago (limit {:.1} s); NVML may be hung{at}",
                age.as_secs_f64(),
                stale_after.as_secs_f64()
            ));
        }
        if self.gpus == 0 {
            return Err("no GPUs are being sampled".to_owned());
        }
        if self.down.len() == self.gpus {
            return Err(format!("every GPU is down: {}", self.down.join("; ")));
        }
        let mut msg = format!(
            "ok: {} of {} up, last sample {:.1} s ago",
            self.gpus - self.down.len(),
            crate::app::count(self.gpus, "GPU", "GPUs"),
            age.as_secs_f64()
        );
        if !self.down.is_empty() {
            msg.push_str(&format!(" (down: {})", self.down.join("; ")));
        }
        Ok(msg)
    }
}

/// The published bodies, shared by the sampler thread and the handlers.
pub type Shared = Arc<ArcSwap<Published>>;

/// A new, empty slot.
pub fn shared() -> Shared {
    Arc::new(ArcSwap::from_pointee(Published::empty()))
}

fn gzip(data: &[u8]) -> Bytes {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        Compression::new(GZIP_LEVEL),
    );
    // Writing into a Vec cannot fail.
    match enc.write_all(data).and_then(|()| enc.finish()) {
        Ok(v) => Bytes::from(v),
        Err(e) => {
            tracing::error!("gzip failed: {e}");
            Bytes::new()
        }
    }
}

/// Whether an `Accept-Encoding` header allows gzip (`gzip`, `x-gzip` or `*`
/// with a non-zero q-value).
pub fn accepts_gzip(header: Option<&str>) -> bool {
    let Some(header) = header else { return false };
    let mut star: Option<bool> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q_ok = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| v.trim().to_owned())
            })
            .next()
            .map(|q| q.parse::<f32>().map(|q| q > 0.0).unwrap_or(false))
            .unwrap_or(true);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return q_ok;
        }
        if coding == "*" {
            star = Some(q_ok);
        }
    }
    star.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("br, *")));
        assert!(accepts_gzip(Some("x-gzip")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("gzip;q=0, *")));
        assert!(!accepts_gzip(Some("*;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read as _;
        let body = Body::new("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 85\n".repeat(100));
        assert!(body.gzip.len() < body.plain.len());
        let mut out = String::new();
        flate2::read::GzDecoder::new(&body.gzip[..])
            .read_to_string(&mut out)
            .expect("valid gzip");
        assert_eq!(out.as_bytes(), &body.plain[..]);
    }

    #[test]
    fn health_before_first_sample_and_when_stale() {
        let mut p = Published::empty();
        assert!(p.health(Instant::now(), Duration::from_secs(10)).is_err());
        p.seq = 1;
        p.gpus = 1;
        let one = p.health(Instant::now(), Duration::from_secs(10));
        assert!(
            one.as_ref()
                .is_ok_and(|m| m.starts_with("ok: 1 of 1 GPU up")),
            "{one:?}"
        );
        p.gpus = 2;
        assert!(p.health(Instant::now(), Duration::from_secs(10)).is_ok());
        let later = Instant::now() + Duration::from_secs(11);
        let err = p.health(later, Duration::from_secs(10)).expect_err("stale");
        assert!(err.starts_with("stale"), "{err}");
        p.down = vec!["GPU 0: lost".into()];
        assert!(p.health(Instant::now(), Duration::from_secs(10)).is_ok());
        p.down.push("GPU 1: lost".into());
        let err = p
            .health(Instant::now(), Duration::from_secs(10))
            .expect_err("all down");
        assert!(err.contains("every GPU is down"), "{err}");
    }
}
