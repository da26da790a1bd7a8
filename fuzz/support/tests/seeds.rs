//! Every committed seed passes its target's check, so a seed that starts
//! failing (a regression) fails `cargo test` without a fuzzing toolchain.

use std::path::Path;

fn each_seed(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../seeds")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("seed directory") {
        let path = entry.expect("dir entry").path();
        let data = std::fs::read(&path).expect("seed");
        eprintln!("{}", path.display());
        check(&data);
        n += 1;
    }
    assert!(n >= 3, "{target}: only {n} seeds in {}", dir.display());
}

#[test]
fn collectors_csv_seeds() {
    each_seed("collectors_csv", algalon_fuzz_support::check_collectors_csv);
}

#[test]
fn exposition_seeds() {
    each_seed(
        "exposition",
        algalon_fuzz_support::encoding::check_exposition,
    );
}

#[test]
fn visible_devices_seeds() {
    each_seed(
        "visible_devices",
        algalon_fuzz_support::check_visible_devices,
    );
}

#[test]
fn cgroup_seeds() {
    each_seed("cgroup", algalon_fuzz_support::check_cgroup);
}
