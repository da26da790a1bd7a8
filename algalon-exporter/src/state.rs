//! What the HTTP handlers serve: bodies encoded once per sample, on the
//! sampler thread, and published behind an [`ArcSwap`]. A scrape loads the
//! current [`Published`] and clones a [`Bytes`] — a refcount bump — so its cost
//! does not depend on the GPU count (beyond copying the body), and a hung
//! NVML call never holds one up.
//!
//! `/metrics` ends with the exporter's own series (requests, process), a few
//! hundred bytes encoded per scrape ([`crate::telemetry`]). The GPU part is
//! compressed once per sample and left open (a full flush, no final block),
//! so a scrape that accepts gzip only compresses its own short tail and
//! closes the one gzip member ([`Body::chunks_with_tail`]): no per-scrape
//! compression of the GPU part, and one member that every client reads.
//! The GPU part goes out as its own chunk, a refcount of the published
//! bytes: a scrape allocates only its tail, not a copy of the whole body
//! (a ~45 KB copy per 8-GPU scrape saved; peak memory did not move, as a
//! copy lived only until its response was in the socket — BENCHMARKS.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use algalon_core::{Encoder, Extras, Format, SampleProgress, Snapshot};
use arc_swap::ArcSwap;
use bytes::{BufMut as _, Bytes, BytesMut};
use flate2::{Compress, Compression, Crc, FlushCompress};

use crate::history::History;

/// gzip level of the pre-compressed bodies: level 6 is zlib's default and
/// costs well under a millisecond for an 8-GPU body, once per sample.
const GZIP_LEVEL: u32 = 6;

thread_local! {
    /// The compressor for `/metrics` tails, one per HTTP worker thread.
    static TAIL_DEFLATE: std::cell::RefCell<Compress> =
        std::cell::RefCell::new(Compress::new(Compression::fast(), false));
}

/// gzip member header: deflate, no name or time, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];

/// One encoded body, uncompressed and as the open start of a gzip member.
#[derive(Debug, Clone)]
pub struct Body {
    /// Uncompressed (OpenMetrics without its `# EOF` line: the tail ends it).
    pub plain: Bytes,
    /// gzip header and the deflate blocks of `plain`, flushed, not final.
    gzip_open: Bytes,
    /// CRC-32 of `plain`, for the gzip trailer.
    crc: u32,
}

impl Default for Body {
    fn default() -> Self {
        Body::new(String::new())
    }
}

impl Body {
    /// `text` with a trailing OpenMetrics `# EOF` line removed.
    pub fn new(mut text: String) -> Body {
        if text.ends_with("# EOF\n") {
            text.truncate(text.len() - "# EOF\n".len());
        }
        let plain = Bytes::from(text);
        let mut out = Vec::with_capacity(plain.len() / 4 + 64);
        out.extend_from_slice(&GZIP_HEADER);
        let mut deflate = Compress::new(Compression::new(GZIP_LEVEL), false);
        // A full flush ends the blocks on a byte boundary with no reference
        // past it: a new deflate stream can follow in the same member.
        if let Err(e) = deflate_into(&mut deflate, &plain, &mut out, FlushCompress::Full) {
            tracing::error!(error = %e, "gzip failed");
            out.truncate(GZIP_HEADER.len());
        }
        let mut crc = Crc::new();
        crc.update(&plain);
        Body {
            plain,
            gzip_open: Bytes::from(out),
            crc: crc.sum(),
        }
    }

    /// This body followed by `tail`, gzip-compressed when `gzip`, in one
    /// buffer (a copy: scrapes send [`chunks_with_tail`](Self::chunks_with_tail)).
    pub fn with_tail(&self, tail: &[u8], gzip: bool) -> Bytes {
        let [head, rest] = self.chunks_with_tail(tail, gzip);
        let mut out = BytesMut::with_capacity(head.len() + rest.len());
        out.put_slice(&head);
        out.put_slice(&rest);
        out.freeze()
    }

    /// This body followed by `tail`, gzip-compressed when `gzip`, as two
    /// chunks sent one after the other: the shared pre-encoded part (a
    /// refcount, no copy) and this scrape's own bytes.
    pub fn chunks_with_tail(&self, tail: &[u8], gzip: bool) -> [Bytes; 2] {
        if !gzip {
            return [self.plain.clone(), Bytes::copy_from_slice(tail)];
        }
        let mut out = Vec::with_capacity(tail.len() / 2 + 32);
        // The tail is a few kilobytes: the fastest level is plenty, and each
        // worker thread keeps one compressor (reset, not re-allocated).
        let deflated = TAIL_DEFLATE.with(|deflate| {
            let mut deflate = deflate.borrow_mut();
            deflate.reset();
            deflate_into(&mut deflate, tail, &mut out, FlushCompress::Finish)
        });
        if let Err(e) = deflated {
            tracing::error!(error = %e, "gzip failed");
            return [Bytes::new(), Bytes::new()];
        }
        let mut tail_crc = Crc::new();
        tail_crc.update(tail);
        let crc = crc32_combine(self.crc, tail_crc.sum(), tail.len());
        // ISIZE is the length modulo 2^32.
        let len = (self.plain.len() as u64 + tail.len() as u64) as u32;
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        [self.gzip_open.clone(), Bytes::from(out)]
    }
}

/// The CRC-32 (IEEE, reflected) register step for each byte value.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 of `a` then `b` from the CRCs of each and the length of `b`: the
/// CRC register of `a` advanced over `len_b` zero bytes, XOR the CRC of `b`
/// (the pre- and post-conditioning cancel out). Linear in `len_b`, which is
/// the short tail here.
fn crc32_combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    let mut register = crc_a;
    for _ in 0..len_b {
        register = (register >> 8) ^ CRC_TABLE[(register & 0xff) as usize];
    }
    register ^ crc_b
}

/// Deflates all of `input` onto `out` with `flush` at its end.
fn deflate_into(
    deflate: &mut Compress,
    input: &[u8],
    out: &mut Vec<u8>,
    flush: FlushCompress,
) -> Result<(), flate2::CompressError> {
    let start_in = deflate.total_in();
    loop {
        let consumed = usize::try_from(deflate.total_in() - start_in).unwrap_or(usize::MAX);
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        let before = out.len();
        let status = deflate.compress_vec(&input[consumed..], out, flush)?;
        let done_in = deflate.total_in() - start_in == input.len() as u64;
        match status {
            flate2::Status::StreamEnd => return Ok(()),
            // A flush is complete once all input is in and it left spare
            // output room (zlib's rule for Z_FULL_FLUSH).
            _ if done_in && flush != FlushCompress::Finish && out.len() < out.capacity() => {
                return Ok(());
            }
            flate2::Status::BufError if out.len() == before && done_in => return Ok(()),
            _ => {}
        }
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
        extras: &Arc<Extras>,
        progress: &Arc<SampleProgress>,
        history: &History,
    ) -> Published {
        let text = Body::new(encoder.encode_with(snapshot, Format::PrometheusText, extras));
        let openmetrics = Body::new(encoder.encode_with(snapshot, Format::OpenMetrics, extras));
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

    /// The body for a scrape: the GPU part of `format` followed by `tail`
    /// (which, for OpenMetrics, ends with `# EOF`), as the two chunks of
    /// [`Body::chunks_with_tail`].
    pub fn metrics(&self, format: Format, gzip: bool, tail: &[u8]) -> [Bytes; 2] {
        let body = match format {
            Format::PrometheusText => &self.text,
            Format::OpenMetrics => &self.openmetrics,
        };
        body.chunks_with_tail(tail, gzip)
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

    fn gunzip_one_member(data: &[u8]) -> String {
        use std::io::Read as _;
        // GzDecoder reads exactly one member: what it returns is all a
        // client that stops after the first member would see.
        let mut out = String::new();
        flate2::read::GzDecoder::new(data)
            .read_to_string(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn a_scrape_shares_the_published_body_instead_of_copying_it() {
        let body = Body::new("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 85\n".repeat(1000));
        let tail = b"algalon_http_requests_total 1\n";
        let [head, rest] = body.chunks_with_tail(tail, false);
        assert_eq!(
            head.as_ptr(),
            body.plain.as_ptr(),
            "the GPU part is not copied"
        );
        assert_eq!(&rest[..], tail);
        let [head, rest] = body.chunks_with_tail(tail, true);
        assert_eq!(head.as_ptr(), body.gzip_open.as_ptr(), "nor its gzip form");
        assert!(rest.len() < 100, "only the tail is compressed per scrape");
        let mut joined = head.to_vec();
        joined.extend_from_slice(&rest);
        assert_eq!(
            gunzip_one_member(&joined),
            format!(
                "{}algalon_http_requests_total 1\n",
                "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 85\n".repeat(1000)
            )
        );
    }

    #[test]
    fn gzip_round_trips_with_a_tail_in_one_member() {
        let text = "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"} 85\n".repeat(100);
        let body = Body::new(text.clone());
        for tail in ["", "algalon_http_requests_total 1\n", &"x".repeat(100_000)] {
            let gz = body.with_tail(tail.as_bytes(), true);
            assert!(gz.len() < text.len() + tail.len(), "compressed");
            assert_eq!(gunzip_one_member(&gz), format!("{text}{tail}"));
            let plain = body.with_tail(tail.as_bytes(), false);
            assert_eq!(&plain[..], format!("{text}{tail}").as_bytes());
        }
        // Large, poorly compressible input crosses many output buffers.
        let noisy: String = (0..200_000u32)
            .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
            .collect();
        let body = Body::new(noisy.clone());
        assert_eq!(
            gunzip_one_member(&body.with_tail(b"end\n", true)),
            noisy + "end\n"
        );
        assert_eq!(
            gunzip_one_member(&Body::default().with_tail(b"a\n", true)),
            "a\n"
        );
    }

    #[test]
    fn openmetrics_eof_moves_to_the_tail() {
        let body = Body::new("a 1\n# EOF\n".to_owned());
        assert_eq!(&body.plain[..], b"a 1\n");
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
