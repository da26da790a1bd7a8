//! dcgm-exporter's HPC job mapping (`--hpc-job-mapping-dir`): a directory
//! with one file per GPU, named by its NVML index (`0`, `1`, …), listing
//! the jobs running on it one per line. Each series of a GPU with jobs is
//! served once per job, with an `hpc_job` label — as dcgm-exporter does.
//!
//! The directory is read at every sample (the scheduler's prolog and epilog
//! scripts write and remove the files as jobs come and go). Files named
//! `GPU.INSTANCE` (`2.0`) map MIG instances, which Algalon does not serve
//! apart from their GPU, so they are skipped; so are other names,
//! directories and blank lines. A missing directory is logged once and
//! means no jobs, until it appears.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Reads one mapping directory, remembering whether its absence was logged.
#[derive(Debug)]
pub struct HpcJobs {
    dir: PathBuf,
    missing_logged: bool,
    unreadable_logged: bool,
}

impl HpcJobs {
    /// A reader of `dir`; logs at once whether it exists.
    pub fn new(dir: PathBuf) -> Self {
        tracing::info!(
            "HPC job mapping is enabled: the hpc_job label comes from the files in {}",
            dir.display()
        );
        let mut jobs = HpcJobs {
            dir,
            missing_logged: false,
            unreadable_logged: false,
        };
        let _ = jobs.read();
        jobs
    }

    /// The jobs on each GPU (by NVML index) now.
    pub fn read(&mut self) -> BTreeMap<u32, Vec<String>> {
        match read_dir(&self.dir) {
            Ok(jobs) => {
                if self.missing_logged || self.unreadable_logged {
                    tracing::info!(
                        "HPC job mapping directory {} is readable again",
                        self.dir.display()
                    );
                }
                self.missing_logged = false;
                self.unreadable_logged = false;
                jobs
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.missing_logged {
                    tracing::warn!(
                        "HPC job mapping directory {} does not exist: no hpc_job labels until it \
                         is created",
                        self.dir.display()
                    );
                    self.missing_logged = true;
                }
                BTreeMap::new()
            }
            Err(e) => {
                if !self.unreadable_logged {
                    tracing::warn!(
                        "HPC job mapping directory {} cannot be read ({e}): no hpc_job labels \
                         until it can",
                        self.dir.display()
                    );
                    self.unreadable_logged = true;
                }
                BTreeMap::new()
            }
        }
    }
}

/// The jobs listed in `dir`: file `N` (N an NVML index) → its non-blank
/// lines, in file order.
pub fn read_dir(dir: &Path) -> std::io::Result<BTreeMap<u32, Vec<String>>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(index) = name.to_str().and_then(|n| {
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<u32>().ok())
                .flatten()
        }) else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // A file removed between the listing and the read: the job ended.
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let jobs: Vec<String> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        if !jobs.is_empty() {
            out.insert(index, jobs);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_per_gpu_index_list_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("0"), "job1\njob2\n").expect("write");
        std::fs::write(dir.path().join("1"), "\n  \n").expect("write");
        std::fs::write(dir.path().join("3"), "slurm-77").expect("write");
        std::fs::write(dir.path().join("2.0"), "mig-job\n").expect("write");
        std::fs::write(dir.path().join("notes"), "x\n").expect("write");
        std::fs::create_dir(dir.path().join("4")).expect("mkdir");
        let jobs = read_dir(dir.path()).expect("readable");
        assert_eq!(
            jobs,
            BTreeMap::from([
                (0, vec!["job1".to_owned(), "job2".to_owned()]),
                (3, vec!["slurm-77".to_owned()]),
            ])
        );
        let mut reader = HpcJobs::new(dir.path().join("absent"));
        assert!(reader.read().is_empty());
    }
}
