//! Shared test harness: spawns the real `algalon-exporter` binary on
//! loopback against the fake NVML, and talks HTTP(S) to it with a tiny
//! blocking client. Every wait is bounded.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_algalon-exporter");

#[path = "../../../testing/fake-nvml/locate.rs"]
mod locate;
pub use locate::fake_nvml;
use locate::workspace;

/// A scenario file: this crate's `tests/scenarios/NAME`, else
/// `testing/scenarios/NAME`.
pub fn scenario(name: &str) -> PathBuf {
    let own = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name);
    if own.is_file() {
        return own;
    }
    let shared = workspace().join("testing/scenarios").join(name);
    assert!(
        shared.is_file(),
        "scenario {name} not found ({} or {})",
        own.display(),
        shared.display()
    );
    shared
}

/// A command for the exporter binary with a clean environment.
pub fn command(scenario: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    // Every variable the exporter reads (Algalon's and dcgm-exporter's),
    // cleared so the caller's environment cannot change a test.
    for var in algalon_exporter::compat::all_variables() {
        cmd.env_remove(var);
    }
    // dcgm-exporter's host label value, when set.
    cmd.env_remove("NODE_NAME");
    cmd.env("ALGALON_FAKE_NVML_SCENARIO", scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// A running exporter; killed on drop.
pub struct Exporter {
    child: Child,
    pub addr: SocketAddr,
    pub https: bool,
    log: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Starts the exporter on 127.0.0.1 (a free port) with `args` added to
    /// `--nvml-lib <fake>`, and waits until it listens.
    pub fn start(scenario_name: &str, args: &[&str]) -> Exporter {
        let nvml = fake_nvml();
        let mut cmd = command(&scenario(scenario_name));
        cmd.arg("--nvml-lib")
            .arg(&nvml)
            .args(["-a", "127.0.0.1:0"])
            .args(args);
        Self::spawn(cmd)
    }

    /// Spawns a prepared command and waits for "listening on".
    pub fn spawn(mut cmd: Command) -> Exporter {
        let mut child = cmd.spawn().expect("spawn algalon-exporter");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log lock").push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = log.lock().expect("log lock").iter().find_map(|l| {
                let rest = l.split("listening on ").nth(1)?;
                // Text lines go on with ` url=…`, JSON lines with `",…`.
                let rest = rest.split([' ', '"']).next()?;
                let (scheme, addr) = rest.split_once("://")?;
                Some((scheme == "https", addr.parse::<SocketAddr>().ok()?))
            });
            if let Some((https, addr)) = found {
                return Exporter {
                    child,
                    addr,
                    https,
                    log,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the exporter exited ({status}) before listening:\n{}",
                    log.lock().expect("log lock").join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "the exporter did not start listening within 30 s:\n{}",
                log.lock().expect("log lock").join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`, …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// The log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits until a log line contains `needle`; returns that line.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_log_after(0, needle, timeout)
    }

    /// Like `wait_log`, looking only at lines after the first `skip`.
    pub fn wait_log_after(&self, skip: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.log().iter().skip(skip).find(|l| l.contains(needle)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line containing {needle:?} within {timeout:?}:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the exporter did not exit within {timeout:?}:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET path` over plain HTTP.
    pub fn get(&self, path: &str) -> Response {
        get(self.addr, path, &[])
    }

    /// `GET path` with extra headers over plain HTTP.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(self.addr, path, headers)
    }

    /// The text of `/metrics`, asserting 200.
    pub fn metrics(&self) -> String {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
        r.text()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The bytes of `GET path` (HTTP/1.1, `Connection: close`) with `headers`.
pub fn request(path: &str, host: SocketAddr, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// Parses a complete `Connection: close` response.
pub fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = raw[split + 4..].to_vec();
    let response = Response {
        status,
        headers,
        body,
    };
    if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().expect("numeric content-length");
        assert_eq!(response.body.len(), len, "truncated body");
    }
    response
}

/// `GET` over plain HTTP/1.1, bounded by a 10 s timeout.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(&request(path, addr, headers))
        .expect("send request");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

/// `GET` over HTTPS, trusting `ca_pem`, bounded by a 10 s timeout.
pub fn get_tls(addr: SocketAddr, ca_pem: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(&request(path, addr, headers))
        .expect("send request over TLS");
    let mut raw = Vec::new();
    // A peer that closes without close_notify still sent a full response,
    // which parse_response checks against Content-Length.
    if let Err(e) = tls.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "TLS read failed: {e}");
    }
    parse_response(&raw)
}

/// The value of the first series `name{…}` whose labels contain every one
/// of `labels` (`gpu="0"`, …).
pub fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the exporter expecting a start-up failure: returns (exit status,
/// stderr lines). Bounded by 30 s.
pub fn run_to_failure(mut cmd: Command) -> (ExitStatus, Vec<String>) {
    let mut child = cmd.spawn().expect("spawn algalon-exporter");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the exporter did not exit within 30 s (it should have failed to start)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut err)
        .expect("read stderr");
    (status, err.lines().map(str::to_owned).collect())
}

/// Compares `actual` with `tests/golden/NAME`; `UPDATE_GOLDEN=1` (what `make
/// golden` sets) writes it instead. `test` names the test target for the hint.
pub fn check_golden(test: &str, name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create tests/golden");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `UPDATE_GOLDEN=1 cargo test -p algalon-exporter --test {test}`",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  golden: {e}\n  actual: {a}", i + 1))
            .collect();
        panic!(
            "{} differs ({} vs {} lines); first differences:\n{}\n\
             If the change is intended, run `make golden` and review the diff.",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}
