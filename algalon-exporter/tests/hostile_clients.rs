//! Hostile and broken clients: slowloris floods, idle connections, oversized
//! or garbage requests, password guessing, bad TLS clients. Throughout, a
//! well-behaved scraper keeps being served, and no secret reaches a log line
//! or a response.

mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Exporter, get, parse_response, request, wait_for};

/// The tests that load the machine (floods) or time it (latency
/// percentiles, bcrypt cost) run one at a time: each asserts what a scraper
/// sees under one attack, not under several at once on a 2-core machine.
static LOAD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    LOAD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open sockets of a process (its TCP connections and the listener).
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fds")
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

/// This process's soft limit on open files, from /proc/self/limits.
fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Sends raw bytes and reads whatever comes back until the server closes
/// (or 10 s pass, which fails the test: the server must not hang).
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may close before reading everything.
    let _ = tcp.write_all(bytes);
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!(
                    "no answer and no close within 10 s after {:?}…",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
                )
            }
            // A reset after an early close is an answer too.
            Err(_) => break,
        }
    }
    raw
}

fn status_of(raw: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(raw);
    text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
}

/// A flood of `count` connections: half trickle a request head one byte at
/// a time, half say nothing. Closed ones are reopened (at most 200 per
/// round), so the flood keeps pressing on the connection cap.
struct Flood {
    stop: Arc<AtomicBool>,
    peak_open: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(addr: SocketAddr, count: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_open = Arc::new(AtomicUsize::new(0));
        let opened = Arc::new(AtomicUsize::new(0));
        let (s, p, o) = (
            Arc::clone(&stop),
            Arc::clone(&peak_open),
            Arc::clone(&opened),
        );
        let thread = std::thread::spawn(move || flood(addr, count, &s, &p, &o));
        Flood {
            stop,
            peak_open,
            opened,
            thread: Some(thread),
        }
    }

    /// Stops the flood and closes its connections; returns how many it
    /// opened in all and the most it held open at once.
    fn stop(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("flood thread");
        }
        (
            self.opened.load(Ordering::Relaxed),
            self.peak_open.load(Ordering::Relaxed),
        )
    }
}

fn flood(
    addr: SocketAddr,
    count: usize,
    stop: &AtomicBool,
    peak_open: &AtomicUsize,
    opened: &AtomicUsize,
) {
    const HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: flood\r\nX-Slow: ";
    let open = |i: usize| -> Option<(TcpStream, usize)> {
        opened.fetch_add(1, Ordering::Relaxed);
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        tcp.set_nonblocking(true).ok()?;
        // Even connections trickle bytes, odd ones stay silent.
        Some((tcp, if i.is_multiple_of(2) { 0 } else { usize::MAX }))
    };
    let mut conns: Vec<Option<(TcpStream, usize)>> = (0..count).map(open).collect();
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        let mut reopened = 0;
        let mut alive = 0;
        for (i, slot) in conns.iter_mut().enumerate() {
            let closed = match slot {
                None => true,
                Some((tcp, sent)) => {
                    let mut closed = match tcp.read(&mut buf) {
                        Ok(_) => true, // EOF or a 503 / 408: the server let go
                        Err(e) => e.kind() != ErrorKind::WouldBlock,
                    };
                    if !closed && *sent != usize::MAX {
                        let byte = HEAD.get(*sent).copied().unwrap_or(b'a');
                        closed = matches!(tcp.write(&[byte]), Err(e) if e.kind() != ErrorKind::WouldBlock);
                        *sent += 1;
                    }
                    closed
                }
            };
            if closed {
                *slot = None;
                if reopened < 200 {
                    reopened += 1;
                    *slot = open(i);
                }
            }
            alive += usize::from(slot.is_some());
        }
        peak_open.fetch_max(alive, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Scrapes `/metrics` every `every` until `stop`; returns the latencies and
/// the statuses that were not 200 (0: no response at all, 1: a 200 without
/// the metrics).
fn scrape_loop(
    addr: SocketAddr,
    every: Duration,
    headers: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<Duration>, Vec<u16>)> {
    std::thread::spawn(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut latencies = Vec::new();
        let mut failures = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            // A reset or a timeout counts as status 0.
            let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let r = get(addr, "/metrics", &headers);
                if r.text().contains("DCGM_FI_DEV_GPU_UTIL{") {
                    r.status
                } else {
                    r.status.min(1)
                }
            }))
            .unwrap_or(0);
            latencies.push(started.elapsed());
            if status != 200 {
                failures.push(status);
            }
            std::thread::sleep(every);
        }
        latencies.sort();
        (latencies, failures)
    })
}

#[test]
fn a_slowloris_flood_of_2000_connections_does_not_lock_out_a_scraper() {
    let _load = exclusive();
    let count = 2000.min(open_files_limit().saturating_sub(300));
    assert!(
        count >= 1000,
        "raise the open-file limit (ulimit -n) to run this test"
    );
    let exporter = Exporter::start("steps.json", &["-c", "200"]);
    let addr = exporter.addr;
    let pid = exporter.pid();
    assert_eq!(exporter.get("/metrics").status, 200);
    let rss_before = rss_kib(pid);

    let flood = Flood::start(addr, count);
    // Let the flood fill every slot before the scraper starts.
    wait_for(Duration::from_secs(20), "the flood to fill the cap", || {
        (sockets(pid) >= 250).then_some(())
    });
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = scrape_loop(
        addr,
        Duration::from_millis(50),
        Vec::new(),
        Arc::clone(&stop),
    );
    let mut rss_peak = rss_before;
    let mut sockets_peak = 0;
    let watch_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < watch_until {
        rss_peak = rss_peak.max(rss_kib(pid));
        sockets_peak = sockets_peak.max(sockets(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let (latencies, failures) = scraper.join().expect("scraper");
    let (opened, flood_peak) = flood.stop();

    assert!(
        opened >= count * 2,
        "the flood kept pressing: {opened} connections opened"
    );
    assert!(
        failures.is_empty(),
        "every scrape during the flood is served; failed: {failures:?}"
    );
    assert!(latencies.len() >= 20, "{} scrapes", latencies.len());
    let p99 = percentile(&latencies, 0.99);
    assert!(
        p99 < Duration::from_secs(1),
        "scrape p99 {p99:?} during the flood (p50 {:?})",
        percentile(&latencies, 0.5)
    );
    // The exporter held its cap, not the whole flood: 256 connections, as
    // many again evicted but not closed yet, those being refused, and the
    // listener.
    assert!(
        (200..=2 * 256 + 32 + 8).contains(&sockets_peak),
        "the exporter held {sockets_peak} sockets"
    );
    assert!(
        rss_peak < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_peak} KiB"
    );
    // Once the flood is gone, the connections are gone too.
    wait_for(
        Duration::from_secs(15),
        "the flood's sockets to close",
        || (sockets(pid) < 10).then_some(()),
    );
    assert_eq!(exporter.get("/health").status, 200);
    eprintln!(
        "flood of {count}: {opened} opened, at most {flood_peak} open at once; exporter \
         sockets peak {sockets_peak}; \
         {} scrapes p50 {:?} p99 {p99:?}, RSS {rss_before} -> {rss_peak} KiB",
        latencies.len(),
        percentile(&latencies, 0.5)
    );
}

#[test]
fn a_request_head_trickled_byte_by_byte_is_cut_off() {
    let exporter = Exporter::start("steps.json", &["-c", "1000"]);
    let mut tcp = TcpStream::connect(exporter.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let started = Instant::now();
    let head = b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
    let mut i = 0;
    let closed = loop {
        let byte = head.get(i).copied().unwrap_or(b'a');
        i += 1;
        if tcp.write_all(&[byte]).is_err() {
            break true;
        }
        let mut buf = [0u8; 256];
        match tcp.read(&mut buf) {
            Ok(_) => break true,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Err(_) => break true,
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
    };
    assert!(
        closed,
        "a head still incomplete after 20 s (one byte per 0.5 s) is cut off"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "but not before the header-read timeout: {:?}",
        started.elapsed()
    );
}

#[test]
fn busy_connections_at_the_cap_get_503_and_are_served_again_later() {
    let _load = exclusive();
    // Every slot busy: four requests waiting on a slow bcrypt (two cores'
    // worth at a time, or fewer).
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 12).expect("bcrypt");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("write");
    let exporter = with_web_config(&web, &["-c", "1000", "--max-connections", "4"]);
    let addr = exporter.addr;
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let guessers: Vec<_> = (0..4)
        .map(|i| {
            let sent = sent_tx.clone();
            std::thread::spawn(move || {
                let mut tcp =
                    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
                tcp.set_read_timeout(Some(Duration::from_secs(15)))
                    .expect("timeout");
                let auth = basic("prometheus", &format!("guess{i}"));
                tcp.write_all(&request("/metrics", addr, &[("Authorization", &auth)]))
                    .expect("send request");
                sent.send(()).expect("signal");
                let mut raw = Vec::new();
                tcp.read_to_end(&mut raw).expect("read response");
                parse_response(&raw).status
            })
        })
        .collect();
    // Until their request heads are read, the four are idle (and a new
    // connection would evict one): probe once all four are sent and the
    // exporter has had a moment to read them. The window then lasts until
    // the queued checks give up on a core (1 s) or the bcrypts finish.
    for _ in 0..4 {
        sent_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a guesser sent its request");
    }
    std::thread::sleep(Duration::from_millis(100));
    let refused = wait_for(Duration::from_secs(10), "a 503 at the cap", || {
        let r = get(addr, "/health", &[]);
        (r.status == 503).then_some(r)
    });
    assert_eq!(refused.header("retry-after"), Some("1"));
    for g in guessers {
        // 401, or 503 when the check outlasts the 10 s request timeout on
        // a loaded machine: never served.
        let status = g.join().expect("guesser");
        assert!(matches!(status, 401 | 503), "a wrong password got {status}");
    }
    wait_for(Duration::from_secs(10), "a slot to free up", || {
        (get(addr, "/health", &[]).status == 200).then_some(())
    });
    exporter.wait_log("--max-connections", Duration::from_secs(1));
}

#[test]
fn parked_keep_alive_connections_make_room_for_a_scraper() {
    let _load = exclusive();
    let exporter = Exporter::start("steps.json", &["-c", "1000", "--max-connections", "4"]);
    // Four clients each make one keep-alive request, then sit on the
    // connection.
    let mut parked: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut tcp = TcpStream::connect(exporter.addr).expect("connect");
            tcp.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("send");
            let mut buf = [0u8; 1024];
            let n = tcp.read(&mut buf).expect("response");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            std::thread::sleep(Duration::from_millis(50));
            tcp
        })
        .collect();
    for round in 0..3 {
        let r = get(exporter.addr, "/metrics", &[]);
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
    }
    // The three parked the longest were closed to make room, oldest first.
    let mut buf = [0u8; 16];
    for (i, tcp) in parked.iter_mut().enumerate().take(3) {
        assert!(
            matches!(tcp.read(&mut buf), Ok(0) | Err(_)),
            "parked connection {i} is closed"
        );
    }
}

#[test]
fn malformed_oversized_and_odd_requests_get_an_answer_or_a_close_never_a_hang() {
    let exporter = Exporter::start("steps.json", &["-c", "1000"]);
    let addr = exporter.addr;

    // A 20 KiB URL: over the 16 KiB head limit.
    let long = format!(
        "GET /metrics?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let raw = raw_exchange(addr, long.as_bytes());
    assert!(
        matches!(status_of(&raw), None | Some(414 | 431 | 400)),
        "a 20 KiB URL: {:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(80)])
    );

    // Unknown paths and methods.
    assert_eq!(get(addr, "/nope", &[]).status, 404);
    assert_eq!(get(addr, "/metrics/../../etc/passwd", &[]).status, 404);
    for method in ["POST", "PUT", "DELETE"] {
        let raw = raw_exchange(
            addr,
            format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status_of(&raw), Some(405), "{method} /metrics");
    }

    // Garbage of several kinds.
    let binary: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    for garbage in [
        &binary[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"\r\n\r\n\r\n\r\n",
    ] {
        let raw = raw_exchange(addr, garbage);
        let status = status_of(&raw);
        assert!(
            status.is_none_or(|s| s >= 400),
            "{:?} → {:?}",
            String::from_utf8_lossy(&garbage[..garbage.len().min(40)]),
            String::from_utf8_lossy(&raw[..raw.len().min(80)])
        );
        assert!(!String::from_utf8_lossy(&raw).contains("DCGM_"));
    }

    // HTTP/1.0 without keep-alive: answered, then closed.
    let raw = raw_exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
    let r = parse_response(&raw);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("DCGM_FI_DEV_GPU_UTIL{"));

    // HTTP/1.0 with keep-alive: two requests on one connection.
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    for round in 0..2 {
        tcp.write_all(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .expect("send");
        let mut raw = Vec::new();
        let mut buf = [0u8; 1024];
        let r = loop {
            let n = tcp.read(&mut buf).expect("read keep-alive response");
            assert!(n > 0, "round {round}: closed before the response");
            raw.extend_from_slice(&buf[..n]);
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("keep-alive responses carry a length");
                if raw.len() >= end + 4 + len {
                    break parse_response(&raw);
                }
            }
        };
        assert_eq!(r.status, 200, "round {round}");
        assert!(
            r.header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
            "{:?}",
            r.headers
        );
    }

    // Half-closed: the request, then no more writes. Still answered.
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    tcp.shutdown(Shutdown::Write).expect("half-close");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("read after half-close");
    assert_eq!(status_of(&raw), Some(200));
    // Half-closed with nothing sent: closed promptly, not held.
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.shutdown(Shutdown::Write).expect("half-close");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw)
        .expect("the server closes a silent half-closed connection");
    // Half a request, then half-closed.
    let raw = raw_exchange(addr, b"GET /metrics HTTP/1.1\r\nHo");
    assert!(!String::from_utf8_lossy(&raw).contains("DCGM_"));

    assert_eq!(exporter.get("/health").status, 200, "still serving");
    assert!(exporter.metrics().contains("DCGM_FI_DEV_GPU_UTIL{"));
}

/// A web config with one user `prometheus` / `s3cret` hashed at `cost`.
fn auth_config(cost: u32) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", cost).expect("bcrypt");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("write");
    (dir, web, hash)
}

#[test]
fn wrong_or_missing_credentials_get_401_with_a_challenge() {
    let (_dir, web, _) = auth_config(4);
    let exporter = with_web_config(&web, &["-c", "1000"]);
    for auth in [
        None,
        Some(basic("prometheus", "wrong")),
        Some(basic("Prometheus", "s3cret")),
        Some(basic("prometheus ", "s3cret")),
        Some(basic("", "")),
        Some("Basic".to_owned()),
        Some("Basic !!!not-base64".to_owned()),
        Some("Bearer cHJvbWV0aGV1czpzM2NyZXQ=".to_owned()),
        Some(format!("Basic {}", "QUFB".repeat(2000))),
    ] {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let r = exporter.get_with("/metrics", &headers);
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic realm=")),
            "{auth:?}: {:?}",
            r.headers
        );
        assert!(!r.text().contains("DCGM_"), "{auth:?}");
    }
    let ok = exporter.get_with(
        "/metrics",
        &[("Authorization", &basic("prometheus", "s3cret"))],
    );
    assert_eq!(ok.status, 200);
}

/// The exporter on `steps.json` with `web` as its web config, plus `args`.
fn with_web_config(web: &Path, args: &[&str]) -> Exporter {
    let mut all = args.to_vec();
    all.extend(["--web-config-file", web.to_str().expect("utf-8")]);
    Exporter::start("steps.json", &all)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn unknown_users_cost_the_same_bcrypt_work_as_known_ones() {
    let _load = exclusive();
    // A cost at which one bcrypt takes far longer than the rest of a
    // request, so that skipping it would show.
    let (_dir, web, _) = auth_config(9);
    let exporter = with_web_config(&web, &["-c", "1000"]);
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    let mut open = Vec::new();
    // Interleaved, so that load on the machine hits both alike.
    for i in 0..25 {
        let t = Instant::now();
        let r = exporter.get_with(
            "/metrics",
            &[("Authorization", &basic("prometheus", &format!("wrong{i}")))],
        );
        known.push(t.elapsed());
        assert_eq!(r.status, 401);
        let t = Instant::now();
        let r = exporter.get_with(
            "/metrics",
            &[("Authorization", &basic(&format!("nobody{i}"), "s3cret"))],
        );
        unknown.push(t.elapsed());
        assert_eq!(r.status, 401);
        // The unauthenticated /health: what a request costs without bcrypt.
        let t = Instant::now();
        assert_eq!(exporter.get("/health").status, 200);
        open.push(t.elapsed());
    }
    let (known, unknown, open) = (median(known), median(unknown), median(open));
    eprintln!("401 medians: known user {known:?}, unknown user {unknown:?}; /health {open:?}");
    assert!(
        known > open * 3,
        "a wrong password costs a bcrypt verify ({known:?} vs {open:?} without)"
    );
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "an unknown user costs the same bcrypt work as a known one: {unknown:?} vs {known:?}"
    );
}

#[test]
fn a_password_guessing_flood_does_not_lock_out_a_scraper() {
    let _load = exclusive();
    let (_dir, web, _) = auth_config(8);
    let exporter = with_web_config(&web, &["-c", "200"]);
    let addr = exporter.addr;
    let good = basic("prometheus", "s3cret");
    // The scraper's credentials are verified once, then remembered.
    assert_eq!(
        exporter
            .get_with("/metrics", &[("Authorization", &good)])
            .status,
        200
    );
    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicUsize::new(0));
    let guessers: Vec<_> = (0..150)
        .map(|i| {
            let (stop, busy) = (Arc::clone(&stop), Arc::clone(&busy));
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let password = format!("guess-{i}-{n}");
                    let r = get(
                        addr,
                        "/metrics",
                        &[("Authorization", &basic("prometheus", &password))],
                    );
                    match r.status {
                        401 => {}
                        503 => {
                            busy.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        other => panic!("a wrong password got {other}"),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let scraper = scrape_loop(
        addr,
        Duration::from_millis(50),
        vec![("Authorization".to_owned(), good)],
        Arc::clone(&stop),
    );
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let (latencies, failures) = scraper.join().expect("scraper");
    for g in guessers {
        g.join().expect("guesser");
    }
    assert!(
        failures.is_empty(),
        "every scrape with the right password is served: {failures:?}"
    );
    let p99 = percentile(&latencies, 0.99);
    assert!(p99 < Duration::from_secs(1), "scrape p99 {p99:?}");
    assert!(
        busy.load(Ordering::Relaxed) > 0,
        "guesses beyond the bcrypt queue are turned away with 503"
    );
}

/// Certificates for mutual TLS: a CA, a server certificate and a client
/// certificate it signed, and a client certificate from another CA.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client: (String, String),
    stranger: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let make_ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        (cert.pem(), Issuer::new(params, key))
    };
    let leaf = |names: Vec<String>, issuer: &Issuer<'_, KeyPair>| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, issuer)
            .expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    let (ca_pem, ca) = make_ca("algalon test CA");
    let (_, other_ca) = make_ca("some other CA");
    let server = leaf(vec!["localhost".into(), "127.0.0.1".into()], &ca);
    let client = leaf(vec!["scraper".into()], &ca);
    let stranger = leaf(vec!["scraper".into()], &other_ca);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.crt"), &ca_pem).expect("write");
    std::fs::write(dir.path().join("server.crt"), &server.0).expect("write");
    std::fs::write(dir.path().join("server.key"), &server.1).expect("write");
    Pki {
        dir,
        ca_pem,
        client,
        stranger,
    }
}

/// A TLS GET with an optional client certificate and a choice of
/// versions; `Err` when the handshake or the exchange fails.
fn tls_get(
    addr: SocketAddr,
    pki: &Pki,
    client: Option<&(String, String)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<u16, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert"),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("client key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    let conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from("localhost").expect("name"),
    )
    .expect("client");
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if raw.is_empty() => return Err(e.to_string()),
        Err(_) => {}
    }
    status_of(&raw).ok_or_else(|| "no HTTP response".to_owned())
}

#[test]
fn tls_clients_without_the_right_certificate_or_version_are_refused() {
    let pki = pki();
    let web = pki.dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
         min_version: TLS13\n",
    )
    .expect("write");
    let exporter = with_web_config(&web, &["-c", "1000"]);
    let addr = exporter.addr;
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

    assert_eq!(tls_get(addr, &pki, Some(&pki.client), tls13), Ok(200));
    let no_cert = tls_get(addr, &pki, None, tls13);
    assert!(no_cert.is_err(), "no client certificate: {no_cert:?}");
    let stranger = tls_get(addr, &pki, Some(&pki.stranger), tls13);
    assert!(
        stranger.is_err(),
        "a certificate from another CA: {stranger:?}"
    );
    let old = tls_get(addr, &pki, Some(&pki.client), tls12);
    assert!(old.is_err(), "TLS 1.2 below min_version TLS13: {old:?}");
    // Clients that stall in the handshake hold no slot against a real one.
    drop(exporter);
    let exporter = with_web_config(&web, &["-c", "1000", "--max-connections", "2"]);
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut tcp = TcpStream::connect(exporter.addr).expect("connect");
            tcp.write_all(b"\x16\x03\x01\x00\x05\x01\x00")
                .expect("partial hello");
            tcp
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        tls_get(exporter.addr, &pki, Some(&pki.client), tls13),
        Ok(200)
    );
    drop(stalled);
}

#[test]
fn secrets_never_reach_the_log_or_a_response() {
    let (dir, web, hash) = auth_config(4);
    let exporter = with_web_config(&web, &["-c", "500", "--log-level", "trace"]);
    let mut secrets = vec![
        "s3cret".to_owned(),
        hash.clone(),
        // The salt-and-hash part alone, in case a message cuts the prefix.
        hash[7..].to_owned(),
    ];
    let mut bodies = Vec::new();
    for (user, password) in [
        ("prometheus", "s3cret-but-wrong"),
        ("prometheus", "hunter2-Xq9"),
        ("no-such-user", "s3cret"),
        ("prometheus", "s3cret"),
    ] {
        let header = basic(user, password);
        secrets.push(password.to_owned());
        secrets.push(header.trim_start_matches("Basic ").to_owned());
        let r = exporter.get_with("/metrics", &[("Authorization", &header)]);
        bodies.push(r.text());
        for (k, v) in &r.headers {
            bodies.push(format!("{k}: {v}"));
        }
    }
    // A broken hash on reload: the error names the user, not the hash.
    let bad = format!("{}x", hash);
    secrets.push(bad.clone());
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {bad}\n")).expect("write");
    let before = exporter.log().len();
    exporter.signal("HUP");
    exporter.wait_log_after(before, "web config reload failed", Duration::from_secs(15));
    drop(dir);
    std::thread::sleep(Duration::from_millis(300));
    let log = exporter.log().join("\n");
    assert!(log.contains("prometheus"), "the log names the user");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log contains the secret {secret:?}:\n{log}"
        );
        for body in &bodies {
            assert!(
                !body.contains(secret.as_str()),
                "a response contains {secret:?}: {body}"
            );
        }
    }
}

#[test]
fn client_allowed_sans_admits_only_the_named_clients() {
    let pki = pki();
    let web = pki.dir.path().join("web.yml");
    let config = |sans: &str, kind: &str| {
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: {kind}\n  client_ca_file: ca.crt\n  \
             client_allowed_sans: {sans}\n"
        )
    };
    let both: &[&'static rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS12, &rustls::version::TLS13];

    std::fs::write(&web, config("[scraper]", "RequireAndVerifyClientCert")).expect("write");
    let exporter = with_web_config(&web, &["-c", "1000"]);
    assert_eq!(
        tls_get(exporter.addr, &pki, Some(&pki.client), both),
        Ok(200)
    );
    let stranger = tls_get(exporter.addr, &pki, Some(&pki.stranger), both);
    assert!(stranger.is_err(), "right SAN, wrong CA: {stranger:?}");
    drop(exporter);

    std::fs::write(
        &web,
        config(
            "[vmagent.example, ops@example.com]",
            "RequireAndVerifyClientCert",
        ),
    )
    .expect("write");
    let exporter = with_web_config(&web, &["-c", "1000"]);
    let refused = tls_get(exporter.addr, &pki, Some(&pki.client), both);
    assert!(refused.is_err(), "a SAN not in the list: {refused:?}");
    let line = exporter.wait_log("ops@example.com", Duration::from_secs(5));
    assert!(
        line.contains("WARN") && line.contains("allow no client"),
        "{line}"
    );
    drop(exporter);

    // As in exporter-toolkit, the list needs verified client certificates.
    std::fs::write(&web, config("[scraper]", "VerifyClientCertIfGiven")).expect("write");
    let mut cmd = common::command(&common::scenario("steps.json"));
    cmd.arg("--nvml-lib")
        .arg(common::fake_nvml())
        .args(["-a", "127.0.0.1:0", "--web-config-file"])
        .arg(&web);
    let (status, log) = common::run_to_failure(cmd);
    assert!(!status.success());
    let log = log.join("\n");
    assert!(
        log.contains("client_allowed_sans needs client_auth_type RequireAndVerifyClientCert"),
        "{log}"
    );
}
