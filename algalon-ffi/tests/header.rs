//! The committed header: version macros equal Cargo's, every exported
//! function is in it and runs inside the panic boundary, and — when the
//! pinned cbindgen is installed — it is what cbindgen generates today
//! (`ALGALON_REQUIRE_CBINDGEN=1`, set by the Makefile, makes a missing or
//! different cbindgen a failure).

mod common;

use std::process::Command;

use common::workspace;

/// The cbindgen version the header is generated with (`make header`), from
/// the file `make`, `scripts/install-deps.sh` and this test all read.
const CBINDGEN_VERSION_FILE: &str = include_str!("../cbindgen-version");

fn header() -> String {
    std::fs::read_to_string(workspace().join("algalon-ffi/include/algalon.h"))
        .expect("algalon-ffi/include/algalon.h is committed")
}

fn sources() -> Vec<(String, String)> {
    let dir = workspace().join("algalon-ffi/src");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("src")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p.display().to_string(), text)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn version_macros_equal_cargo_version() {
    let h = header();
    for (part, value) in [
        ("MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define ALGALON_VERSION_{part} {value}\n");
        assert!(
            h.contains(&line),
            "algalon.h lacks {line:?}: bump the constants in algalon-ffi/src/lib.rs to Cargo's version and run `make header`"
        );
    }
    assert!(h.contains("#define ALGALON_VERSION ALGALON_STRINGIFY_(ALGALON_VERSION_MAJOR)"));
}

#[test]
fn every_exported_function_is_declared_and_guarded() {
    let h = header();
    let mut count = 0;
    for (file, text) in sources() {
        let mut rest = text.as_str();
        while let Some(at) = rest.find("extern \"C\" fn ") {
            let decl = &rest[at + "extern \"C\" fn ".len()..];
            let name = &decl[..decl.find('(').expect("fn name")];
            let body_start = decl.find('{').expect("body");
            let body = decl[body_start + 1..].trim_start();
            assert!(
                body.starts_with("boundary(")
                    || body.starts_with("boundary_quiet(")
                    || body.starts_with("boundary_value(")
                    || body.starts_with("error::boundary_value(")
                    || body.starts_with("crate::error::boundary_value("),
                "{file}: {name} does not run its body inside the panic boundary"
            );
            assert!(
                h.contains(&format!(" {name}(")) || h.contains(&format!("*{name}(")),
                "{name} is not declared in algalon.h: run `make header`"
            );
            assert!(
                name.starts_with("algalon_"),
                "{name}: exported names start with algalon_"
            );
            count += 1;
            rest = &decl[body_start..];
        }
    }
    assert!(count > 30, "found only {count} exported functions");
}

#[test]
fn header_is_fresh_when_the_pinned_cbindgen_is_installed() {
    let required = std::env::var_os("ALGALON_REQUIRE_CBINDGEN").is_some_and(|v| v == "1");
    let pinned = CBINDGEN_VERSION_FILE.trim();
    let version = Command::new("cbindgen")
        .arg("--version")
        .output()
        .map(|v| String::from_utf8_lossy(&v.stdout).trim().to_owned())
        .unwrap_or_else(|_| "not installed".to_owned());
    if version != format!("cbindgen {pinned}") {
        let why = format!(
            "cbindgen is {version}, not {pinned}: cargo install cbindgen --version {pinned} --locked"
        );
        assert!(!required, "{why}");
        eprintln!("{why}; not comparing the header (make header-check does in CI)");
        return;
    }
    // The Makefile holds the one cbindgen command line (with the macro
    // expansion it needs), so the test runs that rather than a copy of it.
    let out = Command::new("make")
        .current_dir(workspace())
        .args(["-s", "header-check"])
        .output()
        .expect("run make header-check");
    assert!(
        out.status.success(),
        "algalon-ffi/include/algalon.h is stale: run `make header` and commit it\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
