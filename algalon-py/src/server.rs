//! `Monitor.serve`: a tiny HTTP server for `/metrics` on its own thread.
//!
//! A training process serves a handful of job series, so one thread that
//! answers one request at a time is enough, and std::net keeps the wheel
//! free of an async runtime. Nothing here touches NVML or the GIL: a scrape
//! encodes the tracker's reports, which the sampler thread keeps current.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use algalon_core::jobs::{JobSession, JobTracker};
use algalon_core::{Format, encode_job_process, encode_jobs};
use parking_lot::Mutex;
use std::sync::Weak;

/// How long a client may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head read.
const MAX_HEAD: usize = 8192;

/// A running server; stopping it is idempotent.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ServerHandle {
    /// Binds `addr:port` (port 0: any free port) and starts serving the
    /// session's build info and GPUs (while it lives and samples) and the
    /// tracker's jobs.
    pub fn start(
        addr: &str,
        port: u16,
        session: Weak<JobSession>,
        tracker: Arc<JobTracker>,
    ) -> std::io::Result<Arc<ServerHandle>> {
        let ip: IpAddr = addr.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{addr:?} is not an IP address (use \"127.0.0.1\", \"0.0.0.0\" or \"::\")"),
            )
        })?;
        let listener = TcpListener::bind((ip, port))?;
        let handle = Arc::new(ServerHandle {
            addr: listener.local_addr()?,
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let me = Arc::clone(&handle);
        let thread = std::thread::Builder::new()
            .name("algalon-http".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if me.stop.load(Ordering::Acquire) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        // A client that misbehaves only loses its own answer.
                        let _ = answer(stream, &session, &tracker);
                    }
                }
            })?;
        *handle.thread.lock() = Some(thread);
        Ok(handle)
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits (briefly) for the thread.
    pub fn stop(&self) {
        if self.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wake the blocking accept() with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(thread) = self.thread.lock().take() {
            let deadline = Instant::now() + IO_TIMEOUT + Duration::from_secs(1);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }

    /// Forgets the thread without touching it (after `fork()`, the child
    /// has no such thread and must not wait for it).
    pub fn abandon(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.lock().take() {
            std::mem::forget(thread);
        }
    }
}

/// `/metrics`: the process's build info and GPUs from the session's latest
/// snapshot (from the start, before any job), then the job series.
fn metrics(session: &Weak<JobSession>, tracker: &JobTracker) -> String {
    let snapshot = session.upgrade().and_then(|s| s.latest());
    let mut body = snapshot
        .map(|snap| encode_job_process(&snap, Format::PrometheusText))
        .unwrap_or_default();
    body.push_str(&encode_jobs(&tracker.reports(), Format::PrometheusText));
    body
}

fn answer(
    mut stream: TcpStream,
    session: &Weak<JobSession>,
    tracker: &JobTracker,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
                false,
            );
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut parts = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = target.split('?').next().unwrap_or_default();
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"use GET\n",
            false,
        );
    }
    match path {
        "/metrics" => {
            let body = metrics(session, tracker);
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
                head_only,
            )
        }
        "/" => respond(
            &mut stream,
            "200 OK",
            "text/html; charset=utf-8",
            b"<html><head><title>Algalon</title></head><body><h1>Algalon</h1>\
              <p>Per-job GPU usage of this process: <a href=\"/metrics\">/metrics</a></p></body></html>\n",
            head_only,
        ),
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found; try /metrics\n", head_only),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}
