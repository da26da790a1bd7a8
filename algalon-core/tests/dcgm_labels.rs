//! Series as dcgm-exporter 4.x renders them, option by option: the XID
//! labels, the host label's two spellings, the 1.x namespace, dashes in
//! model names, HPC job labels and the windowed count series. Each expected
//! line is written out as dcgm-exporter's render template
//! (`testing/upstream/dcgm-exporter/render_metrics.go`) would print it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use algalon_core::windows::EventWindows;
use algalon_core::{
    CollectorConfig, Encoder, Extras, Field, Format, GpuSample, HostLabel, LabelStyle, Snapshot,
    Value,
};

fn gpu(index: u32, uuid: &str, xid: u64) -> GpuSample {
    let mut g = GpuSample::new(
        index,
        uuid.into(),
        format!("00000000:{:02X}:00.0", 0x18 + index),
        "NVIDIA H100 80GB  HBM3".into(),
    );
    g.minor_number = Some(index);
    g.set(Field::XidErrors, Some(Value::Int(xid)));
    g.set(Field::SmClock, Some(Value::Int(1980)));
    g.set(Field::GpuUtil, Some(Value::Int(85)));
    g.set(Field::ClockThrottleReasons, Some(Value::Int(0x4 | 0x40)));
    g.labels.insert(Field::DriverVersion, "550.54.15".into());
    g.labels.insert(Field::Serial, "1654922012345".into());
    g
}

fn snapshot(gpus: Vec<GpuSample>) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        hostname: "w1".into(),
        driver_version: None,
        nvml_version: None,
        cuda_driver_version: None,
        taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
        duration: Duration::ZERO,
        seq: 1,
        gpus,
        errors: Vec::new(),
    })
}

fn csv(text: &str) -> CollectorConfig {
    CollectorConfig::parse(text, "test.csv").expect("CSV parses")
}

fn lines_of<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .collect()
}

const ID: &str = r#"gpu="0",UUID="GPU-a",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB  HBM3",Hostname="w1""#;

#[test]
fn xid_errors_carry_err_code_and_err_msg_after_the_label_fields() {
    let config = csv("DCGM_FI_DEV_XID_ERRORS, gauge, last XID\n\
         DCGM_FI_DRIVER_VERSION, label, driver\n\
         DCGM_FI_DEV_SERIAL, label, serial\n");
    let snap = snapshot(vec![gpu(0, "GPU-a", 79), gpu(1, "GPU-b", 100_000)]);
    let text = Encoder::new(config).encode(&snap, Format::PrometheusText);
    let xid = lines_of(&text, "DCGM_FI_DEV_XID_ERRORS");
    assert_eq!(
        xid[0],
        format!(
            r#"DCGM_FI_DEV_XID_ERRORS{{{ID},DCGM_FI_DEV_SERIAL="1654922012345",DCGM_FI_DRIVER_VERSION="550.54.15",err_code="79",err_msg="GPU has fallen off the bus"}} 79"#
        )
    );
    assert!(
        xid[1].contains(r#"err_code="100000",err_msg="Unknown Error"} 100000"#),
        "{}",
        xid[1]
    );
}

#[test]
fn host_label_spellings_old_namespace_and_model_name_dashes() {
    let config = csv("DCGM_FI_DEV_GPU_UTIL, gauge, util\n");
    let snap = snapshot(vec![gpu(0, "GPU-a", 0)]);
    let render = |style: LabelStyle| {
        Encoder::new(config.clone())
            .with_label_style(style)
            .encode(&snap, Format::PrometheusText)
    };
    let util = |text: &str| lines_of(text, "DCGM_FI_DEV_GPU_UTIL")[0].to_owned();

    let lower = render(LabelStyle {
        hostname: HostLabel::Lowercase,
        ..LabelStyle::default()
    });
    assert!(util(&lower).ends_with(r#"modelName="NVIDIA H100 80GB  HBM3",hostname="w1"} 85"#));

    let old = render(LabelStyle {
        hostname: HostLabel::Off,
        old_namespace: true,
        replace_blanks_in_model_name: true,
    });
    assert_eq!(
        util(&old),
        r#"DCGM_FI_DEV_GPU_UTIL{gpu="0",uuid="GPU-a",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA-H100-80GB-HBM3"} 85"#
    );
}

#[test]
fn the_1x_csv_serves_dcgm_names_as_its_rows_spell_them() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testing/upstream/dcgm-exporter/1.x-compatibility-metrics.csv");
    let config = CollectorConfig::from_path(path).expect("NVIDIA's 1.x CSV loads");
    let snap = snapshot(vec![gpu(0, "GPU-a", 0)]);
    let text = Encoder::new(config)
        .with_label_style(LabelStyle {
            old_namespace: true,
            ..LabelStyle::default()
        })
        .encode(&snap, Format::PrometheusText);
    assert!(text.contains("# TYPE dcgm_sm_clock gauge"), "{text}");
    assert!(
        text.contains(r#"dcgm_sm_clock{gpu="0",uuid="GPU-a","#),
        "{text}"
    );
    assert!(text.contains(r#"dcgm_gpu_utilization{gpu="0",uuid="GPU-a""#));
    assert!(text.contains(r#"err_msg="No Error"} 0"#), "{text}");
    assert!(!text.contains("DCGM_FI_DEV_SM_CLOCK"), "{text}");
}

#[test]
fn hpc_jobs_repeat_each_series_of_their_gpu_with_hpc_job() {
    let config = csv("DCGM_FI_DEV_GPU_UTIL, gauge, util\nDCGM_FI_DEV_XID_ERRORS, gauge, xid\n");
    let snap = snapshot(vec![gpu(0, "GPU-a", 0), gpu(1, "GPU-b", 0)]);
    let extras = Arc::new(Extras {
        hpc_jobs: BTreeMap::from([(0, vec!["job1".to_owned(), "job2".to_owned()])]),
        ..Extras::default()
    });
    let text = Encoder::new(config).encode_with(&snap, Format::PrometheusText, &extras);
    let util = lines_of(&text, "DCGM_FI_DEV_GPU_UTIL");
    assert_eq!(
        util,
        [
            format!(r#"DCGM_FI_DEV_GPU_UTIL{{{ID},hpc_job="job1"}} 85"#).as_str(),
            &format!(r#"DCGM_FI_DEV_GPU_UTIL{{{ID},hpc_job="job2"}} 85"#),
            r#"DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b",pci_bus_id="00000000:19:00.0",device="nvidia1",modelName="NVIDIA H100 80GB  HBM3",Hostname="w1"} 85"#,
        ]
    );
    let xid = lines_of(&text, "DCGM_FI_DEV_XID_ERRORS");
    assert!(
        xid[1].ends_with(r#"err_code="0",err_msg="No Error",hpc_job="job2"} 0"#),
        "{}",
        xid[1]
    );
}

#[test]
fn attached_label_sets_repeat_each_series_sorted_among_the_attributes() {
    // What --kubernetes --kubernetes-virtual-gpus attaches for a GPU shared
    // by two pods, combined with an HPC job: one series per (job, pod), the
    // attributes sorted by name as dcgm-exporter's template writes its map.
    let config = csv("DCGM_FI_DEV_GPU_UTIL, gauge, util\nDCGM_FI_DEV_XID_ERRORS, gauge, xid\n");
    let snap = snapshot(vec![gpu(0, "GPU-a", 0), gpu(1, "GPU-b", 0)]);
    let pod = |name: &str, vgpu: &str| {
        vec![
            ("pod".to_owned(), name.to_owned()),
            ("namespace".to_owned(), "ml".to_owned()),
            ("container".to_owned(), "main".to_owned()),
            ("vgpu".to_owned(), vgpu.to_owned()),
        ]
    };
    let extras = Arc::new(Extras {
        hpc_jobs: BTreeMap::from([(0, vec!["job1".to_owned()])]),
        gpu_label_sets: BTreeMap::from([(0, vec![pod("a", "0"), pod("b", "1")])]),
        ..Extras::default()
    });
    let text = Encoder::new(config).encode_with(&snap, Format::PrometheusText, &extras);
    let util = lines_of(&text, "DCGM_FI_DEV_GPU_UTIL");
    assert_eq!(
        util,
        [
            format!(
                r#"DCGM_FI_DEV_GPU_UTIL{{{ID},container="main",hpc_job="job1",namespace="ml",pod="a",vgpu="0"}} 85"#
            )
            .as_str(),
            &format!(
                r#"DCGM_FI_DEV_GPU_UTIL{{{ID},container="main",hpc_job="job1",namespace="ml",pod="b",vgpu="1"}} 85"#
            ),
            r#"DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b",pci_bus_id="00000000:19:00.0",device="nvidia1",modelName="NVIDIA H100 80GB  HBM3",Hostname="w1"} 85"#,
        ]
    );
    let xid = lines_of(&text, "DCGM_FI_DEV_XID_ERRORS");
    assert!(
        xid[0].ends_with(
            r#"container="main",err_code="0",err_msg="No Error",hpc_job="job1",namespace="ml",pod="a",vgpu="0"} 0"#
        ),
        "{}",
        xid[0]
    );
}

#[test]
fn windowed_counts_render_as_dcgm_exporters_exp_collectors() {
    let config = csv("DCGM_FI_DRIVER_VERSION, label, driver\n\
         DCGM_EXP_XID_ERRORS_COUNT, gauge, XIDs in the window\n\
         DCGM_EXP_CLOCK_EVENTS_COUNT, gauge, clock events in the window\n");
    let mut first = gpu(0, "GPU-a", 79);
    first.xid_counts = BTreeMap::from([(79, 2), (48, 1)]);
    let snap = snapshot(vec![first, gpu(1, "GPU-b", 0)]);
    let mut windows = EventWindows::new(Duration::from_secs(300), Duration::from_secs(60));
    windows.record(&snap);
    let extras = Arc::new(Extras {
        xid_counts: Some(windows.xid_counts(snap.taken_at)),
        clock_event_counts: Some(windows.clock_event_counts(snap.taken_at)),
        ..Extras::default()
    });
    let text = Encoder::new(config).encode_with(&snap, Format::PrometheusText, &extras);
    assert!(
        text.contains("# TYPE DCGM_EXP_XID_ERRORS_COUNT gauge\n"),
        "{text}"
    );
    let gpu1 = r#"gpu="1",UUID="GPU-b",pci_bus_id="00000000:19:00.0",device="nvidia1",modelName="NVIDIA H100 80GB  HBM3",Hostname="w1""#;
    assert_eq!(
        lines_of(&text, "DCGM_EXP_XID_ERRORS_COUNT"),
        [
            format!(
                r#"DCGM_EXP_XID_ERRORS_COUNT{{{ID},DCGM_FI_DRIVER_VERSION="550.54.15",window_size_in_ms="300000",xid="48"}} 1"#
            )
            .as_str(),
            &format!(
                r#"DCGM_EXP_XID_ERRORS_COUNT{{{ID},DCGM_FI_DRIVER_VERSION="550.54.15",window_size_in_ms="300000",xid="79"}} 2"#
            ),
            &format!(
                r#"DCGM_EXP_XID_ERRORS_COUNT{{{gpu1},DCGM_FI_DRIVER_VERSION="550.54.15",window_size_in_ms="300000"}} 0"#
            ),
        ]
    );
    let clock = lines_of(&text, "DCGM_EXP_CLOCK_EVENTS_COUNT");
    assert_eq!(clock.len(), 4, "{clock:#?}");
    assert_eq!(
        clock[0],
        format!(
            r#"DCGM_EXP_CLOCK_EVENTS_COUNT{{{ID},DCGM_FI_DRIVER_VERSION="550.54.15",clock_event="hw_thermal",window_size_in_ms="60000"}} 1"#
        )
    );
    assert!(
        clock[1].contains(r#"clock_event="power_cap""#),
        "{}",
        clock[1]
    );

    // Without the counts (a face that does not keep windows) the families
    // are left out rather than served as zeros.
    let plain = Encoder::new(csv("DCGM_EXP_XID_ERRORS_COUNT, gauge, x\n"))
        .encode(&snap, Format::PrometheusText);
    assert!(!plain.contains("DCGM_EXP_XID_ERRORS_COUNT"), "{plain}");
}
