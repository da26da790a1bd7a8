//! Where the built fake NVML is, for the test suites of the workspace's
//! crates. Included by path (`#[path = ".../testing/fake-nvml/locate.rs"]`)
//! rather than linked, so no test binary links the fake's exported NVML
//! symbols into itself.

use std::path::{Path, PathBuf};

/// The workspace root (every crate including this file sits directly in it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives inside the workspace")
        .to_path_buf()
}

/// The fake `libnvidia-ml.so.1`: `$ALGALON_TEST_NVML_LIB`, else
/// `<workspace>/target/fake-nvml/libnvidia-ml.so.1`. Panics with what to run
/// when it is not built.
pub fn fake_nvml() -> PathBuf {
    let path = std::env::var_os("ALGALON_TEST_NVML_LIB")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/fake-nvml/libnvidia-ml.so.1"));
    assert!(
        path.is_file(),
        "the fake NVML library is missing at {}: run `make fake-nvml` first (make test does), \
         or set ALGALON_TEST_NVML_LIB to a built libnvidia-ml.so.1 test double",
        path.display()
    );
    path
}
