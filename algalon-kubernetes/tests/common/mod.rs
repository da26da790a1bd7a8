//! The kubelet stand-in (`testing/kubelet/standin.py`), started and driven
//! from tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use algalon_kubernetes::apiserver::InCluster;
use algalon_kubernetes::{Kubernetes, View};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn scenario(name: &str) -> PathBuf {
    repo().join("testing/kubelet/scenarios").join(name)
}

/// Whether python3 can run the stand-in; when not, the test is skipped
/// unless `ALGALON_REQUIRE_KUBELET_STANDIN` is set (as `make test` does).
pub fn standin_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = "python3 with grpcio, grpcio-tools and cryptography is needed for the kubelet \
                   stand-in (scripts/install-deps.sh installs them)";
        if std::env::var_os("ALGALON_REQUIRE_KUBELET_STANDIN").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
    }
    ok
}

/// A running stand-in, killed on drop.
pub struct StandIn {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub ready: serde_json::Value,
}

impl StandIn {
    /// Starts the stand-in on `scenario` in `state`; with `apiserver`, the
    /// API server stand-in too (its token and CA in `dir/sa`).
    pub fn start(scenario_file: &str, state: &str, apiserver: bool) -> StandIn {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("kubelet.sock");
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("testing/kubelet/standin.py"))
            .arg("--scenario")
            .arg(scenario(scenario_file))
            .arg("--socket")
            .arg(&socket)
            .arg("--state")
            .arg(state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if apiserver {
            cmd.arg("--apiserver").arg(dir.path().join("sa"));
        }
        let mut child = cmd
            .spawn()
            .expect("start python3 testing/kubelet/standin.py");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let ready = read_json(&mut stdout);
        assert_eq!(ready["ready"], true, "stand-in did not start: {ready}");
        StandIn {
            child,
            stdin,
            stdout,
            dir,
            socket,
            ready,
        }
    }

    fn command(&mut self, cmd: serde_json::Value) -> serde_json::Value {
        writeln!(self.stdin, "{cmd}").expect("write to the stand-in");
        self.stdin.flush().expect("flush");
        let answer = read_json(&mut self.stdout);
        assert_eq!(answer["ok"], true, "stand-in refused {cmd}: {answer}");
        answer
    }

    /// Switches to another state of the scenario.
    pub fn switch(&mut self, state: &str) {
        self.command(serde_json::json!({ "state": state }));
    }

    /// Calls served so far: `List`, `Get`, `GetAllocatableResources`,
    /// `apiserver`.
    pub fn stats(&mut self) -> serde_json::Value {
        self.command(serde_json::json!({ "stats": true }))
    }

    /// The API server stand-in as a service-account mount describes it.
    pub fn in_cluster(&self) -> InCluster {
        InCluster {
            base_url: self.ready["apiserver"].as_str().unwrap().to_owned(),
            token_file: PathBuf::from(self.ready["token"].as_str().unwrap()),
            ca_file: PathBuf::from(self.ready["ca"].as_str().unwrap()),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{{\"quit\": true}}");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_json(stdout: &mut BufReader<ChildStdout>) -> serde_json::Value {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read from the stand-in");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("stand-in said {line:?}: {e}"))
}

/// Polls the refresher's view until `done` holds (20 s at most).
pub async fn wait_for(
    k8s: &Kubernetes,
    what: &str,
    done: impl Fn(&View) -> bool,
) -> std::sync::Arc<View> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = k8s.view();
        if done(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last status: {}",
            view.status.summary(Instant::now())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
