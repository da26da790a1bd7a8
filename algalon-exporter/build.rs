//! Records the git commit the exporter is built from, for `--version` and the
//! `revision` label of `algalon_build_info`: `ALGALON_GIT_HASH` when set
//! (a Docker build without `.git`), else the commit a packaged crate names
//! in its `.cargo_vcs_info.json` (`make crates`, crates.io), else
//! `git rev-parse HEAD`, else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ALGALON_GIT_HASH");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = Path::new(&manifest_dir);
    let vcs_info = dir.join(".cargo_vcs_info.json");
    let revision = std::env::var("ALGALON_GIT_HASH")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| is_hash(h))
        .or_else(|| packaged_revision(&vcs_info))
        .or_else(|| git_revision(dir))
        .unwrap_or_else(|| "unknown".to_owned());
    let short = if is_hash(&revision) {
        &revision[..revision.len().min(7)]
    } else {
        &revision
    };
    println!("cargo:rustc-env=ALGALON_GIT_REVISION={revision}");
    println!("cargo:rustc-env=ALGALON_GIT_HASH={short}");
}

fn is_hash(text: &str) -> bool {
    text.len() >= 7 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The commit `cargo package` recorded: `{"git": {"sha1": "…"}, …}`.
fn packaged_revision(path: &Path) -> Option<String> {
    if !path.exists() {
        return None;
    }
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    let sha = &rest[start..start + len];
    is_hash(sha).then(|| sha.to_owned())
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}

fn git_revision(dir: &Path) -> Option<String> {
    // Rebuild when the checkout moves to another commit. `--git-path`
    // resolves worktrees' own HEAD and index; only files that exist are
    // watched, or Cargo would rerun this script on every build.
    for file in ["HEAD", "index"] {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", file]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    git(dir, &["rev-parse", "HEAD"]).filter(|h| is_hash(h))
}
