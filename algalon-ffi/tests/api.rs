//! The C API called from Rust, against the fake NVML: NULL arguments,
//! buffer sizes, error codes and messages, values against the core's, jobs,
//! threads.

mod common;

use std::ffi::c_char;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use algalon::*;
use common::*;

#[test]
fn version_matches_cargo() {
    // SAFETY: a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(algalon_version()) };
    assert_eq!(v.to_str().expect("utf-8"), env!("CARGO_PKG_VERSION"));
    let cargo = [
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    ];
    let consts = [
        ALGALON_VERSION_MAJOR,
        ALGALON_VERSION_MINOR,
        ALGALON_VERSION_PATCH,
    ];
    for (c, k) in cargo.iter().zip(consts) {
        assert_eq!(c.parse::<u32>().expect("number"), k);
    }
}

#[test]
fn null_arguments_give_null_parameter_and_leave_outs_alone() {
    let _lock = nvml_lock();
    let opts = Options::fake();
    let sampler = Sampler::new(&opts).expect("sampler");
    let snap = sampler.sample();
    let mut n = 777usize;
    let mut sentinel_snap: *mut algalon_snapshot = ptr::dangling_mut();
    let mut sentinel_job: *mut algalon_job = ptr::dangling_mut();
    let mut gpu = std::mem::MaybeUninit::<algalon_gpu_sample>::zeroed();
    let name = cstr("job");
    let mut value = 1.5f64;
    // SAFETY: every non-NULL pointer is live; NULL ones are what is tested.
    unsafe {
        let cases: Vec<(&str, algalon_result)> = vec![
            ("options_new", algalon_options_new(ptr::null_mut())),
            (
                "set_nvml_lib",
                algalon_options_set_nvml_lib(ptr::null_mut(), name.as_ptr()),
            ),
            (
                "set_nvml_lib path",
                algalon_options_set_nvml_lib(opts.0, ptr::null()),
            ),
            (
                "set_devices",
                algalon_options_set_devices(opts.0, ptr::null()),
            ),
            (
                "set_interval",
                algalon_options_set_interval_ms(ptr::null_mut(), 5),
            ),
            ("sampler_new", algalon_sampler_new(opts.0, ptr::null_mut())),
            (
                "sample",
                algalon_sampler_sample(ptr::null(), &mut sentinel_snap),
            ),
            (
                "sample out",
                algalon_sampler_sample(sampler.0, ptr::null_mut()),
            ),
            (
                "latest",
                algalon_sampler_latest(ptr::null(), &mut sentinel_snap),
            ),
            ("gpu_count", algalon_snapshot_gpu_count(ptr::null(), &mut n)),
            (
                "gpu_count out",
                algalon_snapshot_gpu_count(snap.0, ptr::null_mut()),
            ),
            (
                "gpu",
                algalon_snapshot_gpu(ptr::null(), 0, gpu.as_mut_ptr()),
            ),
            ("gpu out", algalon_snapshot_gpu(snap.0, 0, ptr::null_mut())),
            (
                "gpu_field name",
                algalon_snapshot_gpu_field(snap.0, 0, ptr::null(), &mut value),
            ),
            (
                "encode out_n",
                algalon_snapshot_encode(snap.0, ptr::null_mut(), 0, ptr::null_mut()),
            ),
            (
                "encode buf with len",
                algalon_snapshot_encode(snap.0, ptr::null_mut(), 10, &mut n),
            ),
            (
                "encode snapshot",
                algalon_snapshot_encode(ptr::null(), ptr::null_mut(), 0, &mut n),
            ),
            (
                "job_begin sampler",
                algalon_job_begin(ptr::null(), name.as_ptr(), &mut sentinel_job),
            ),
            (
                "job_begin name",
                algalon_job_begin(sampler.0, ptr::null(), &mut sentinel_job),
            ),
            (
                "job_begin out",
                algalon_job_begin(sampler.0, name.as_ptr(), ptr::null_mut()),
            ),
            (
                "job_end",
                algalon_job_end(ptr::null(), &mut std::mem::zeroed()),
            ),
            (
                "job_add_count",
                algalon_job_add_count(ptr::null(), name.as_ptr(), 1.0),
            ),
            (
                "job_table",
                algalon_job_table(ptr::null(), ptr::null_mut(), 0, &mut n),
            ),
            (
                "last_error out_n",
                algalon_last_error(ptr::null_mut(), 0, ptr::null_mut()),
            ),
            (
                "result_message out_n",
                algalon_result_message(0, ptr::null_mut(), 0, ptr::null_mut()),
            ),
        ];
        for (what, r) in cases {
            assert_eq!(r, algalon_result::NullParameter, "{what}");
        }
        // The _free functions accept NULL.
        algalon_options_free(ptr::null_mut());
        algalon_sampler_free(ptr::null_mut());
        algalon_snapshot_free(ptr::null_mut());
        algalon_job_free(ptr::null_mut());
    }
    assert_eq!(n, 777, "out_n written on a NULL-parameter failure");
    assert_eq!(sentinel_snap, ptr::dangling_mut(), "out written on failure");
    assert_eq!(sentinel_job, ptr::dangling_mut(), "out written on failure");
    assert_eq!(value, 1.5);
    let msg = last_error();
    assert!(
        msg.starts_with("algalon_job_table: argument `job` is NULL"),
        "{msg}"
    );
}

#[test]
fn too_small_buffers_get_the_size_and_stay_untouched() {
    let code = algalon_result::NvmlNotFound as u32;
    let text = read_string(|b, l, n| {
        // SAFETY: read_string passes a valid buffer or NULL with 0.
        unsafe { algalon_result_message(code, b, l, n) }
    })
    .expect("message");
    assert_eq!(text, algalon_result::NvmlNotFound.description());

    let mut buf = [0x55 as c_char; 8];
    let mut n = 0usize;
    // SAFETY: buf valid for its length.
    let r = unsafe { algalon_result_message(code, buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!(r, algalon_result::InsufficientSize);
    assert_eq!(n, text.len() + 1, "size needed includes the NUL");
    assert!(buf.iter().all(|&c| c == 0x55), "nothing written to buf");

    // Exactly the size needed works; one less does not.
    let mut exact = vec![0x55 as c_char; text.len() + 1];
    // SAFETY: valid buffers.
    unsafe {
        assert_eq!(
            algalon_result_message(code, exact.as_mut_ptr(), text.len(), &mut n),
            algalon_result::InsufficientSize
        );
        assert_eq!(
            algalon_result_message(code, exact.as_mut_ptr(), exact.len(), &mut n),
            algalon_result::Ok
        );
    }
    assert_eq!(n, text.len());
    assert_eq!(field_str(&exact), text);

    // Unknown codes still describe themselves.
    let unknown = read_string(|b, l, n| {
        // SAFETY: as above.
        unsafe { algalon_result_message(4242, b, l, n) }
    })
    .expect("message");
    assert_eq!(unknown, "unknown algalon_result code 4242");

    // Every code has a one-line description.
    for r in algalon_result::all() {
        let d = read_string(|b, l, n| {
            // SAFETY: as above.
            unsafe { algalon_result_message(*r as u32, b, l, n) }
        })
        .expect("message");
        assert!(!d.is_empty() && !d.contains('\n'), "{r:?}: {d:?}");
    }
}

#[test]
fn last_error_is_per_thread_and_survives_its_own_size_probe() {
    let t = std::thread::spawn(|| {
        assert_eq!(last_error(), "", "a fresh thread has no error");
        let mut p = ptr::null_mut();
        // SAFETY: p valid for a write; NULL devices is the failure tested.
        let r = unsafe {
            assert_eq!(algalon_options_new(&mut p), algalon_result::Ok);
            let r = algalon_options_set_devices(p, cstr(" , ").as_ptr());
            algalon_options_free(p);
            r
        };
        assert_eq!(r, algalon_result::InvalidArgument);
        // A size probe of the message must not replace the message.
        let msg = read_string(|b, l, n| {
            // SAFETY: read_string passes valid buffers.
            unsafe { algalon_last_error(b, l, n) }
        })
        .expect("message");
        assert!(
            msg.starts_with("algalon_options_set_devices: argument `devices`"),
            "{msg}"
        );
        // A call that succeeds leaves it as it was.
        let mut q = ptr::null_mut();
        // SAFETY: q valid for a write.
        unsafe {
            assert_eq!(algalon_options_new(&mut q), algalon_result::Ok);
            algalon_options_free(q);
        }
        assert_eq!(last_error(), msg);
        msg
    });
    let msg = t.join().expect("thread");
    assert!(!msg.is_empty());
    std::thread::spawn(|| assert_eq!(last_error(), ""))
        .join()
        .expect("another thread sees its own (empty) error");
}

#[test]
fn missing_nvml_is_a_clear_code_and_one_line() {
    let _lock = nvml_lock();
    let opts = Options::fake();
    let path = cstr("/nonexistent/libnvidia-ml.so.1");
    // SAFETY: live options, NUL-terminated path.
    unsafe { algalon_options_set_nvml_lib(opts.0, path.as_ptr()) };
    let r = Sampler::new(&opts).map(|_| ()).expect_err("no NVML there");
    assert_eq!(r, algalon_result::NvmlNotFound);
    let msg = last_error();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(
        msg.starts_with("algalon_sampler_new: cannot load the NVIDIA Management Library"),
        "{msg}"
    );
    assert!(msg.contains("/nonexistent/libnvidia-ml.so.1"), "{msg}");
}

#[test]
fn options_errors_map_to_their_codes() {
    let _lock = nvml_lock();
    let opts = Options::fake();
    // SAFETY: live options and NUL-terminated strings throughout.
    unsafe {
        let missing = cstr("/nonexistent/counters.csv");
        assert_eq!(
            algalon_options_set_collectors_file(opts.0, missing.as_ptr()),
            algalon_result::CollectorsIo
        );
        assert!(last_error().contains("/nonexistent/counters.csv"));

        let dir = std::env::temp_dir().join(format!("algalon-ffi-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "DCGM_FI_DEV_GPU_UTIIL, gauge, typo\n").expect("write");
        let bad_c = cstr(bad.to_str().expect("utf-8"));
        assert_eq!(
            algalon_options_set_collectors_file(opts.0, bad_c.as_ptr()),
            algalon_result::CollectorsParse
        );
        let good = dir.join("good.csv");
        std::fs::write(
            &good,
            "DCGM_FI_DEV_GPU_UTIL, gauge, GPU utilization (in %).\n",
        )
        .expect("write");
        let good_c = cstr(good.to_str().expect("utf-8"));
        assert_eq!(
            algalon_options_set_collectors_file(opts.0, good_c.as_ptr()),
            algalon_result::Ok
        );
        std::fs::remove_dir_all(&dir).ok();

        let devices = cstr("7");
        assert_eq!(
            algalon_options_set_devices(opts.0, devices.as_ptr()),
            algalon_result::Ok
        );
    }
    let r = Sampler::new(&opts).map(|_| ()).expect_err("no GPU 7");
    assert_eq!(r, algalon_result::NoSuchDevice);
    assert!(last_error().contains("no GPU matches"), "{}", last_error());

    // The narrowed collectors set exports only GPU_UTIL.
    let devices = cstr("GPU-aaaaaaaa");
    // SAFETY: as above.
    unsafe { algalon_options_set_devices(opts.0, devices.as_ptr()) };
    let sampler = Sampler::new(&opts).expect("T4 by UUID prefix");
    let snap = sampler.sample();
    assert_eq!(snap.gpu_count(), 1);
    assert_eq!(snap.gpu(0).expect("gpu").index, 1);
    let text = read_string(|b, l, n| {
        // SAFETY: live snapshot; valid buffers.
        unsafe { algalon_snapshot_encode(snap.0, b, l, n) }
    })
    .expect("text");
    assert!(text.contains("DCGM_FI_DEV_GPU_UTIL{gpu=\"1\""), "{text}");
    assert!(!text.contains("DCGM_FI_DEV_POWER_USAGE"), "{text}");
}

#[test]
fn readings_equal_the_cores_and_absent_is_flagged() {
    let _lock = nvml_lock();
    let opts = Options::fake();
    let sampler = Sampler::new(&opts).expect("sampler");
    let snap = sampler.sample();
    let mut core = algalon_core::Sampler::new(algalon_core::SamplerOptions {
        nvml_lib: Some(fake_nvml()),
        xid_events: false,
        ..algalon_core::SamplerOptions::default()
    })
    .expect("core sampler");
    let expected = core.sample();
    assert_eq!(snap.gpu_count(), expected.gpus.len());
    assert_eq!(snap.gpu_count(), 2);
    for (i, want) in expected.gpus.iter().enumerate() {
        let got = snap.gpu(i).expect("gpu");
        assert_eq!(got.index, want.index);
        assert!(got.up);
        assert_eq!(field_str(&got.uuid), want.uuid);
        assert_eq!(field_str(&got.name), want.name);
        assert_eq!(field_str(&got.pci_bus_id), want.pci_bus_id);
        assert_eq!(
            got.has_gpu_util.then_some(got.gpu_util_percent),
            want.gpu_util()
        );
        assert_eq!(
            got.has_memory_used.then_some(got.memory_used_bytes),
            want.memory_used_bytes()
        );
        assert_eq!(
            got.has_memory_total.then_some(got.memory_total_bytes),
            want.memory_total_bytes()
        );
        assert_eq!(
            got.has_temperature.then_some(got.temperature_c),
            want.temperature_c()
        );
        assert_eq!(got.has_power.then_some(got.power_w), want.power_w());
        assert_eq!(got.has_energy, want.energy_mj().is_some());
    }
    // The scenario's values, spelled out.
    let h100 = snap.gpu(0).expect("gpu 0");
    assert_eq!(h100.gpu_util_percent, 85.0);
    assert_eq!(h100.memory_used_bytes, 40000 << 20);
    assert_eq!(h100.memory_total_bytes, 81559 << 20);
    assert_eq!(h100.temperature_c, 63.0);
    assert_eq!(h100.power_w, 312.5);
    assert!(h100.has_energy && h100.energy_mj >= 1_000_000);
    assert_eq!((h100.has_minor_number, h100.minor_number), (true, 0));
    assert_eq!((h100.has_sm_clock, h100.sm_clock_mhz), (true, 1755));
    let t4 = snap.gpu(1).expect("gpu 1");
    assert_eq!(t4.power_w, 27.25);
    assert!(!t4.has_energy, "the T4 has no energy counter");
    assert_eq!(t4.energy_mj, 0, "absent values are zeroed, flagged absent");

    // Any catalog field by name.
    let field = |i: usize, name: &str| {
        let name = cstr(name);
        let mut v = -1.0;
        // SAFETY: live snapshot, NUL-terminated name, v valid.
        let r = unsafe { algalon_snapshot_gpu_field(snap.0, i, name.as_ptr(), &mut v) };
        (r, v)
    };
    assert_eq!(
        field(0, "DCGM_FI_DEV_FB_USED"),
        (algalon_result::Ok, 40000.0)
    );
    assert_eq!(
        field(1, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
        (algalon_result::NotAvailable, -1.0)
    );
    assert!(last_error().contains("GPU 1 has no DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"));
    assert_eq!(
        field(0, "DCGM_FI_DEV_GPU_UTIIL"),
        (algalon_result::UnknownField, -1.0)
    );
    assert!(
        last_error().contains("did you mean DCGM_FI_DEV_GPU_UTIL"),
        "{}",
        last_error()
    );
    assert_eq!(
        field(0, "DCGM_FI_DRIVER_VERSION"),
        (algalon_result::InvalidArgument, -1.0)
    );
    assert_eq!(
        field(2, "DCGM_FI_DEV_GPU_UTIL"),
        (algalon_result::OutOfRange, -1.0)
    );
    assert_eq!(snap.gpu(2).map(|_| ()), Err(algalon_result::OutOfRange));

    let driver = read_string(|b, l, n| {
        // SAFETY: live snapshot; valid buffers.
        unsafe { algalon_snapshot_driver_version(snap.0, b, l, n) }
    });
    assert_eq!(driver.as_deref(), Ok("550.54.15"));
    let down = read_string(|b, l, n| {
        // SAFETY: as above.
        unsafe { algalon_snapshot_gpu_down_reason(snap.0, 0, b, l, n) }
    });
    assert_eq!(down, Err(algalon_result::NotAvailable));

    let text = read_string(|b, l, n| {
        // SAFETY: as above.
        unsafe { algalon_snapshot_encode(snap.0, b, l, n) }
    })
    .expect("text");
    let util = text
        .lines()
        .find(|l| l.starts_with("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\""))
        .expect("GPU_UTIL series");
    assert!(util.ends_with(" 85"), "{util}");
    assert!(util.contains("UUID=\"GPU-11111111-2222-3333-4444-555555555550\""));
}

#[test]
fn job_energy_is_the_counter_difference_or_integrated_power() {
    let _lock = nvml_lock();
    let opts = Options::fake();
    let sampler = Sampler::new(&opts).expect("sampler");
    let name = cstr("finetune");
    let mut job = ptr::null_mut();
    // SAFETY: live sampler, valid pointers.
    assert_eq!(
        unsafe { algalon_job_begin(sampler.0, name.as_ptr(), &mut job) },
        algalon_result::Ok
    );
    std::thread::sleep(Duration::from_millis(300));
    let tokens = cstr("tokens");
    // SAFETY: live job.
    assert_eq!(
        unsafe { algalon_job_add_count(job, tokens.as_ptr(), 1000.0) },
        algalon_result::Ok
    );
    // A near miss is refused, not counted apart: the error says what was meant.
    let singular = cstr("token");
    // SAFETY: live job.
    assert_eq!(
        unsafe { algalon_job_add_count(job, singular.as_ptr(), 1.0) },
        algalon_result::InvalidArgument
    );
    let err = last_error();
    assert!(err.contains("did you mean \"tokens\""), "{err}");
    let mut report = std::mem::MaybeUninit::<algalon_job_report>::uninit();
    // SAFETY: live job; report valid for a write.
    assert_eq!(
        unsafe { algalon_job_end(job, report.as_mut_ptr()) },
        algalon_result::Ok
    );
    // SAFETY: written on success.
    let report = unsafe { report.assume_init() };
    assert!(report.duration_s >= 0.3, "{}", report.duration_s);
    assert_eq!(report.gpu_count, 2);
    assert!(report.has_energy);
    let gpu = |i| {
        let mut g = std::mem::MaybeUninit::<algalon_job_gpu_report>::uninit();
        // SAFETY: live job; g valid for a write.
        assert_eq!(
            unsafe { algalon_job_gpu(job, i, g.as_mut_ptr()) },
            algalon_result::Ok
        );
        // SAFETY: written on success.
        unsafe { g.assume_init() }
    };
    let h100 = gpu(0);
    assert_eq!(h100.energy_source, algalon_energy_source::Counter);
    // The fake's counter runs on its own clock; allow for the few ms between
    // a snapshot's timestamp and the energy read.
    let expected = 312.5 * report.duration_s;
    assert!(
        (h100.energy_j - expected).abs() < 0.1 * expected,
        "{} J vs {expected} J",
        h100.energy_j
    );
    let t4 = gpu(1);
    assert_eq!(t4.energy_source, algalon_energy_source::Integrated);
    assert!((t4.energy_j - 27.25 * report.duration_s).abs() < 1e-6);
    assert!((report.energy_j - (h100.energy_j + t4.energy_j)).abs() < 1e-9);
    assert_eq!(
        (t4.samples, t4.has_util, t4.util_mean_percent),
        (2, true, 10.0)
    );

    let table = read_string(|b, l, n| {
        // SAFETY: live job; valid buffers.
        unsafe { algalon_job_table(job, b, l, n) }
    })
    .expect("table");
    assert!(table.contains("job \"finetune\""), "{table}");
    assert!(table.contains("J per tokens"), "{table}");

    // SAFETY: live job throughout.
    unsafe {
        let mut again = std::mem::MaybeUninit::<algalon_job_report>::uninit();
        assert_eq!(
            algalon_job_end(job, again.as_mut_ptr()),
            algalon_result::AlreadyEnded
        );
        assert_eq!(
            algalon_job_add_count(job, tokens.as_ptr(), 1.0),
            algalon_result::AlreadyEnded
        );
        let mut g = std::mem::MaybeUninit::<algalon_job_gpu_report>::uninit();
        assert_eq!(
            algalon_job_gpu(job, 2, g.as_mut_ptr()),
            algalon_result::OutOfRange
        );
        algalon_job_free(job);
    }
    // A job may outlive its sampler; an unended job is closed by free.
    let mut open = ptr::null_mut();
    // SAFETY: live sampler.
    unsafe { algalon_job_begin(sampler.0, name.as_ptr(), &mut open) };
    drop(sampler);
    let mut r = std::mem::MaybeUninit::<algalon_job_report>::uninit();
    // SAFETY: live job.
    unsafe {
        assert_eq!(algalon_job_end(open, r.as_mut_ptr()), algalon_result::Ok);
        algalon_job_free(open);
    }
}

#[test]
fn background_sampling_feeds_jobs_and_latest() {
    let _lock = nvml_lock();
    let opts = Options::fake();
    // SAFETY: live options.
    unsafe { algalon_options_set_interval_ms(opts.0, 20) };
    let sampler = Sampler::new(&opts).expect("sampler");
    let name = cstr("bg");
    let mut job = ptr::null_mut();
    // SAFETY: live sampler.
    unsafe { algalon_job_begin(sampler.0, name.as_ptr(), &mut job) };
    std::thread::sleep(Duration::from_millis(250));
    let latest = |s: &Sampler| {
        let mut p = ptr::null_mut();
        // SAFETY: live sampler.
        assert_eq!(
            unsafe { algalon_sampler_latest(s.0, &mut p) },
            algalon_result::Ok
        );
        Snapshot(p)
    };
    let seq = latest(&sampler).seq();
    assert!(seq >= 5, "the background thread samples (seq {seq})");
    let mut report = std::mem::MaybeUninit::<algalon_job_report>::uninit();
    let mut g = std::mem::MaybeUninit::<algalon_job_gpu_report>::uninit();
    // SAFETY: live job.
    unsafe {
        assert_eq!(
            algalon_job_end(job, report.as_mut_ptr()),
            algalon_result::Ok
        );
        assert_eq!(algalon_job_gpu(job, 0, g.as_mut_ptr()), algalon_result::Ok);
        algalon_job_free(job);
    }
    // SAFETY: written on success.
    let g = unsafe { g.assume_init() };
    assert!(
        g.samples >= 5,
        "background samples reach the job: {}",
        g.samples
    );
}

#[test]
fn many_threads_share_one_sampler() {
    let _lock = nvml_lock();
    let opts = Options::fake();
    let sampler = Arc::new(Sampler::new(&opts).expect("sampler"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let sampler = Arc::clone(&sampler);
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for k in 0..15 {
                    let snap = sampler.sample();
                    assert_eq!(snap.gpu_count(), 2);
                    assert_eq!(snap.gpu(0).expect("gpu").gpu_util_percent, 85.0);
                    seqs.push(snap.seq());
                    if k % 5 == t % 5 {
                        let name = cstr(&format!("t{t}k{k}"));
                        let mut job = ptr::null_mut();
                        let mut r = std::mem::MaybeUninit::<algalon_job_report>::uninit();
                        // SAFETY: live sampler and job.
                        unsafe {
                            assert_eq!(
                                algalon_job_begin(sampler.0, name.as_ptr(), &mut job),
                                algalon_result::Ok
                            );
                            assert_eq!(algalon_job_end(job, r.as_mut_ptr()), algalon_result::Ok);
                            algalon_job_free(job);
                        }
                    }
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("no panic"))
        .collect();
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "every sample has its own sequence number");
}

#[test]
fn jobs_follow_cuda_visible_devices_and_report_json_with_own_processes() {
    let _lock = nvml_lock();
    let opts = Options::fake();
    let visible = cstr("1,,0"); // CUDA stops at the empty entry: GPU 1 alone
    // SAFETY: live options, NUL-terminated strings.
    unsafe {
        assert_eq!(
            algalon_options_set_visible_devices(opts.0, visible.as_ptr()),
            algalon_result::Ok
        );
        assert_eq!(
            algalon_options_set_processes(opts.0, true),
            algalon_result::Ok
        );
    }
    let sampler = Sampler::new(&opts).expect("sampler");
    // The sampler still reads both GPUs; the job covers the visible one.
    assert_eq!(sampler.sample().gpu_count(), 2);
    let name = cstr("visible");
    let mut job = ptr::null_mut();
    let mut report = std::mem::MaybeUninit::<algalon_job_report>::uninit();
    let mut g = std::mem::MaybeUninit::<algalon_job_gpu_report>::uninit();
    // SAFETY: live handles, valid pointers.
    let (totals, t4) = unsafe {
        assert_eq!(
            algalon_job_begin(sampler.0, name.as_ptr(), &mut job),
            algalon_result::Ok
        );
        assert_eq!(algalon_job_add_pid(job, 4242), algalon_result::Ok);
        assert_eq!(
            algalon_job_end(job, report.as_mut_ptr()),
            algalon_result::Ok
        );
        assert_eq!(algalon_job_add_pid(job, 1), algalon_result::AlreadyEnded);
        assert_eq!(algalon_job_gpu(job, 0, g.as_mut_ptr()), algalon_result::Ok);
        (report.assume_init(), g.assume_init())
    };
    assert_eq!(totals.gpu_count, 1);
    assert_eq!((t4.index, t4.has_cuda_index, t4.cuda_index), (1, true, 0));
    assert!(!t4.was_down);
    let json = read_string(|b, l, n| {
        // SAFETY: live job; read_string passes valid buffers.
        unsafe { algalon_job_report_json(job, b, l, n) }
    })
    .expect("json");
    let parsed = algalon_core::jobs::JobReport::from_json(&json).expect("the core's schema");
    assert_eq!(parsed.name, "visible");
    assert!(!parsed.running && parsed.interrupted.is_none());
    assert_eq!(parsed.gpus.len(), 1);
    assert_eq!(parsed.gpus[0].cuda_index, Some(0));
    assert!(json.contains("\"schema\":4"), "{json}");
    // The job's globally unique id, the job_id its series would carry.
    let id = parsed.id.as_str();
    assert_eq!((id.len(), id.matches('-').count()), (36, 4), "a UUID: {id}");
    assert!(json.contains(&format!("\"id\":\"{id}\"")), "{json}");
    // SAFETY: live job, freed once.
    unsafe { algalon_job_free(job) };

    // Own-process memory: PID 4242 holds memory on the H100.
    let both = cstr("0");
    // SAFETY: as above.
    unsafe { algalon_options_set_visible_devices(opts.0, both.as_ptr()) };
    let sampler = Sampler::new(&opts).expect("sampler");
    let mut job = ptr::null_mut();
    // SAFETY: as above.
    let h100 = unsafe {
        assert_eq!(
            algalon_job_begin(sampler.0, name.as_ptr(), &mut job),
            algalon_result::Ok
        );
        assert_eq!(algalon_job_add_pid(job, 4242), algalon_result::Ok);
        sampler.sample();
        assert_eq!(
            algalon_job_end(job, report.as_mut_ptr()),
            algalon_result::Ok
        );
        assert_eq!(algalon_job_gpu(job, 0, g.as_mut_ptr()), algalon_result::Ok);
        algalon_job_free(job);
        g.assume_init()
    };
    assert_eq!((h100.index, h100.cuda_index), (0, 0));
    assert!(h100.has_process_memory_peak && h100.process_memory_peak_bytes > 0);

    // An entry that matches no GPU fails the sampler, naming the variable.
    let bad = cstr("7");
    // SAFETY: as above.
    unsafe { algalon_options_set_visible_devices(opts.0, bad.as_ptr()) };
    assert_eq!(
        Sampler::new(&opts).map(|_| ()).expect_err("no GPU 7"),
        algalon_result::NoSuchDevice
    );
    assert!(
        last_error().contains("CUDA_VISIBLE_DEVICES entry \"7\""),
        "{}",
        last_error()
    );
}
