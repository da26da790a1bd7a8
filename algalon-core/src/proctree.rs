//! "The job's own processes": this process and its descendants, from `/proc`.
//!
//! NVML reports GPU memory per PID; a job is usually one Python process plus
//! the workers it forked (DataLoader workers, `torch.multiprocessing`), so
//! the tree below this process is what counts as the job's.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// `root` and every process below it, read from `proc_root` (normally
/// `/proc`). Best effort: processes that exit while being read are skipped.
pub fn descendants(proc_root: &Path, root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir(proc_root) {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| parent_of(&stat))
            {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut seen = BTreeSet::from([root]);
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(child) {
                todo.push(child);
            }
        }
    }
    seen.into_iter().collect()
}

/// The parent PID from a `/proc/PID/stat` line. The command name (field 2)
/// is in parentheses and may itself contain spaces and `)`, so the fields
/// are counted from the *last* `)`.
pub fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // state, then ppid
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_from_stat_with_odd_command_names() {
        assert_eq!(parent_of("42 (python3) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_of("42 (a b) c) R 9 1 1"), Some(9));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn this_process_is_in_its_own_tree() {
        let me = std::process::id();
        let tree = descendants(Path::new("/proc"), me);
        assert!(tree.contains(&me));
        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let tree = descendants(Path::new("/proc"), me);
        let child_pid = child.id();
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.contains(&child_pid), "{tree:?} lacks {child_pid}");
    }
}
