//! Unsafe configuration changes: SIGHUP storms while files are rewritten,
//! files replaced mid-read, half-written, unreadable or vanished files, and
//! files that name something missing. Throughout, /metrics keeps serving
//! the last good state, and never a mix of two.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Exporter, get, value, wait_for};

/// The fields that tell the states apart, and the one every state shares
/// (last in each file, so a file cut at a line boundary lacks it).
const UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";
const TEMP: &str = "DCGM_FI_DEV_GPU_TEMP";
const POWER: &str = "DCGM_FI_DEV_POWER_USAGE";
const FB_USED: &str = "DCGM_FI_DEV_FB_USED";

/// A collectors CSV and a web config that belong to state `name`.
fn csv_for(name: char) -> String {
    let field = match name {
        'A' => UTIL,
        'B' => TEMP,
        _ => POWER,
    };
    format!(
        "# state {name}\n{field}, gauge, The field of state {name}.\n\
         {FB_USED}, gauge, Framebuffer memory used (in MiB).\n"
    )
}

fn web_for(name: char) -> String {
    format!("http_server_config:\n  headers:\n    X-Algalon-State: \"{name}\"\n")
}

/// What one scrape shows: the collectors state (by which fields are
/// present) and the web config state (by the extra header).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: u16,
    fields: String,
    header: Option<String>,
}

fn scrape(exporter_addr: std::net::SocketAddr) -> Seen {
    let r = get(exporter_addr, "/metrics", &[]);
    let text = r.text();
    let fields = [(UTIL, 'A'), (TEMP, 'B'), (POWER, 'C')]
        .iter()
        .filter(|(f, _)| value(&text, f, &[r#"gpu="0""#]).is_some())
        .map(|(_, s)| *s)
        .chain(
            value(&text, FB_USED, &[r#"gpu="0""#])
                .is_some()
                .then_some('+'),
        )
        .collect();
    Seen {
        status: r.status,
        fields,
        header: r.header("x-algalon-state").map(str::to_owned),
    }
}

/// True when the scrape shows one whole state for each file.
fn whole(seen: &Seen) -> bool {
    seen.status == 200
        && matches!(seen.fields.as_str(), "A+" | "B+" | "C+")
        && seen
            .header
            .as_deref()
            .is_some_and(|h| matches!(h, "A" | "B" | "C"))
}

/// Rewrites `path` in place (truncate, then the text in pieces with pauses
/// between them), as a careless editor or config manager would.
fn write_slowly(path: &Path, text: &str, pieces: usize, pause: Duration) {
    let mut f = std::fs::File::create(path).expect("truncate");
    let bytes = text.as_bytes();
    let step = bytes.len().div_ceil(pieces);
    for chunk in bytes.chunks(step) {
        f.write_all(chunk).expect("write");
        f.flush().expect("flush");
        std::thread::sleep(pause);
    }
}

/// Replaces `path` atomically: a new file renamed over it.
fn write_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename");
}

struct Files {
    dir: tempfile::TempDir,
    csv: PathBuf,
    web: PathBuf,
}

/// An exporter started in state A for both files.
fn start() -> (Files, Exporter) {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("collectors.csv");
    let web = dir.path().join("web.yml");
    std::fs::write(&csv, csv_for('A')).expect("write");
    std::fs::write(&web, web_for('A')).expect("write");
    let exporter = Exporter::start(
        "steps.json",
        &[
            "-c",
            "100",
            "-f",
            csv.to_str().expect("utf-8"),
            "--web-config-file",
            web.to_str().expect("utf-8"),
        ],
    );
    let seen = scrape(exporter.addr);
    assert_eq!(seen.fields, "A+", "{seen:?}");
    assert_eq!(seen.header.as_deref(), Some("A"), "{seen:?}");
    (Files { dir, csv, web }, exporter)
}

/// Sends `n` SIGHUPs as fast as a shell loop can.
fn sighup_burst(pid: u32, n: usize) {
    let status = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("for _ in $(seq {n}); do kill -HUP {pid} || exit 1; done"),
        ])
        .status()
        .expect("run bash");
    assert!(status.success(), "kill -HUP burst");
}

/// Scrapes every 20 ms until `stop`; returns every distinct non-whole
/// scrape and the number of scrapes.
fn watch(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<Seen>, usize)> {
    std::thread::spawn(move || {
        let mut bad: Vec<Seen> = Vec::new();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let seen = scrape(addr);
            n += 1;
            if !whole(&seen) && !bad.contains(&seen) {
                bad.push(seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (bad, n)
    })
}

#[test]
fn a_sighup_storm_while_files_are_rewritten_serves_whole_states_and_ends_on_the_last() {
    let (files, exporter) = start();
    let pid = exporter.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(exporter.addr, Arc::clone(&stop));

    // Writers flip both files between A and B, half the time in place and
    // slowly, half the time by rename, while SIGHUPs arrive in bursts.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (csv, web, writing) = (files.csv.clone(), files.web.clone(), Arc::clone(&writing));
        std::thread::spawn(move || {
            let mut round = 0usize;
            while writing.load(Ordering::Relaxed) {
                let state = if round.is_multiple_of(2) { 'B' } else { 'A' };
                if round % 4 < 2 {
                    write_slowly(&csv, &csv_for(state), 3, Duration::from_millis(15));
                    write_slowly(&web, &web_for(state), 3, Duration::from_millis(15));
                } else {
                    write_by_rename(&csv, &csv_for(state));
                    write_by_rename(&web, &web_for(state));
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(50 + (round as u64 * 37) % 200));
            }
        })
    };
    for _ in 0..4 {
        sighup_burst(pid, 100);
        std::thread::sleep(Duration::from_millis(700));
    }
    writing.store(false, Ordering::Relaxed);
    writer.join().expect("writer");

    // The final state, written slowly in place, then one more burst.
    let before = exporter.log().len();
    let csv = files.csv.clone();
    let web = files.web.clone();
    let last = std::thread::spawn(move || {
        write_slowly(&csv, &csv_for('C'), 4, Duration::from_millis(30));
        write_slowly(&web, &web_for('C'), 4, Duration::from_millis(30));
    });
    std::thread::sleep(Duration::from_millis(20));
    sighup_burst(pid, 100);
    last.join().expect("last writer");
    sighup_burst(pid, 1);
    let addr = exporter.addr;
    wait_for(Duration::from_secs(30), "the final state C", || {
        let seen = scrape(addr);
        (seen.fields == "C+" && seen.header.as_deref() == Some("C")).then_some(())
    });
    // And it stays there once the reloads have drained.
    exporter.wait_log_after(before, "web config reloaded", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    let seen = scrape(addr);
    assert_eq!(
        (seen.fields.as_str(), seen.header.as_deref()),
        ("C+", Some("C"))
    );
    stop.store(true, Ordering::Relaxed);
    let (bad, scrapes) = watcher.join().expect("watcher");
    assert!(scrapes > 50, "{scrapes} scrapes");
    assert!(
        bad.is_empty(),
        "every one of {scrapes} scrapes during the storm shows a whole state: {bad:?}"
    );
    assert_eq!(exporter.get("/health").status, 200);
    let reloads = exporter
        .log()
        .iter()
        .filter(|l| l.contains("SIGHUP: reloading"))
        .count();
    assert!(
        (1..=401).contains(&reloads),
        "401 SIGHUPs coalesce into {reloads} reloads"
    );
    eprintln!("{scrapes} scrapes, 401 SIGHUPs, {reloads} reloads");
    drop(files);
}

#[test]
fn a_file_rewritten_slowly_in_place_is_read_once_it_is_complete() {
    let (files, exporter) = start();
    let addr = exporter.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(addr, Arc::clone(&stop));
    for (path, text, outcome) in [
        (&files.csv, csv_for('B'), "collectors reload"),
        (&files.web, web_for('B'), "web config reload"),
    ] {
        let before = exporter.log().len();
        // Line by line, 60 ms apart: every prefix that ends a line is a valid
        // file that lacks the rest.
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                let mut f = std::fs::File::create(&path).expect("truncate");
                for line in lines {
                    f.write_all(line.as_bytes()).expect("write");
                    f.flush().expect("flush");
                    std::thread::sleep(Duration::from_millis(60));
                }
            })
        };
        // The signal lands while the file is still being written.
        std::thread::sleep(Duration::from_millis(30));
        exporter.signal("HUP");
        writer.join().expect("writer");
        let line = exporter.wait_log_after(before, outcome, Duration::from_secs(15));
        assert!(
            !line.contains("failed"),
            "a file still being written is waited for, not rejected: {line}"
        );
    }
    exporter.wait_log("web config reloaded", Duration::from_secs(15));
    let seen = scrape(addr);
    assert_eq!(
        (seen.fields.as_str(), seen.header.as_deref()),
        ("B+", Some("B")),
        "the whole new files are in force"
    );
    stop.store(true, Ordering::Relaxed);
    let (bad, _) = watcher.join().expect("watcher");
    assert!(bad.is_empty(), "only whole states were served: {bad:?}");
}

#[test]
fn a_half_written_file_is_rejected_with_file_and_line_and_the_old_state_serves() {
    let (files, exporter) = start();
    // A writer that died mid-row, and mid-YAML.
    std::fs::write(
        &files.csv,
        format!("{TEMP}, gauge, GPU temperature.\nDCGM_FI_DEV_FB_US"),
    )
    .expect("write");
    std::fs::write(
        &files.web,
        "http_server_config:\n  headers:\n    X-Algalon-State: [\"B\"\n",
    )
    .expect("write");
    let before = exporter.log().len();
    exporter.signal("HUP");
    let csv_line =
        exporter.wait_log_after(before, "collectors reload failed", Duration::from_secs(15));
    assert!(
        csv_line.contains(&format!("{}:2:", files.csv.display())),
        "file:line in {csv_line:?}"
    );
    assert!(csv_line.contains("previous collectors keep serving"));
    let web_line =
        exporter.wait_log_after(before, "web config reload failed", Duration::from_secs(15));
    assert!(
        web_line.contains(&format!("{}:", files.web.display())),
        "{web_line}"
    );
    let after_path = &web_line[web_line.find("web.yml:").expect("path") + "web.yml:".len()..];
    assert!(
        after_path.starts_with(|c: char| c.is_ascii_digit()),
        "a line number follows the path: {web_line}"
    );
    let seen = scrape(exporter.addr);
    assert_eq!(
        (seen.fields.as_str(), seen.header.as_deref()),
        ("A+", Some("A"))
    );
}

#[test]
fn unreadable_or_vanished_files_keep_the_last_good_state() {
    let (files, exporter) = start();
    let addr = exporter.addr;
    let hup = |outcome: &str| {
        let before = exporter.log().len();
        exporter.signal("HUP");
        let line = exporter.wait_log_after(before, outcome, Duration::from_secs(15));
        // Both files are reported in one reload.
        exporter.wait_log_after(before, "web config reload", Duration::from_secs(15));
        line
    };
    // A directory where the file was: a read error even for root.
    std::fs::remove_file(&files.csv).expect("rm");
    std::fs::create_dir(&files.csv).expect("mkdir");
    std::fs::remove_file(&files.web).expect("rm");
    std::fs::create_dir(&files.web).expect("mkdir");
    let line = hup("collectors reload failed");
    assert!(line.contains("cannot read collectors file"), "{line}");
    assert!(line.contains(&files.csv.display().to_string()), "{line}");
    let web_line = exporter.wait_log("web config reload failed", Duration::from_secs(1));
    assert!(web_line.contains("cannot read"), "{web_line}");
    let seen = scrape(addr);
    assert_eq!(
        (seen.fields.as_str(), seen.header.as_deref()),
        ("A+", Some("A"))
    );

    // Gone altogether.
    std::fs::remove_dir(&files.csv).expect("rmdir");
    std::fs::remove_dir(&files.web).expect("rmdir");
    let line = hup("collectors reload failed");
    assert!(line.contains("No such file"), "{line}");
    let seen = scrape(addr);
    assert_eq!(
        (seen.fields.as_str(), seen.header.as_deref()),
        ("A+", Some("A"))
    );
    assert_eq!(exporter.get("/health").status, 200);

    // Back again: applied.
    std::fs::write(&files.csv, csv_for('B')).expect("write");
    std::fs::write(&files.web, web_for('B')).expect("write");
    hup("collectors reloaded");
    let seen = scrape(addr);
    assert_eq!(
        (seen.fields.as_str(), seen.header.as_deref()),
        ("B+", Some("B"))
    );
}

#[test]
fn a_reloaded_web_config_naming_missing_files_keeps_the_running_one() {
    let (files, exporter) = start();
    let addr = exporter.addr;
    let configs = [
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n".to_owned(),
        format!(
            "tls_server_config:\n  cert_file: {0}\n  key_file: {0}\n",
            files.dir.path().join("gone").join("server.pem").display()
        ),
    ];
    let mut lines = Vec::new();
    for config in &configs {
        std::fs::write(&files.web, config).expect("write");
        let before = exporter.log().len();
        exporter.signal("HUP");
        let line =
            exporter.wait_log_after(before, "web config reload failed", Duration::from_secs(15));
        assert!(line.contains("cannot read"), "{line}");
        assert!(line.contains("previous web config keeps serving"), "{line}");
        lines.push(line);
        // Still plain HTTP, still the old headers.
        let seen = scrape(addr);
        assert_eq!(seen.status, 200);
        assert_eq!(seen.header.as_deref(), Some("A"));
    }
    assert!(lines[0].contains("missing.crt"), "{}", lines[0]);
    assert!(lines[1].contains("gone/server.pem"), "{}", lines[1]);
    assert_eq!(exporter.get("/health").status, 200);
}
