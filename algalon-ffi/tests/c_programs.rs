//! Compiles the C and C++ programs against `include/algalon.h` and the
//! library cargo just built (`libalgalon.so` and `libalgalon.a`), with
//! `-Wall -Wextra -Werror`, and runs them against the fake NVML:
//! `tests/c/test_*.c` (`test_mig.c`: a job on a MIG device), `tests/c/test_header.cpp`, `examples/c/gpu_report.c`
//! and `examples/cpp/gpu_report.cpp`.
//!
//! Two memory checkers then run the C tests again, each must find nothing:
//!
//! * valgrind memcheck (no definite leaks, no invalid accesses);
//!   `ALGALON_SKIP_VALGRIND=1` skips it, `ALGALON_REQUIRE_VALGRIND=1` (set by
//!   the Makefile) makes a missing valgrind a failure.
//! * AddressSanitizer + UndefinedBehaviorSanitizer (`gcc -fsanitize=address,
//!   undefined`, LeakSanitizer on). The Rust library is not instrumented, but
//!   it allocates with the system allocator and copies into C buffers with
//!   `memcpy`, which ASan intercepts: LeakSanitizer sees what libalgalon
//!   leaks and ASan sees it write past a C buffer. Two canaries, built to
//!   leak (`leak_canary.c`) and to overflow (`overflow_canary.c`), must be
//!   caught, so a clean run means something. `ALGALON_SKIP_ASAN=1` skips
//!   this, `ALGALON_REQUIRE_ASAN=1` (set by `algalon-ffi/ffi.mk`) makes a
//!   gcc without a working libasan a failure.

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
const RUN_LIMIT_S: &str = "300";
/// Added to the compiler flags for the sanitizer builds.
const SANITIZE_FLAGS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=all",
];
/// Exit code of a program in which ASan or LeakSanitizer found something.
const ASAN_EXIT: i32 = 97;

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
    /// Shared, compiled with AddressSanitizer and UBSan.
    Sanitized,
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
    cmd.args(flags);
    if link == Link::Sanitized {
        cmd.args(SANITIZE_FLAGS);
    }
    cmd.arg("-I")
        .arg(workspace().join("algalon-ffi/include"))
        .arg("-I")
        .arg(workspace().join("algalon-ffi/tests/c"))
        .arg(source)
        .arg("-o")
        .arg(&exe);
    match link {
        Link::Shared | Link::Sanitized => {
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
    let scenario = scenario.then(constant_scenario);
    run_with(program, wrapper, scenario.as_deref(), &[])
}

/// Runs `program` with the fake NVML, `scenario` (none: NVML refuses to
/// initialise) and extra environment `env`, bounded by `timeout(1)`.
fn run_with(
    program: &Path,
    wrapper: &[&str],
    scenario: Option<&Path>,
    env: &[(&str, String)],
) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", RUN_LIMIT_S])
        .args(wrapper)
        .arg(program)
        .env("ALGALON_NVML_LIB", fake_nvml())
        .env("LD_LIBRARY_PATH", lib_dir());
    match scenario {
        Some(path) => cmd.env("ALGALON_FAKE_NVML_SCENARIO", path),
        None => cmd.env_remove("ALGALON_FAKE_NVML_SCENARIO"),
    };
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the test program")
}

/// The fake NVML scenario in which GPU 0 is lost at t = 3 s.
fn gpu_lost_scenario() -> PathBuf {
    c_test("gpu-lost.json")
}

/// The H100 MIG scenario as a template for `test_mig.c`: a process with the
/// placeholder PID 999999999 (the program puts its own there) on GPU 1's
/// 3g.40gb instance (GI 2), beside vllm.
fn mig_scenario() -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("testing/scenarios/h100-mig.json"))
        .expect("h100-mig.json");
    let vllm = text.find("\"pid\": 6201").expect("GPU 1's vllm");
    let object = text[..vllm].rfind('{').expect("its object");
    let own = "{\"pid\": 999999999, \"name\": \"test_mig\", \"type\": \"compute\", \
               \"used_mib\": 2048, \"gpu_instance_id\": 2, \"compute_instance_id\": 0}, ";
    let path = out_dir().join("h100-mig-own.json");
    std::fs::write(
        &path,
        format!("{}{own}{}", &text[..object], &text[object..]),
    )
    .expect("write the MIG scenario");
    path
}

/// The C test programs: (source, scenario or `None` for an NVML that fails
/// to initialise).
fn c_tests() -> Vec<(&'static str, Option<PathBuf>)> {
    vec![
        ("test_api.c", Some(constant_scenario())),
        ("test_errors.c", None),
        ("test_threads.c", Some(constant_scenario())),
        ("test_lifecycle.c", Some(constant_scenario())),
        ("test_races.c", Some(constant_scenario())),
        ("test_gpu_lost.c", Some(gpu_lost_scenario())),
        ("test_mig.c", Some(mig_scenario())),
    ]
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
fn c_null_arguments_size_probes_and_free_orders() {
    let exe = compile(&c_test("test_lifecycle.c"), "test_lifecycle", Link::Shared);
    let out = assert_ok(&exe, &run(&exe, &[], true));
    assert!(out.contains("test_lifecycle: ok"), "{out}");
    // Unusable NVML libraries are told apart, each in one line.
    assert!(
        out.contains("nvml lib \"libm.so.6\": 100: ") && out.contains("is not an NVML library"),
        "{out}"
    );
    assert!(out.contains("nvml lib \"/dev/null\": 100: "), "{out}");
}

#[test]
fn c_races_between_threads() {
    let exe = compile(&c_test("test_races.c"), "test_races", Link::Shared);
    let out = assert_ok(&exe, &run(&exe, &[], true));
    assert!(out.contains("test_races: ok"), "{out}");
}

#[test]
fn c_gpu_lost_in_the_middle_of_a_job() {
    let exe = compile(&c_test("test_gpu_lost.c"), "test_gpu_lost", Link::Shared);
    let scenario = gpu_lost_scenario();
    let out = assert_ok(&exe, &run_with(&exe, &[], Some(&scenario), &[]));
    assert!(out.contains("test_gpu_lost: ok"), "{out}");
    assert!(out.contains("GPU 0 down: "), "{out}");
    assert!(out.contains("job \"survives\""), "{out}");
}

#[test]
fn c_job_on_a_mig_device() {
    let exe = compile(&c_test("test_mig.c"), "test_mig", Link::Shared);
    let scenario = mig_scenario();
    let out = assert_ok(&exe, &run_with(&exe, &[], Some(&scenario), &[]));
    assert!(out.contains("test_mig: ok"), "{out}");
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
    // With the counter, mean power is energy over the duration: 312.5 W as
    // the scenario says, give or take the sample timestamps' jitter.
    let counter_w: f64 = out
        .lines()
        .find_map(|l| l.split(" J (counter), ").nth(1))
        .and_then(|rest| rest.strip_suffix(" W mean"))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no counter line in:\n{out}"));
    assert!((counter_w - 312.5).abs() <= 312.5 * 0.01, "{out}");
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
        // The fake NVML's statics are allocated deep inside it (parking_lot's
        // table under nvmlInit_v2 is 14 frames down): the suppression can
        // only name the fake's frames if the stacks reach them.
        "--num-callers=50",
        supp.as_str(),
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        "--error-exitcode=99",
    ];
    for (source, scenario) in c_tests() {
        let name = format!("{}_memcheck", source.trim_end_matches(".c"));
        let exe = compile(&c_test(source), &name, Link::Shared);
        assert_ok(&exe, &run_with(&exe, &memcheck, scenario.as_deref(), &[]));
    }
}

/// Whether gcc can build and run an AddressSanitizer program here.
fn asan_works() -> Result<(), String> {
    let dir = out_dir();
    let src = dir.join("asan_probe.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").expect("write probe");
    let exe = dir.join("asan_probe");
    let built = Command::new("gcc")
        .args(SANITIZE_FLAGS)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| format!("cannot run gcc: {e}"))?;
    if !built.status.success() {
        return Err(format!(
            "gcc -fsanitize=address,undefined fails (install libasan and libubsan, e.g. apt-get install gcc): {}",
            String::from_utf8_lossy(&built.stderr).trim()
        ));
    }
    let ran = Command::new(&exe)
        .output()
        .map_err(|e| format!("cannot run an ASan program: {e}"))?;
    if !ran.status.success() {
        return Err(format!(
            "an empty ASan program fails here (ptrace or personality restrictions?): {}",
            String::from_utf8_lossy(&ran.stderr).trim()
        ));
    }
    Ok(())
}

/// Environment for an ASan run. The fake NVML is preloaded (after the ASan
/// runtime, which must come first): libalgalon dlcloses NVML at shutdown,
/// and the fake keeps its device table in statics, which LeakSanitizer
/// would report as leaks of an unloaded library it cannot name (valgrind
/// gets a suppression for the same reason). Preloaded, the library stays
/// mapped and its statics reachable; everything libalgalon allocates is
/// still checked (see `leak_canary.c`).
fn asan_env() -> Vec<(&'static str, String)> {
    let runtime = Command::new("gcc")
        .arg("-print-file-name=libasan.so")
        .output()
        .expect("gcc -print-file-name");
    let runtime = String::from_utf8_lossy(&runtime.stdout).trim().to_owned();
    vec![
        ("LD_PRELOAD", format!("{runtime}:{}", fake_nvml().display())),
        (
            "ASAN_OPTIONS",
            format!(
                "detect_leaks=1:fast_unwind_on_malloc=0:halt_on_error=1:exitcode={ASAN_EXIT}:detect_stack_use_after_return=1:strict_string_checks=1"
            ),
        ),
        (
            "UBSAN_OPTIONS",
            "print_stacktrace=1:halt_on_error=1".to_owned(),
        ),
    ]
}

#[test]
fn c_tests_under_address_sanitizer_are_clean() {
    if std::env::var_os("ALGALON_SKIP_ASAN").is_some() {
        eprintln!("ALGALON_SKIP_ASAN is set: not running AddressSanitizer");
        return;
    }
    if let Err(why) = asan_works() {
        let required = std::env::var_os("ALGALON_REQUIRE_ASAN").is_some_and(|v| v == "1");
        assert!(!required, "{why}");
        eprintln!("{why}: the AddressSanitizer run is skipped");
        return;
    }
    let env = asan_env();
    let mut programs: Vec<(PathBuf, String, Option<PathBuf>)> = c_tests()
        .into_iter()
        .map(|(source, scenario)| {
            let name = format!("{}_asan", source.trim_end_matches(".c"));
            (c_test(source), name, scenario)
        })
        .collect();
    programs.push((
        c_test("test_header.cpp"),
        "test_header_asan".into(),
        Some(constant_scenario()),
    ));
    programs.push((
        workspace().join("examples/c/gpu_report.c"),
        "gpu_report_asan".into(),
        Some(constant_scenario()),
    ));
    programs.push((
        workspace().join("examples/cpp/gpu_report.cpp"),
        "gpu_report_cpp_asan".into(),
        Some(constant_scenario()),
    ));
    for (source, name, scenario) in programs {
        let exe = compile(&source, &name, Link::Sanitized);
        assert_ok(&exe, &run_with(&exe, &[], scenario.as_deref(), &env));
    }

    // The canaries: a leak of a Rust allocation and a write past a C buffer
    // by the library must both be reported, naming the function.
    let scenario = constant_scenario();
    let exe = compile(&c_test("leak_canary.c"), "leak_canary", Link::Sanitized);
    let out = run_with(&exe, &[], Some(&scenario), &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(ASAN_EXIT),
        "leak not caught:\n{stderr}"
    );
    assert!(
        stderr.contains("LeakSanitizer: detected memory leaks")
            && stderr.contains("algalon_sampler_sample"),
        "{stderr}"
    );
    let exe = compile(
        &c_test("overflow_canary.c"),
        "overflow_canary",
        Link::Sanitized,
    );
    let out = run_with(&exe, &[], Some(&scenario), &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(ASAN_EXIT),
        "overflow not caught:\n{stderr}"
    );
    assert!(
        stderr.contains("heap-buffer-overflow") && stderr.contains("algalon_snapshot_encode"),
        "{stderr}"
    );
}
