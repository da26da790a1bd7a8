//! The DCGM fields read from NVML besides dcgm-exporter's defaults, each
//! against the fake NVML's scenario: instantaneous power, FB used ratio,
//! persistence and MIG mode, PCIe byte counters and per-link NVLink
//! bandwidth counters.

mod common;

use algalon_core::{Field, Sampler, SamplerOptions, Snapshot, Value};
use common::{options, scenario, with_scenario};

const FIELDS: &[Field] = &[
    Field::PowerUsageInstant,
    Field::FbUsedPercent,
    Field::PersistenceMode,
    Field::MigMode,
    Field::PcieTxBytesTotal,
    Field::PcieRxBytesTotal,
    Field::NvlinkBandwidthL0,
    Field::NvlinkBandwidthL11,
];

fn sample(name: &str, t: f64) -> Snapshot {
    with_scenario(&scenario(name), Some(t), || {
        let opts = SamplerOptions {
            fields: FIELDS.to_vec(),
            ..options()
        };
        Sampler::new(opts).expect("sampler").sample()
    })
}

fn float(s: &Snapshot, gpu: usize, field: Field) -> f64 {
    s.gpus[gpu]
        .get_f64(field)
        .unwrap_or_else(|| panic!("GPU {gpu}: no {}", field.name()))
}

#[test]
fn h100_readings_follow_the_scenario() {
    // h100x8 GPU 0 at t=0: power 420 W (sine at its base), 64000 of 81559
    // MiB used, 549 MiB reserved, persistence mode on, no MIG, 18 links.
    let s = sample("h100x8", 0.0);
    assert!((float(&s, 0, Field::PowerUsageInstant) - 420.0).abs() < 1e-9);
    let ratio = float(&s, 0, Field::FbUsedPercent);
    assert!(
        (ratio - 64000.0 / (81559.0 - 549.0)).abs() < 1e-9,
        "{ratio}"
    );
    assert_eq!(s.gpus[0].get(Field::PersistenceMode), Some(Value::Int(1)));
    assert_eq!(s.gpus[0].get(Field::NvlinkBandwidthL0), Some(Value::Int(0)));
    assert_eq!(
        s.gpus[0].get(Field::NvlinkBandwidthL11),
        Some(Value::Int(0))
    );
    assert_eq!(s.gpus[0].get(Field::PcieTxBytesTotal), Some(Value::Int(0)));

    // The PCIe byte counters count what flowed: at t=10, one period of
    // the rate's sine, its base rate times 10 s (KiB/s → bytes).
    let later = sample("h100x8", 10.0);
    let tx = float(&later, 0, Field::PcieTxBytesTotal);
    let rx = float(&later, 0, Field::PcieRxBytesTotal);
    assert!((tx - 250_000.0 * 1024.0 * 10.0).abs() / tx < 1e-3, "{tx}");
    assert!((rx - 1_200_000.0 * 1024.0 * 10.0).abs() / rx < 1e-3, "{rx}");
}

#[test]
fn mig_mode_is_read_where_mig_is_configured() {
    let s = sample("h100-mig", 1.0);
    assert_eq!(s.gpus[0].get(Field::MigMode), Some(Value::Int(1)));
    let plain = sample("h100x8", 1.0);
    assert_eq!(
        plain.gpus[0].get(Field::MigMode),
        Some(Value::Int(0)),
        "an H100 without MIG reports mode 0"
    );
}

#[test]
fn nvlink_rates_come_from_gpm_between_two_samples() {
    // h100x8 GPU 0: NVLink traffic is a sine around 92.16 GB/s each way with
    // a 20 s period; frozen at t=0, both samples see its base rate.
    let s = with_scenario(&scenario("h100x8"), Some(0.0), || {
        let opts = SamplerOptions {
            fields: vec![
                Field::ProfNvlinkTxBytes,
                Field::ProfNvlinkRxBytes,
                Field::ProfNvlinkL0TxBytes,
                Field::ProfNvlinkL17RxBytes,
            ],
            ..options()
        };
        let mut sampler = Sampler::new(opts).expect("sampler");
        let first = sampler.sample();
        assert_eq!(
            first.gpus[0].get(Field::ProfNvlinkTxBytes),
            None,
            "one GPM sample"
        );
        sampler.sample()
    });
    for field in [Field::ProfNvlinkTxBytes, Field::ProfNvlinkRxBytes] {
        let v = float(&s, 0, field);
        assert!(
            (v - 92_160_000_000.0).abs() / v < 1e-6,
            "{}: {v}",
            field.name()
        );
    }
    // Per link: the fake splits the traffic evenly over the H100's 18 links.
    for field in [Field::ProfNvlinkL0TxBytes, Field::ProfNvlinkL17RxBytes] {
        let v = float(&s, 0, field);
        assert!(
            (v - 92_160_000_000.0 / 18.0).abs() / v < 1e-6,
            "{}: {v}",
            field.name()
        );
    }
}

#[test]
fn pipe_activity_ratios_come_from_gpm() {
    // h100x8 GPU 0 at t=0: integer pipe 20 %, HMMA 33 %, IMMA 2 %, DFMA 0.
    let s = with_scenario(&scenario("h100x8"), Some(0.0), || {
        let opts = SamplerOptions {
            fields: vec![
                Field::ProfPipeIntActive,
                Field::ProfPipeTensorDfmaActive,
                Field::ProfPipeTensorHmmaActive,
                Field::ProfPipeTensorImmaActive,
            ],
            ..options()
        };
        let mut sampler = Sampler::new(opts).expect("sampler");
        sampler.sample();
        sampler.sample()
    });
    for (field, want) in [
        (Field::ProfPipeIntActive, 0.20),
        (Field::ProfPipeTensorDfmaActive, 0.0),
        (Field::ProfPipeTensorHmmaActive, 0.33),
        (Field::ProfPipeTensorImmaActive, 0.02),
    ] {
        let v = float(&s, 0, field);
        assert!((v - want).abs() < 1e-9, "{}: {v}", field.name());
    }
}

#[test]
fn clocks_power_limits_and_ecc_mode_follow_the_scenario() {
    // mixed GPU 0 (A100): video clock 1275 of 1290 MHz, power limits 100 …
    // 400 W with 400 W set (the default when none is given), ECC on.
    let s = with_scenario(&scenario("mixed"), Some(1.0), || {
        let opts = SamplerOptions {
            fields: vec![
                Field::VideoClock,
                Field::MaxVideoClock,
                Field::PowerMgmtLimitMin,
                Field::PowerMgmtLimitMax,
                Field::PowerMgmtLimitDef,
                Field::EccCurrent,
                Field::EccPending,
            ],
            ..options()
        };
        Sampler::new(opts).expect("sampler").sample()
    });
    let g = &s.gpus[0];
    assert_eq!(g.get(Field::VideoClock), Some(Value::Int(1275)));
    assert_eq!(g.get(Field::MaxVideoClock), Some(Value::Int(1290)));
    assert_eq!(g.get(Field::PowerMgmtLimitMin), Some(Value::Float(100.0)));
    assert_eq!(g.get(Field::PowerMgmtLimitMax), Some(Value::Float(400.0)));
    assert_eq!(g.get(Field::PowerMgmtLimitDef), Some(Value::Float(400.0)));
    assert_eq!(g.get(Field::EccCurrent), Some(Value::Int(1)));
    assert_eq!(g.get(Field::EccPending), Some(Value::Int(1)));
}
