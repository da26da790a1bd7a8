//! `JobSession`, the job model the Python and C faces wrap, over the fake
//! NVML: the process's CUDA view, boundary samples, own processes, rules for
//! names and labels, GPUs that go down in a window, foreground and
//! background sampling.

mod common;

use std::time::Duration;

use algalon_core::devices::Selector;
use algalon_core::jobs::{GpuChoice, JobError, JobSession, JobSpec, SessionOptions};
use algalon_core::{Error, Sampler, SamplerOptions};
use common::{options, scenario, with_scenario, workspace};

const H100: &str = "GPU-11111111-2222-3333-4444-555555555550";
const T4: &str = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee1";

fn session_options(visible: Option<&str>) -> SessionOptions {
    let mut opts = SessionOptions::new(SamplerOptions {
        processes: true,
        xid_events: false,
        ..options()
    });
    opts.visible_devices = visible.map(str::to_owned);
    // Not under torchrun, whatever the environment running the tests says.
    opts.local_rank = None;
    opts
}

#[test]
fn under_torchrun_the_default_is_the_local_rank_gpu() {
    with_scenario(&scenario("constant"), Some(5.0), || {
        let rank = |visible: Option<&str>, local_rank: u32, gpus: GpuChoice| {
            let mut opts = session_options(visible);
            opts.local_rank = Some(local_rank);
            opts.gpus = gpus;
            JobSession::new(opts).expect("session").measured().to_vec()
        };
        // Both GPUs visible: rank 1 measures cuda:1 only.
        assert_eq!(rank(None, 1, GpuChoice::Visible), [T4]);
        assert_eq!(rank(Some("1,0"), 1, GpuChoice::Visible), [H100]);
        // One GPU per rank through CUDA_VISIBLE_DEVICES: that one.
        assert_eq!(rank(Some("0"), 1, GpuChoice::Visible), [H100]);
        // A rank beyond the visible GPUs measures them all.
        assert_eq!(rank(None, 7, GpuChoice::Visible), [H100, T4]);
        // A choice made by the caller stands.
        assert_eq!(
            rank(None, 1, GpuChoice::Selected(vec![Selector::Cuda(0)])),
            [H100]
        );
    });
}

fn job(name: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        ..JobSpec::default()
    }
}

#[test]
fn a_foreground_job_has_boundary_samples_cuda_indices_and_own_processes() {
    with_scenario(&scenario("constant"), Some(5.0), || {
        let session = JobSession::new(session_options(Some("1,0"))).expect("session");
        assert_eq!(session.measured(), [T4, H100]);
        let id = session
            .begin(JobSpec {
                name: "train".into(),
                labels: [("team".to_owned(), "nlp".to_owned())].into(),
                pids: vec![4242],
            })
            .expect("begins");
        session.count(id, "tokens", 10.0).expect("open");
        std::thread::sleep(Duration::from_millis(150));
        let report = session.end(id, None).expect("ends");
        assert_eq!(report.hostname, "test-host");
        assert_eq!(report.labels["team"], "nlp");
        assert!(!report.running && report.interrupted.is_none());
        // No thread: the two boundary samples are the job's samples.
        assert!(report.gpus.iter().all(|g| g.samples == 2), "{report:?}");
        let cuda: Vec<(&str, Option<u32>)> = report
            .gpus_in_cuda_order()
            .iter()
            .map(|g| (g.uuid.as_str(), g.cuda_index))
            .collect();
        assert_eq!(cuda, [(T4, Some(0)), (H100, Some(1))]);
        let h100 = report.gpus.iter().find(|g| g.uuid == H100).expect("h100");
        assert!(h100.process_memory_peak_bytes.is_some_and(|b| b > 0));
        assert_eq!(
            session.count(id, "tokens", 1.0),
            Err(JobError::NotOpen(id.0))
        );
        session.close(Duration::from_secs(1));
        assert_eq!(session.begin(job("late")).err(), Some(JobError::Closed));
    });
}

#[test]
fn names_labels_and_selection_are_checked_in_one_place() {
    with_scenario(&scenario("constant"), Some(5.0), || {
        let mut opts = session_options(None);
        opts.gpus = GpuChoice::Selected(vec![Selector::Cuda(1)]);
        let session = JobSession::new(opts).expect("session");
        assert_eq!(session.measured(), [T4]);
        assert!(matches!(
            session.begin(job("  ")),
            Err(JobError::Invalid(_))
        ));
        let err = session
            .begin(JobSpec {
                name: "x".into(),
                labels: [("instance".to_owned(), "a".to_owned())].into(),
                ..JobSpec::default()
            })
            .expect_err("reserved");
        assert!(err.to_string().contains("reserved"), "{err}");

        // Nothing left to measure says why.
        let err = JobSession::new(session_options(Some(""))).expect_err("hidden");
        assert!(err.to_string().contains("hides every GPU"), "{err}");
        let err = JobSession::new(session_options(Some("7"))).expect_err("no GPU 7");
        assert!(matches!(err, Error::NoSuchDevice { .. }), "{err}");
        assert!(
            err.to_string().contains("CUDA_VISIBLE_DEVICES entry \"7\""),
            "{err}"
        );

        // The sampler mode (the C face): every sampled GPU, visible ones measured.
        let mut opts = session_options(Some("1"));
        opts.gpus = GpuChoice::Sampled;
        opts.interval = Some(Duration::from_millis(20));
        let session = JobSession::new(opts).expect("sampled");
        assert_eq!(session.latest().expect("open").gpus.len(), 2);
        assert_eq!(session.measured(), [T4]);
        let id = session.begin(job("bg")).expect("begins");
        std::thread::sleep(Duration::from_millis(200));
        let running = session.peek(id).expect("open");
        assert!(
            running.running && running.gpus[0].samples > 2,
            "{running:?}"
        );
        assert_eq!(
            session
                .end(id, Some("KeyboardInterrupt"))
                .expect("ends")
                .interrupted
                .as_deref(),
            Some("KeyboardInterrupt")
        );
    });
}

#[test]
fn the_sampler_takes_cuda_indices_through_cuda_visible_devices() {
    with_scenario(&scenario("constant"), Some(5.0), || {
        // SAFETY: with_scenario holds the lock every env-touching test takes.
        unsafe { std::env::set_var("CUDA_VISIBLE_DEVICES", "1,0") };
        let picked = Sampler::new(SamplerOptions {
            devices: Some(vec!["cuda:1".into()]),
            ..options()
        })
        .map(|s| s.gpu_indices());
        let bad = Sampler::new(SamplerOptions {
            devices: Some(vec!["cuda:5".into()]),
            ..options()
        })
        .map(|s| s.gpu_indices());
        // SAFETY: as above.
        unsafe { std::env::remove_var("CUDA_VISIBLE_DEVICES") };
        assert_eq!(picked.expect("cuda:1 is GPU 0"), vec![0]);
        let err = bad.expect_err("no cuda:5").to_string();
        assert!(
            err.contains("CUDA index 5") && err.contains("cuda:1 = GPU 0"),
            "{err}"
        );
    });
}

#[test]
fn a_gpu_that_goes_down_in_a_window_is_in_its_report() {
    let clock = tempfile::NamedTempFile::new().expect("clock file");
    std::fs::write(clock.path(), "1").expect("write clock");
    let lost = workspace().join("algalon-ffi/tests/c/gpu-lost.json");
    with_scenario(&lost, None, || {
        // SAFETY: with_scenario holds the lock every env-touching test takes.
        unsafe { std::env::set_var("ALGALON_FAKE_NVML_CLOCK_FILE", clock.path()) };
        let session = JobSession::new(session_options(None)).expect("session");
        let id = session.begin(job("doomed")).expect("begins");
        std::fs::write(clock.path(), "5").expect("step the clock past the loss");
        session.sample();
        let result = session.end(id, None).expect("ends");
        drop(session);
        // SAFETY: as above.
        unsafe { std::env::remove_var("ALGALON_FAKE_NVML_CLOCK_FILE") };
        let h100 = result.gpus.iter().find(|g| g.uuid == H100).expect("h100");
        let t4 = result.gpus.iter().find(|g| g.uuid == T4).expect("t4");
        assert!(h100.down_reason.is_some(), "{h100:?}");
        assert!(
            h100.note()
                .expect("note")
                .contains("down during the window"),
            "{h100:?}"
        );
        assert_eq!(t4.down_reason, None);
    });
}
