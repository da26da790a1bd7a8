//! Pod UIDs without the API server: the kubelet keeps each pod's logs in
//! `/var/log/pods/<namespace>_<name>_<uid>/` (since Kubernetes 1.14), and
//! namespaces and pod names cannot contain `_`, so the directory names map
//! (namespace, name) to UID. The pod-resources API names pods but gives no
//! UID; a process's cgroup gives only the UID. This joins the two, with a
//! read-only mount and no RBAC.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

/// Where the kubelet writes pod logs.
pub const DEFAULT_POD_LOGS_DIR: &str = "/var/log/pods";

/// (namespace, name) → UID for every pod directory under `dir`. When one
/// name appears twice (a pod re-created under the same name while the old
/// one's logs remain), the most recently modified directory wins.
pub fn read_pod_uids(dir: &Path) -> std::io::Result<HashMap<(String, String), String>> {
    let mut best: HashMap<(String, String), (SystemTime, String)> = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some((namespace, pod, uid)) = name.to_str().and_then(parse_dir_name) else {
            continue;
        };
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let key = (namespace.to_owned(), pod.to_owned());
        match best.get(&key) {
            Some((seen, _)) if *seen >= modified => {}
            _ => {
                best.insert(key, (modified, uid.to_owned()));
            }
        }
    }
    Ok(best.into_iter().map(|(k, (_, uid))| (k, uid)).collect())
}

/// `namespace_name_uid` → its three parts, the UID checked to be one.
fn parse_dir_name(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('_');
    let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || namespace.is_empty() || pod.is_empty() {
        return None;
    }
    let uuid_shape = uid.len() == 36
        && uid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    uuid_shape.then_some((namespace, pod, uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names() {
        assert_eq!(
            parse_dir_name("ml_trainer-0_1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"),
            Some(("ml", "trainer-0", "1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"))
        );
        assert_eq!(parse_dir_name("ml_trainer-0"), None);
        assert_eq!(
            parse_dir_name("ml_trainer_0_1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"),
            None
        );
        assert_eq!(parse_dir_name("ml_trainer-0_not-a-uid"), None);
    }

    #[test]
    fn reads_a_directory() {
        let tmp = tempfile::tempdir().expect("tmp");
        for d in [
            "default_a_11111111-2222-3333-4444-555555555555",
            "kube-system_b_66666666-7777-8888-9999-aaaaaaaaaaaa",
            "not-a-pod-dir",
        ] {
            std::fs::create_dir(tmp.path().join(d)).expect("mkdir");
        }
        let uids = read_pod_uids(tmp.path()).expect("readable");
        assert_eq!(uids.len(), 2);
        assert_eq!(
            uids.get(&("default".to_owned(), "a".to_owned()))
                .map(String::as_str),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert!(read_pod_uids(&tmp.path().join("missing")).is_err());
    }
}
