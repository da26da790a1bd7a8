//! Who a GPU process is: its name and the job it belongs to, from `/proc`.
//!
//! The Slurm job id comes from the process's cgroup path (Slurm's cgroup v1
//! `/slurm/uid_U/job_J/step_S` and v2 `/system.slice/slurmstepd.scope/job_J/…`
//! layouts) or, failing that, `SLURM_JOB_ID` in its environment; the
//! Kubernetes pod UID from the kubelet's cgroup path (cgroupfs
//! `/kubepods/…/pod<uid>/…` and systemd
//! `/kubepods.slice/…/kubepods-…-pod<uid with _>.slice/…`). Everything here
//! is best effort: an unreadable file (process exited, no permission) leaves
//! the part out.

use std::path::Path;

use serde::Serialize;

/// A process's name and job, as far as `/proc` tells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessIdentity {
    /// `/proc/PID/comm`.
    pub name: Option<String>,
    /// Slurm job id.
    pub slurm_job_id: Option<String>,
    /// Kubernetes pod UID (dashed form).
    pub pod_uid: Option<String>,
}

/// Reads the identity of `pid` under `proc_root` (normally `/proc`).
pub fn identify(proc_root: &Path, pid: u32) -> ProcessIdentity {
    let dir = proc_root.join(pid.to_string());
    let name = std::fs::read_to_string(dir.join("comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_owned())
        .filter(|s| !s.is_empty());
    let (mut slurm_job_id, pod_uid) = std::fs::read_to_string(dir.join("cgroup"))
        .map(|c| parse_cgroup(&c))
        .unwrap_or_default();
    if slurm_job_id.is_none() {
        slurm_job_id = std::fs::read(dir.join("environ"))
            .ok()
            .and_then(|env| environ_var(&env, "SLURM_JOB_ID"));
    }
    ProcessIdentity {
        name,
        slurm_job_id,
        pod_uid,
    }
}

/// Slurm job id and Kubernetes pod UID from `/proc/PID/cgroup` contents.
pub fn parse_cgroup(content: &str) -> (Option<String>, Option<String>) {
    let mut job = None;
    let mut pod = None;
    for line in content.lines() {
        // hierarchy-id:controllers:path — the path may itself contain ':'.
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        for segment in path.split('/') {
            if job.is_none() {
                job = slurm_job(segment);
            }
            if pod.is_none() {
                pod = pod_uid(segment);
            }
        }
    }
    (job, pod)
}

fn slurm_job(segment: &str) -> Option<String> {
    let id = segment.strip_prefix("job_")?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_owned())
}

fn pod_uid(segment: &str) -> Option<String> {
    // cgroupfs: "pod<uid>"; systemd: "kubepods-burstable-pod<uid_with_underscores>.slice".
    let segment = segment.strip_suffix(".slice").unwrap_or(segment);
    let start = segment.rfind("pod")? + 3;
    let uid = segment[start..].replace('_', "-");
    is_uuid(&uid).then_some(uid)
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The value of `key` in a NUL-separated `environ` block.
pub fn environ_var(environ: &[u8], key: &str) -> Option<String> {
    environ.split(|&b| b == 0).find_map(|entry| {
        let rest = entry.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        let value = String::from_utf8_lossy(rest).into_owned();
        (!value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_cgroup_v1_and_v2() {
        let v1 = "12:memory:/slurm/uid_1000/job_4242/step_0/task_0\n11:cpuset:/slurm/uid_1000/job_4242/step_0\n";
        assert_eq!(parse_cgroup(v1), (Some("4242".into()), None));
        let v2 = "0::/system.slice/slurmstepd.scope/job_77/step_batch/user/task_0\n";
        assert_eq!(parse_cgroup(v2), (Some("77".into()), None));
        let node = "5:devices:/slurm_node12/uid_0/job_9/step_extern\n";
        assert_eq!(parse_cgroup(node).0.as_deref(), Some("9"));
    }

    #[test]
    fn kubernetes_cgroupfs_and_systemd() {
        let uid = "1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
        let cgroupfs = format!("0::/kubepods/besteffort/pod{uid}/0123abcd\n");
        assert_eq!(parse_cgroup(&cgroupfs), (None, Some(uid.into())));
        let systemd = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f0e8c2a_3b4d_4e5f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-0123.scope\n";
        assert_eq!(parse_cgroup(systemd), (None, Some(uid.into())));
    }

    #[test]
    fn unrelated_paths_give_nothing() {
        for content in [
            "0::/user.slice/user-1000.slice/session-3.scope\n",
            "0::/job_/x\n",
            "0::/job_12a\n",
            "0::/kubepods/podnot-a-uid\n",
            "garbage\n",
            "",
        ] {
            assert_eq!(parse_cgroup(content), (None, None), "{content:?}");
        }
    }

    #[test]
    fn environ_lookup() {
        let env = b"PATH=/bin\0SLURM_JOB_ID=123\0SLURM_JOB_IDX=9\0";
        assert_eq!(environ_var(env, "SLURM_JOB_ID").as_deref(), Some("123"));
        assert_eq!(environ_var(b"SLURM_JOB_ID=\0", "SLURM_JOB_ID"), None);
        assert_eq!(environ_var(b"", "SLURM_JOB_ID"), None);
    }

    #[test]
    fn identify_reads_a_fake_proc_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("4242");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("comm"), "python3\n").expect("comm");
        std::fs::write(dir.join("cgroup"), "0::/user.slice\n").expect("cgroup");
        std::fs::write(dir.join("environ"), b"A=1\0SLURM_JOB_ID=55\0").expect("environ");
        let id = identify(root.path(), 4242);
        assert_eq!(id.name.as_deref(), Some("python3"));
        assert_eq!(id.slurm_job_id.as_deref(), Some("55"));
        assert_eq!(id.pod_uid, None);
        assert_eq!(identify(root.path(), 1), ProcessIdentity::default());
    }
}
