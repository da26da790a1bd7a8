//! Records the git commit the exporter is built from, for `--version` and the
//! `algalon_exporter_build_info` series. Builds outside a git checkout (a
//! crates.io tarball, a Docker context without `.git`) say "unknown" unless
//! `ALGALON_GIT_HASH` names the commit.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ALGALON_GIT_HASH");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    // Only watch files that exist: Cargo reruns a build script on every build
    // when a watched path is missing.
    for candidate in ["../.git/HEAD", "../.git/index", ".git/HEAD"] {
        let path = Path::new(&manifest_dir).join(candidate);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let hash = std::env::var("ALGALON_GIT_HASH")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| git_hash(&manifest_dir))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ALGALON_GIT_HASH={}", hash.trim());
}

fn git_hash(dir: &str) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let hash = String::from_utf8(out.stdout).ok()?;
    let hash = hash.trim();
    (!hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit())).then(|| hash.to_owned())
}
