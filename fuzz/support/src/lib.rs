//! What Algalon's fuzz targets check, as plain functions.
//!
//! Each `check_*` function takes one fuzz input and panics (with a message
//! saying which property failed) when Algalon gets it wrong; the targets
//! under `fuzz/fuzz_targets/` only forward libFuzzer's bytes here. Keeping
//! the checks in a normal library lets `cargo test` exercise them on stable
//! and lets `examples/render_seeds.rs` render the exposition seeds for the
//! Python round-trip test.

pub mod encoding;
pub mod exposition;

use algalon_core::collectors::Skipped;
use algalon_core::{CollectorConfig, Error};

/// The collectors CSV parser never panics; every error names `file:line`
/// with a line that holds a row (or, for a file without rows, the file);
/// every row is exported or skipped; a parsed file written back as CSV
/// parses to the same fields, types and help texts.
pub fn check_collectors_csv(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let data_rows: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .map(|(i, _)| i + 1)
        .collect();
    let config = match CollectorConfig::parse(text, "fuzz.csv") {
        Ok(config) => config,
        Err(Error::CollectorsParse { file, rows }) => {
            assert_eq!(file, "fuzz.csv");
            assert!(!rows.is_empty(), "an error without a row");
            for row in &rows {
                match row.line {
                    Some(line) => assert!(
                        data_rows.contains(&line),
                        "error names line {line}, which holds no row: {row:?}"
                    ),
                    None => assert!(
                        data_rows.is_empty(),
                        "a file-wide error for a file with rows: {row:?}"
                    ),
                }
            }
            let lines: Vec<_> = rows.iter().filter_map(|r| r.line).collect();
            assert!(
                lines.windows(2).all(|w| w[0] < w[1]),
                "errors out of line order: {lines:?}"
            );
            return;
        }
        Err(e) => panic!("parse failed with an error of another kind: {e}"),
    };
    assert_eq!(
        config.metrics.len() + config.labels.len() + config.skipped.len(),
        data_rows.len(),
        "every row is exported or skipped"
    );
    for Skipped { line, name, .. } in &config.skipped {
        let row = text.lines().nth(line - 1).unwrap_or_default();
        assert!(
            row.contains(name.as_str()),
            "skipped {name} is not on line {line}"
        );
    }
    if config.metrics.is_empty() && config.labels.is_empty() {
        // Nothing to write back: an empty CSV is an error of its own.
        return;
    }
    let rewritten = write_csv(&config);
    let again = CollectorConfig::parse(&rewritten, "rewritten.csv").unwrap_or_else(|e| {
        panic!("a parsed config written back does not parse: {e}\n{rewritten}")
    });
    assert_eq!(
        again.metrics, config.metrics,
        "metrics differ after a round trip"
    );
    assert_eq!(
        again.labels, config.labels,
        "labels differ after a round trip"
    );
}

/// `config` as collectors CSV, every help text quoted.
pub fn write_csv(config: &CollectorConfig) -> String {
    let mut out = String::new();
    for m in &config.metrics {
        let kind = match m.metric_type {
            algalon_core::MetricType::Gauge => "gauge",
            algalon_core::MetricType::Counter => "counter",
        };
        let help = m.help.replace('"', "\"\"");
        out.push_str(&format!("{}, {kind}, \"{help}\"\n", m.field.name()));
    }
    for field in &config.labels {
        out.push_str(&format!("{}, label, \"\"\n", field.name()));
    }
    out
}

/// GPUs for the `CUDA_VISIBLE_DEVICES` target: `index:uuid` lines before
/// the last line, or (when there are none) four GPUs whose UUIDs share
/// prefixes; the last line is the variable's value.
pub fn check_visible_devices(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (gpu_lines, value) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut gpus: Vec<(u32, String)> = gpu_lines
        .lines()
        .filter_map(|l| {
            let (i, u) = l.split_once(':')?;
            Some((i.parse().ok()?, u.to_owned()))
        })
        .collect();
    if gpus.is_empty() {
        gpus = [
            "GPU-11111111-2222-3333-4444-555555555550",
            "GPU-11111111-2222-3333-4444-555555555551",
            "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee2",
            "GPU-0c7f0b3e-9d1a-5e2a-9c4b-8f7e6d5c4b3a",
        ]
        .iter()
        .enumerate()
        .map(|(i, u)| (i as u32, (*u).to_owned()))
        .collect();
    }
    match algalon_core::jobs::resolve_visible_devices(value, &gpus) {
        Ok(uuids) => {
            for (i, u) in uuids.iter().enumerate() {
                let known = gpus.iter().any(|(_, g)| g == u);
                let mig = u.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("MIG-"))
                    && value.split(',').any(|e| e.trim() == u);
                assert!(
                    known || mig,
                    "{u:?} is neither a given GPU nor a MIG id in {value:?}"
                );
                assert!(!uuids[..i].contains(u), "{u:?} listed twice for {value:?}");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("CUDA_VISIBLE_DEVICES entry"),
                "error does not name the entry: {msg:?}"
            );
        }
    }
}

/// `/proc/PID/cgroup` and `environ` parsing never panics; a Slurm job id
/// is digits; a pod UID has the UUID shape and comes from the text.
pub fn check_cgroup(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (job, pod) = algalon_core::procinfo::parse_cgroup(&text);
    if let Some(job) = job {
        assert!(
            !job.is_empty() && job.bytes().all(|b| b.is_ascii_digit()),
            "Slurm job id {job:?} is not digits"
        );
        assert!(
            text.contains(&format!("job_{job}")),
            "job {job} is not in the text"
        );
    }
    if let Some(pod) = pod {
        let groups: Vec<&str> = pod.split('-').collect();
        let shape = groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(shape, "pod UID {pod:?} is not a UUID");
        // The systemd form spells the UID with '_' (the parser accepts either).
        assert!(
            text.replace('_', "-").contains(&pod),
            "pod {pod} is not in the text"
        );
    }
    if let Some(v) = algalon_core::procinfo::environ_var(data, "SLURM_JOB_ID") {
        assert!(!v.is_empty() && !v.contains('\0'), "environ value {v:?}");
        let entry = [b"SLURM_JOB_ID=".as_slice(), v.as_bytes()].concat();
        assert!(
            data.split(|&b| b == 0)
                .any(|e| String::from_utf8_lossy(e).as_bytes() == entry),
            "SLURM_JOB_ID={v:?} is not an entry of the block"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_collectors_files_round_trip() {
        check_collectors_csv(algalon_core::DEFAULT_COUNTERS_CSV.as_bytes());
        check_collectors_csv(b"DCGM_FI_DEV_GPU_UTIL, gauge, \"a, \"\"b\"\"\"\n");
        check_collectors_csv(b"DCGM_FI_DEV_GPU_TMP, gauge, typo\n");
    }

    #[test]
    fn visible_devices_and_cgroups_hold_their_properties() {
        for value in ["0,1", "GPU-aaaa", "MIG-x,2", "0,-1,3", "GPU-1111", "7"] {
            check_visible_devices(value.as_bytes());
        }
        check_visible_devices(b"0:GPU-a\n1:GPU-b\nb");
        check_cgroup(b"12:memory:/slurm/uid_1000/job_4242/step_0/task_0\n");
        check_cgroup(b"0::/kubepods/besteffort/pod1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b/x\n");
        check_cgroup(b"PATH=/bin\0SLURM_JOB_ID=55\0");
    }
}
