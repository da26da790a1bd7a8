//! `count` expansion and the checks that turn a mistaken scenario into a
//! clear load error instead of odd readings later.

use std::collections::HashSet;

use super::{Device, GpuSpec, PciAddress, Scenario, Value, mig};
use crate::names;

/// `(JSON path, message)`.
pub(super) type Problem = (String, String);

pub(super) fn problem(at: impl Into<String>, message: impl Into<String>) -> Problem {
    (at.into(), message.into())
}

pub(super) fn check_value(at: &str, v: &Value) -> Result<(), Problem> {
    v.check().map_err(|m| problem(at, m))
}

fn check_opt(at: &str, v: Option<&Value>) -> Result<(), Problem> {
    v.map_or(Ok(()), |v| check_value(at, v))
}

pub(super) fn check_non_negative(at: &str, v: &Value) -> Result<(), Problem> {
    check_value(at, v)?;
    if v.min() < 0.0 {
        return Err(problem(
            at,
            format!("can go negative (minimum {}); keep it >= 0", v.min()),
        ));
    }
    Ok(())
}

pub(super) fn check_string(at: &str, s: &str, max: usize) -> Result<(), Problem> {
    if s.contains('\0') {
        return Err(problem(at, "must not contain NUL"));
    }
    // NVML buffers hold `max` bytes including the terminator.
    if s.len() >= max {
        return Err(problem(
            at,
            format!(
                "is {} bytes; NVML's buffer holds at most {}",
                s.len(),
                max - 1
            ),
        ));
    }
    Ok(())
}

/// Adds `k` to the hex number after the last `-` (`GPU-…-0123456789ab`),
/// keeping its width and case.
fn offset_uuid(uuid: &str, k: u32) -> Option<String> {
    let (head, last) = uuid.rsplit_once('-')?;
    if last.is_empty() || last.len() > 16 {
        return None;
    }
    let n = u64::from_str_radix(last, 16).ok()?;
    let sum = n.checked_add(u64::from(k))?;
    let width = last.len();
    if width < 16 && sum >> (4 * width) != 0 {
        return None;
    }
    let upper = last.chars().any(|c| c.is_ascii_uppercase());
    Some(if upper {
        format!("{head}-{sum:0width$X}")
    } else {
        format!("{head}-{sum:0width$x}")
    })
}

/// Adds `k` to an all-digit serial, keeping its width; other serials stay.
fn offset_serial(serial: &str, k: u32) -> String {
    if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_digit()) || serial.len() > 30 {
        return serial.to_string();
    }
    match serial.parse::<u128>() {
        Ok(n) => format!("{:0width$}", n + u128::from(k), width = serial.len()),
        Err(_) => serial.to_string(),
    }
}

fn check_driver_version(v: &str) -> Result<(), Problem> {
    let mut parts = v.split('.');
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    let (Some(major), Some(minor)) = (major, minor) else {
        return Err(problem(
            "driver_version",
            format!("{v:?} is not a driver version like \"550.54.15\""),
        ));
    };
    if (major, minor) >= (580, 82) {
        return Err(problem(
            "driver_version",
            format!(
                "{v} is >= 580.82, where nvml-wrapper renumbers field IDs 251-273; \
                 the fake serves the v12 numbering, so use an older version"
            ),
        ));
    }
    Ok(())
}

fn known_unsupported(name: &str) -> bool {
    names::EXPORTED.contains(&name)
        || names::field_id(name).is_some()
        || names::GPM_METRICS.iter().any(|m| m.name == name)
}

fn check_call(at: &str, call: &str) -> Result<(), Problem> {
    if call == "*" || names::EXPORTED.contains(&call) {
        Ok(())
    } else {
        Err(problem(
            at,
            format!(
                "{call:?} is not a function fake-nvml exports (see names::EXPORTED), nor \"*\""
            ),
        ))
    }
}

fn check_window(at: &str, from: f64, until: Option<f64>) -> Result<(), Problem> {
    if !from.is_finite() || until.is_some_and(|u| !u.is_finite() || u <= from) {
        return Err(problem(
            at,
            "from_s must be finite and until_s (when given) after it",
        ));
    }
    Ok(())
}

/// Checks one `gpus[]` entry's own fields.
fn check_gpu(at: &str, g: &GpuSpec) -> Result<(), Problem> {
    check_string(&format!("{at}.name"), &g.name, 96)?;
    check_string(&format!("{at}.uuid"), &g.uuid, 80)?;
    if !g.uuid.starts_with("GPU-") {
        return Err(problem(format!("{at}.uuid"), "must start with \"GPU-\""));
    }
    if let Some(s) = &g.serial {
        check_string(&format!("{at}.serial"), s, 30)?;
    }
    if let Some(s) = &g.vbios_version {
        check_string(&format!("{at}.vbios_version"), s, 32)?;
    }
    if let Some(s) = &g.board_part_number {
        check_string(&format!("{at}.board_part_number"), s, 80)?;
    }
    if let Some(inforom) = &g.inforom {
        for (key, v) in [
            ("image", &inforom.image),
            ("oem", &inforom.oem),
            ("ecc", &inforom.ecc),
            ("power", &inforom.power),
        ] {
            if let Some(v) = v {
                check_string(&format!("{at}.inforom.{key}"), v, 16)?;
            }
        }
    }

    let mem = &g.memory;
    check_non_negative(&format!("{at}.memory.used_mib"), &mem.used_mib)?;
    if mem.reserved_mib > mem.total_mib
        || mem.used_mib.max() > (mem.total_mib - mem.reserved_mib) as f64
    {
        return Err(problem(
            format!("{at}.memory"),
            format!(
                "reserved_mib ({}) + used_mib (up to {}) exceeds total_mib ({})",
                mem.reserved_mib,
                mem.used_mib.max(),
                mem.total_mib
            ),
        ));
    }
    if let Some(bar1) = &g.bar1 {
        check_non_negative(&format!("{at}.bar1.used_mib"), &bar1.used_mib)?;
        if bar1.used_mib.max() > bar1.total_mib as f64 {
            return Err(problem(format!("{at}.bar1"), "used_mib exceeds total_mib"));
        }
    }
    for (key, clocks) in [
        ("max_clocks", &g.max_clocks),
        ("clocks", &g.clocks),
        ("app_clocks", &g.app_clocks),
    ] {
        if let Some(c) = clocks {
            check_non_negative(&format!("{at}.{key}.sm_mhz"), &c.sm_mhz)?;
            check_non_negative(&format!("{at}.{key}.mem_mhz"), &c.mem_mhz)?;
            check_opt(&format!("{at}.{key}.graphics_mhz"), c.graphics_mhz.as_ref())?;
            check_opt(&format!("{at}.{key}.video_mhz"), c.video_mhz.as_ref())?;
        }
    }
    if let Some(u) = &g.utilization {
        check_value(&format!("{at}.utilization.gpu"), &u.gpu)?;
        check_value(&format!("{at}.utilization.memory"), &u.memory)?;
        check_opt(&format!("{at}.utilization.encoder"), u.encoder.as_ref())?;
        check_opt(&format!("{at}.utilization.decoder"), u.decoder.as_ref())?;
    }
    check_opt(&format!("{at}.temperature_c"), g.temperature_c.as_ref())?;
    check_opt(
        &format!("{at}.memory_temperature_c"),
        g.memory_temperature_c.as_ref(),
    )?;
    if let Some(p) = &g.power_w {
        // The energy counter integrates this exactly; a negative stretch
        // would make the counter run backwards.
        check_non_negative(&format!("{at}.power_w"), p)?;
    } else if g.energy_counter {
        return Err(problem(
            format!("{at}.energy_counter"),
            "needs power_w: the counter is the integral of power",
        ));
    }
    for (key, w) in [
        ("power_limit_w", g.power_limit_w),
        ("power_default_limit_w", g.power_default_limit_w),
    ] {
        if w.is_some_and(|w| !w.is_finite() || w < 0.0) {
            return Err(problem(format!("{at}.{key}"), "must be a number >= 0"));
        }
    }
    if let Some([lo, hi]) = g.power_limit_constraints_w
        && !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi)
    {
        return Err(problem(
            format!("{at}.power_limit_constraints_w"),
            "must be [min_w, max_w] with 0 <= min_w <= max_w",
        ));
    }
    check_opt(&format!("{at}.fan_percent"), g.fan_percent.as_ref())?;
    if g.num_fans.is_some() && g.fan_percent.is_none() {
        return Err(problem(
            format!("{at}.num_fans"),
            "is set but fan_percent is not; a GPU without fan_percent has no fans",
        ));
    }
    check_opt(&format!("{at}.pstate"), g.pstate.as_ref())?;
    if let Some(p) = &g.pcie {
        check_opt(&format!("{at}.pcie.tx_kib_s"), p.tx_kib_s.as_ref())?;
        check_opt(&format!("{at}.pcie.rx_kib_s"), p.rx_kib_s.as_ref())?;
        check_opt(
            &format!("{at}.pcie.replay_counter"),
            p.replay_counter.as_ref(),
        )?;
    }
    if let Some(e) = &g.ecc {
        check_value(&format!("{at}.ecc.sbe_volatile"), &e.sbe_volatile)?;
        check_value(&format!("{at}.ecc.dbe_volatile"), &e.dbe_volatile)?;
        check_value(&format!("{at}.ecc.sbe_aggregate"), &e.sbe_aggregate)?;
        check_value(&format!("{at}.ecc.dbe_aggregate"), &e.dbe_aggregate)?;
    }
    if let Some(v) = &g.violations_ns {
        for (key, value) in [
            ("power", &v.power),
            ("thermal", &v.thermal),
            ("sync_boost", &v.sync_boost),
            ("board_limit", &v.board_limit),
            ("low_util", &v.low_util),
            ("reliability", &v.reliability),
        ] {
            check_opt(&format!("{at}.violations_ns.{key}"), value.as_ref())?;
        }
    }
    check_opt(
        &format!("{at}.throttle_reasons"),
        g.throttle_reasons.as_ref(),
    )?;
    if let Some(n) = &g.nvlink {
        if n.links > 18 {
            return Err(problem(
                format!("{at}.nvlink.links"),
                format!("{} exceeds NVML_NVLINK_MAX_LINKS (18)", n.links),
            ));
        }
        if n.active() > n.links {
            return Err(problem(
                format!("{at}.nvlink.active_links"),
                "exceeds links",
            ));
        }
        for (key, value) in [
            ("bandwidth_total", &n.bandwidth_total),
            ("crc_flit_errors", &n.crc_flit_errors),
            ("crc_data_errors", &n.crc_data_errors),
            ("replay_errors", &n.replay_errors),
            ("recovery_errors", &n.recovery_errors),
            ("tx_kib_s", &n.tx_kib_s),
            ("rx_kib_s", &n.rx_kib_s),
        ] {
            check_opt(&format!("{at}.nvlink.{key}"), value.as_ref())?;
        }
    }

    if let Some(gpm) = &g.gpm {
        for id in names::GPM_METRICS.iter().map(|m| m.id) {
            if let Some((v, _)) = gpm.metric(id) {
                check_value(&format!("{at}.gpm"), v)?;
            }
        }
    }
    for (i, p) in g.processes.iter().enumerate() {
        let pat = format!("{at}.processes[{i}]");
        check_string(&format!("{pat}.name"), &p.name, 1024)?;
        check_window(&pat, p.start_s, p.end_s)?;
        if let Some(used) = &p.used_mib {
            check_non_negative(&format!("{pat}.used_mib"), used)?;
        }
        check_opt(&format!("{pat}.sm_util"), p.sm_util.as_ref())?;
        check_opt(&format!("{pat}.mem_util"), p.mem_util.as_ref())?;
    }
    for (i, u) in g.unsupported.iter().enumerate() {
        if !known_unsupported(u) {
            return Err(problem(
                format!("{at}.unsupported[{i}]"),
                format!(
                    "{u:?} is neither an exported NVML function, a served NVML_FI_DEV_* field \
                     nor a served NVML_GPM_METRIC_* name"
                ),
            ));
        }
    }
    for (i, x) in g.xid_events.iter().enumerate() {
        if !x.at_s.is_finite() || x.at_s < 0.0 {
            return Err(problem(
                format!("{at}.xid_events[{i}].at_s"),
                "must be a number >= 0",
            ));
        }
    }
    if g.lost_after_s.is_some_and(|l| !l.is_finite() || l < 0.0) {
        return Err(problem(
            format!("{at}.lost_after_s"),
            "must be a number >= 0",
        ));
    }
    Ok(())
}

/// Validates `s` and expands `count`, returning the devices in index order.
pub(super) fn expand_and_check(s: &Scenario) -> Result<Vec<Device>, Problem> {
    check_driver_version(&s.driver_version)?;
    check_string("driver_version", &s.driver_version, 80)?;
    check_string("nvml_version", &s.nvml_version, 80)?;

    let mut devices = Vec::new();
    for (e, g) in s.gpus.iter().enumerate() {
        let at = format!("gpus[{e}]");
        check_gpu(&at, g)?;
        let count = g.count.unwrap_or(1);
        if count == 0 {
            return Err(problem(format!("{at}.count"), "must be at least 1"));
        }
        let base_pci = PciAddress::parse(&g.pci_bus_id).ok_or_else(|| {
            problem(
                format!("{at}.pci_bus_id"),
                format!(
                    "{:?} is not a PCI address like \"00000000:18:00.0\"",
                    g.pci_bus_id
                ),
            )
        })?;
        for k in 0..count {
            let index = u32::try_from(devices.len()).map_err(|_| problem(&at, "too many GPUs"))?;
            let mut spec = g.clone();
            spec.count = None;
            spec.uuid = offset_uuid(&g.uuid, k).ok_or_else(|| {
                problem(
                    format!("{at}.uuid"),
                    format!("cannot derive copy {k}'s UUID: the last group of {:?} must be hex with room to count up", g.uuid),
                )
            })?;
            let bus = u8::try_from(u32::from(base_pci.bus) + k).map_err(|_| {
                problem(
                    format!("{at}.pci_bus_id"),
                    format!(
                        "copy {k} would need PCI bus {:#x} > 0xff",
                        u32::from(base_pci.bus) + k
                    ),
                )
            })?;
            let pci = PciAddress { bus, ..base_pci };
            spec.pci_bus_id = pci.bus_id();
            spec.minor_number = Some(g.minor_number.map_or(index, |m| m + k));
            spec.serial = g.serial.as_deref().map(|s| offset_serial(s, k));
            if let Some(m) = &mut spec.mig {
                mig::for_each_instance(m, |iat, inst| {
                    inst.uuid = offset_uuid(&inst.uuid, k).ok_or_else(|| {
                        problem(
                            format!("{at}.{iat}.uuid"),
                            "the last group must be hex with room to count up",
                        )
                    })?;
                    Ok(())
                })?;
            }
            let timeline = mig::timeline(&at, &spec)?;
            mig::check_processes(&at, &spec, timeline.as_ref())?;
            devices.push(Device {
                index,
                spec,
                pci,
                mig: timeline,
            });
        }
    }

    let mut uuids = HashSet::new();
    let mut buses = HashSet::new();
    for d in &devices {
        let at = format!("GPU {}", d.index);
        if !uuids.insert(d.spec.uuid.to_ascii_lowercase()) {
            return Err(problem(at, format!("duplicate UUID {}", d.spec.uuid)));
        }
        if !buses.insert((d.pci.domain, d.pci.bus, d.pci.device)) {
            return Err(problem(
                at,
                format!("duplicate PCI bus id {}", d.spec.pci_bus_id),
            ));
        }
        let mut slots = HashSet::new();
        for inst in d.mig.iter().flat_map(|m| m.all_devices()) {
            if slots.insert(inst.slot) && !uuids.insert(inst.spec.uuid.to_ascii_lowercase()) {
                return Err(problem(
                    at.clone(),
                    format!("duplicate UUID {}", inst.spec.uuid),
                ));
            }
        }
    }

    let count = devices.len();
    let check_gpu_index = |at: String, gpu: Option<u32>| match gpu {
        Some(g) if g as usize >= count => Err(problem(
            at,
            format!("GPU {g} does not exist (the scenario has {count})"),
        )),
        _ => Ok(()),
    };
    for (i, f) in s.faults.iter().enumerate() {
        let at = format!("faults[{i}]");
        check_call(&format!("{at}.call"), &f.call)?;
        check_gpu_index(format!("{at}.gpu"), f.gpu)?;
        check_window(&at, f.from_s, f.until_s)?;
    }
    for (i, l) in s.latency.iter().enumerate() {
        let at = format!("latency[{i}]");
        check_call(&format!("{at}.call"), &l.call)?;
        check_gpu_index(format!("{at}.gpu"), l.gpu)?;
        check_window(&at, l.from_s, l.until_s)?;
        if !l.ms.is_finite() || l.ms < 0.0 {
            return Err(problem(format!("{at}.ms"), "must be a number >= 0"));
        }
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_offsets_keep_width_and_case() {
        assert_eq!(
            offset_uuid("GPU-12345678-1234-1234-1234-0000000000ff", 1).as_deref(),
            Some("GPU-12345678-1234-1234-1234-000000000100")
        );
        assert_eq!(offset_uuid("GPU-AB-0F", 1).as_deref(), Some("GPU-AB-10"));
        assert_eq!(
            offset_uuid("GPU-AB-ff", 1),
            None,
            "would overflow the width"
        );
        assert_eq!(offset_uuid("GPU-nohex-zz", 0), None);
    }

    #[test]
    fn serial_offsets() {
        assert_eq!(offset_serial("1654922004567", 3), "1654922004570");
        assert_eq!(offset_serial("0009", 1), "0010");
        assert_eq!(offset_serial("SN-1", 5), "SN-1");
    }

    #[test]
    fn driver_version_gate() {
        assert!(check_driver_version("550.54.15").is_ok());
        assert!(check_driver_version("580.65.06").is_ok());
        assert!(check_driver_version("580.82.07").is_err());
        assert!(check_driver_version("garbage").is_err());
    }
}
