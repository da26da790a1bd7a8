//! Compiles the C and C++ programs against `include/algalon.h` and the
//! library cargo just built (`libalgalon.so` and `libalgalon.a`), with
//! `-Wall -Wextra -Werror`, and runs them against the fake NVML:
//! `tests/c/*.c`, `tests/c/test_header.cpp`, `examples/c/gpu_report.c` and
//! `examples/cpp/gpu_report.cpp`. With valgrind installed the C tests also
//! run under memcheck (no leaks, no invalid accesses);
//! `ALGALON_SKIP_VALGRIND=1` skips that, and `ALGALON_REQUIRE_VALGRIND=1`
//! (set by the Makefile) makes a missing valgrind a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"];
const CXX_FLAGS: &[&str] = &[
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-g",
];
/// What a Rust staticlib needs from the system (`rustc --print native-static-libs`).
const STATIC_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];
/// Each program runs under this wall-clock limit (`timeout(1)`).
const RUN_LIMIT_S: &str = "120";

/// `target/<profile>`, where cargo put libalgalon next to this test's `deps/`.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_owned();
    for lib in ["libalgalon.so", "libalgalon.a"] {
        assert!(
            dir.join(lib).exists(),
            "{lib} is not in {}: build with `cargo build -p algalon-ffi`",
            dir.display()
        );
    }
    dir
}

fn out_dir() -> PathBuf {
    let dir = lib_dir().join("algalon-ffi-c-tests");
    std::fs::create_dir_all(&dir).expect("create output dir");
    dir
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Shared,
    Static,
}

/// Compiles `source` (C with gcc, C++ with g++) into `out_dir()/name`.
fn compile(source: &Path, name: &str, link: Link) -> PathBuf {
    let cpp = source.extension().is_some_and(|e| e == "cpp");
    let (compiler, flags) = if cpp {
        ("g++", CXX_FLAGS)
    } else {
        ("gcc", C_FLAGS)
    };
    let exe = out_dir().join(name);
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(workspace().join("algalon-ffi/include"))
        .arg("-I")
        .arg(workspace().join("algalon-ffi/tests/c"))
        .arg(source)
        .arg("-o")
        .arg(&exe);
    match link {
        Link::Shared => {
            cmd.arg("-L").arg(lib_dir()).arg("-lalgalon");
        }
        Link::Static => {
            cmd.arg(lib_dir().join("libalgalon.a")).args(STATIC_LIBS);
        }
    }
    cmd.args(["-lm", "-pthread"]);
    let output = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {compiler} ({e}): the C tests need gcc and g++ (apt-get install build-essential)")
    });
    assert!(
        output.status.success(),
        "{compiler} failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Runs `program` (optionally under `wrapper`, e.g. valgrind) with the fake
/// NVML and the constant scenario, bounded by `timeout(1)`.
fn run(program: &Path, wrapper: &[&str], scenario: bool) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", RUN_LIMIT_S])
        .args(wrapper)
        .arg(program)
        .env("ALGALON_NVML_LIB", fake_nvml())
        .env("LD_LIBRARY_PATH", lib_dir());
    if scenario {
        cmd.env("ALGALON_FAKE_NVML_SCENARIO", constant_scenario());
    } else {
        cmd.env_remove("ALGALON_FAKE_NVML_SCENARIO");
    }
    cmd.output().expect("run the test program")
}

fn assert_ok(program: &Path, output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn c_test(name: &str) -> PathBuf {
    workspace().join(format!("algalon-ffi/tests/c/{name}"))
}

#[test]
fn c_api_against_the_shared_library() {
    let exe = compile(&c_test("test_api.c"), "test_api", Link::Shared);
    let out = assert_ok(&exe, &run(&exe, &[], true));
    assert!(out.contains("test_api: ok"), "{out}");
}

#[test]
fn c_api_against_the_static_library() {
    let exe = compile(&c_test("test_api.c"), "test_api_static", Link::Static);
    let mut cmd = Command::new("ldd");
    let ldd = cmd.arg(&exe).output().expect("ldd");
    assert!(
        !String::from_utf8_lossy(&ldd.stdout).contains("libalgalon"),
        "statically linked"
    );
    let out = assert_ok(&exe, &run(&exe, &[], true));
    assert!(out.contains("test_api: ok"), "{out}");
}

#[test]
fn c_many_threads_on_one_sampler() {
    let exe = compile(&c_test("test_threads.c"), "test_threads", Link::Shared);
    let out = assert_ok(&exe, &run(&exe, &[], true));
    assert!(out.contains("test_threads: ok"), "{out}");
}

#[test]
fn c_nvml_that_fails_to_initialise() {
    let exe = compile(&c_test("test_errors.c"), "test_errors", Link::Shared);
    let out = assert_ok(&exe, &run(&exe, &[], false));
    assert!(out.contains("test_errors: ok"), "{out}");
}

#[test]
fn cpp_includes_the_header() {
    let exe = compile(&c_test("test_header.cpp"), "test_header", Link::Shared);
    let out = assert_ok(&exe, &run(&exe, &[], true));
    assert!(out.contains("test_header: ok"), "{out}");
}

#[test]
fn c_example_prints_the_cores_values() {
    let exe = compile(
        &workspace().join("examples/c/gpu_report.c"),
        "gpu_report",
        Link::Shared,
    );
    let out = assert_ok(&exe, &run(&exe, &[], true));

    // The same scenario through the Rust core, formatted as the example does.
    let expected = {
        let _lock = nvml_lock();
        let mut core = algalon_core::Sampler::new(algalon_core::SamplerOptions {
            nvml_lib: Some(fake_nvml()),
            xid_events: false,
            ..algalon_core::SamplerOptions::default()
        })
        .expect("core sampler");
        core.sample()
    };
    let gib = |b: Option<u64>| b.expect("memory") as f64 / 1073741824.0;
    for gpu in &expected.gpus {
        let line = format!(
            "GPU {}: {:.0}% util, {:.1}/{:.1} GiB, {:.0} C, {:.0} W",
            gpu.index,
            gpu.gpu_util().expect("util"),
            gib(gpu.memory_used_bytes()),
            gib(gpu.memory_total_bytes()),
            gpu.temperature_c().expect("temperature"),
            gpu.power_w().expect("power"),
        );
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    // And as the scenario file says.
    assert!(
        out.contains("GPU 0: 85% util, 39.1/79.6 GiB, 63 C, 312 W"),
        "{out}"
    );
    assert!(
        out.contains("GPU 1: 10% util, 1.0/15.0 GiB, 41 C, 27 W"),
        "{out}"
    );
    assert!(out.contains("with DCGM_FI_DEV_GPU_UTIL"), "{out}");
    assert!(out.contains("job example: 0.3"), "{out}");
    assert!(out.contains(" J (counter), 312.5 W mean"), "{out}");
    assert!(out.contains(" J (integrated), 27.2 W mean"), "{out}");
}

#[test]
fn cpp_example_with_raii_wrappers() {
    let exe = compile(
        &workspace().join("examples/cpp/gpu_report.cpp"),
        "gpu_report_cpp",
        Link::Shared,
    );
    let out = assert_ok(&exe, &run(&exe, &[], true));
    assert!(
        out.contains("GPU 0 (NVIDIA H100 80GB HBM3): 85% util, 312 W"),
        "{out}"
    );
    assert!(out.contains("job \"cpp-example\""), "{out}");
    assert!(out.contains("total energy:"), "{out}");
}

#[test]
fn c_tests_under_valgrind_are_leak_free() {
    if std::env::var_os("ALGALON_SKIP_VALGRIND").is_some() {
        eprintln!("ALGALON_SKIP_VALGRIND is set: not running valgrind");
        return;
    }
    if Command::new("valgrind").arg("--version").output().is_err() {
        let why = "valgrind is not installed (apt-get install valgrind, or make deps)";
        let required = std::env::var_os("ALGALON_REQUIRE_VALGRIND").is_some_and(|v| v == "1");
        assert!(!required, "{why}");
        eprintln!("{why}: the memcheck run is skipped");
        return;
    }
    let supp = format!("--suppressions={}", c_test("fake-nvml.supp").display());
    let memcheck = [
        "valgrind",
        "-q",
        "--keep-debuginfo=yes",
        supp.as_str(),
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        "--error-exitcode=99",
    ];
    for (source, name) in [
        ("test_api.c", "test_api_memcheck"),
        ("test_threads.c", "test_threads_memcheck"),
    ] {
        let exe = compile(&c_test(source), name, Link::Shared);
        assert_ok(&exe, &run(&exe, &memcheck, true));
    }
}
