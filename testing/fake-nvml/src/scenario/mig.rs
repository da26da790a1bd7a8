//! MIG in scenarios: a GPU's `mig` block, its reconfiguration `schedule`,
//! and the [`MigTimeline`] the library answers from — which MIG devices
//! exist at a given time, with their profile, placement and identity.
//!
//! A MIG device keeps its identity (and so its NVML handle) for as long as
//! its `uuid` stays listed; a device that disappears at a reconfiguration is
//! gone for good, and one that appears gets a new identity, as when an
//! operator destroys and creates GPU instances.

use std::collections::HashMap;

use serde::Deserialize;

use super::mig_profiles::{self, GpuInstanceProfile, MigModel};
use super::validate::{Problem, check_non_negative, check_string, check_value, problem};
use super::{ErrorCode, Gpm, GpuSpec, MemoryReading, Value};
use crate::names;

/// A GPU's MIG configuration: the state before the first `schedule` entry,
/// then each entry's state from its `at_s` on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mig {
    /// Current MIG mode.
    pub enabled: bool,
    /// Pending MIG mode (what the next GPU reset activates); default:
    /// `enabled`.
    #[serde(default)]
    pub pending: Option<bool>,
    /// `nvmlDeviceGetMaxMigDeviceCount` while MIG is enabled (default 7;
    /// 0 while disabled, as NVML documents).
    #[serde(default)]
    pub max_devices: Option<u32>,
    /// MIG devices (only when enabled).
    #[serde(default)]
    pub instances: Vec<MigInstance>,
    /// Reconfigurations, in increasing `at_s`.
    #[serde(default)]
    pub schedule: Vec<MigChange>,
    /// What a call on the handle of a destroyed MIG device (or GPU/compute
    /// instance) returns; default `INVALID_ARGUMENT`.
    #[serde(default)]
    pub stale_handle_error: Option<ErrorCode>,
}

/// The MIG state of a GPU from `at_s` on (until the next entry).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigChange {
    /// When the change takes effect, seconds of scenario time.
    pub at_s: f64,
    /// Current MIG mode from then on.
    pub enabled: bool,
    /// Pending MIG mode (default: `enabled`).
    #[serde(default)]
    pub pending: Option<bool>,
    /// The MIG devices from then on: a `uuid` listed before is the same
    /// device (it survived), any other is newly created.
    #[serde(default)]
    pub instances: Vec<MigInstance>,
}

/// One MIG device: a GPU instance with one compute instance spanning it
/// (what `nvidia-smi mig -cgi <profiles> -C` creates).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigInstance {
    /// GPU-instance profile name of the parent's model, e.g. `"1g.10gb"`;
    /// the device name is `"<parent name> MIG <profile>"`.
    pub profile: String,
    /// GPU instance id.
    pub gpu_instance_id: u32,
    /// Compute instance id (0 for the first compute instance of a GPU
    /// instance).
    pub compute_instance_id: u32,
    /// `MIG-…` UUID.
    pub uuid: String,
    /// Memory of the device, MiB; must equal the profile's when given.
    #[serde(default)]
    pub memory_total_mib: Option<u64>,
    /// Memory used, MiB.
    pub memory_used_mib: Value,
    /// First memory slice of the GPU instance's placement; default: the
    /// first free placement of its profile, devices taken in NVML order.
    #[serde(default)]
    pub placement_start: Option<u32>,
    /// GPM metrics of this GPU instance (`nvmlGpmMigSampleGet`); absent →
    /// not supported.
    #[serde(default)]
    pub gpm: Option<Gpm>,
}

/// A MIG device as it exists in one configuration.
#[derive(Debug, Clone)]
pub struct MigDevice {
    /// The device's identity over the whole scenario: the same for every
    /// configuration that lists its UUID, different for every other device.
    pub slot: usize,
    /// Its scenario entry (UUID offset for `count` copies applied).
    pub spec: MigInstance,
    /// Its GPU-instance profile.
    pub profile: &'static GpuInstanceProfile,
    /// First memory slice of its placement.
    pub placement_start: u32,
}

impl MigDevice {
    /// Memory at `t` (v2 figures: no reserved memory).
    pub fn memory(&self, t: f64) -> MemoryReading {
        MemoryReading::new(
            self.profile.memory_mib,
            0,
            self.spec.memory_used_mib.u64_at(t),
        )
    }

    /// `nvmlDeviceGetName` of the device.
    pub fn name(&self, parent: &str) -> String {
        format!("{parent} MIG {}", self.profile.name)
    }

    /// `NVML_COMPUTE_INSTANCE_PROFILE_*` of its compute instance (which
    /// spans the GPU instance).
    pub fn compute_profile_index(&self) -> u32 {
        mig_profiles::compute_profile_index(self.profile.slices).unwrap_or(0)
    }
}

/// The MIG state from `from_s` until the next configuration.
#[derive(Debug, Clone)]
pub struct MigConfig {
    /// Start (`-inf` for the state before the first schedule entry).
    pub from_s: f64,
    /// Current mode.
    pub enabled: bool,
    /// Pending mode.
    pub pending: bool,
    /// The MIG devices, in NVML index order: ascending GPU instance id.
    pub devices: Vec<MigDevice>,
}

/// A GPU's MIG states over scenario time.
#[derive(Debug, Clone)]
pub struct MigTimeline {
    /// The GPU model's profiles (`None` for a model the fake has no table
    /// for; such a GPU can only have MIG disabled).
    pub model: Option<&'static MigModel>,
    /// The configurations, by increasing `from_s`.
    pub configs: Vec<MigConfig>,
    /// `max_devices` (default 7).
    pub max_devices: u32,
    /// The return code for a handle of a device that no longer exists.
    pub stale_handle_error: u32,
    /// How many distinct MIG devices the scenario ever has.
    pub slots: usize,
}

impl MigTimeline {
    /// The configuration in force at `t`.
    pub fn at(&self, t: f64) -> &MigConfig {
        let i = self.configs.partition_point(|c| c.from_s <= t);
        &self.configs[i.saturating_sub(1)]
    }

    /// MIG device `slot` if it exists at `t`.
    pub fn device(&self, slot: usize, t: f64) -> Option<&MigDevice> {
        self.at(t).devices.iter().find(|d| d.slot == slot)
    }

    /// `nvmlDeviceGetMaxMigDeviceCount` at `t`.
    pub fn max_device_count(&self, t: f64) -> u32 {
        if self.at(t).enabled {
            self.max_devices
        } else {
            0
        }
    }

    /// Every device in any configuration (a slot may repeat).
    pub fn all_devices(&self) -> impl Iterator<Item = &MigDevice> {
        self.configs.iter().flat_map(|c| &c.devices)
    }

    /// The `(from, until)` window of each configuration.
    fn windows(&self) -> impl Iterator<Item = (&MigConfig, f64, f64)> {
        self.configs.iter().enumerate().map(|(i, c)| {
            let until = self.configs.get(i + 1).map_or(f64::INFINITY, |n| n.from_s);
            (c, c.from_s, until)
        })
    }
}

/// Applies `f` to every instance entry of a `mig` block (base and schedule).
pub(super) fn for_each_instance(
    mig: &mut Mig,
    mut f: impl FnMut(String, &mut MigInstance) -> Result<(), Problem>,
) -> Result<(), Problem> {
    for (i, inst) in mig.instances.iter_mut().enumerate() {
        f(format!("mig.instances[{i}]"), inst)?;
    }
    for (s, change) in mig.schedule.iter_mut().enumerate() {
        for (i, inst) in change.instances.iter_mut().enumerate() {
            f(format!("mig.schedule[{s}].instances[{i}]"), inst)?;
        }
    }
    Ok(())
}

/// Where a slot was placed and what it is, to check later appearances.
struct Seen {
    gpu_instance_id: u32,
    compute_instance_id: u32,
    profile: &'static str,
    placement_start: u32,
    /// Index of the last configuration listing it.
    last: usize,
}

/// Builds and checks the timeline of GPU `g` (its `count` copies already
/// carry their own UUIDs). `at` is the JSON path of the GPU entry.
pub(super) fn timeline(at: &str, g: &GpuSpec) -> Result<Option<MigTimeline>, Problem> {
    let Some(mig) = &g.mig else {
        return Ok(None);
    };
    let model = mig_profiles::model(&g.name);
    let max_devices = mig.max_devices.unwrap_or(7);
    let stale_handle_error = mig
        .stale_handle_error
        .map_or(crate::state::rc::INVALID_ARGUMENT, |e| e.0);

    let mut states = vec![(
        format!("{at}.mig"),
        f64::NEG_INFINITY,
        mig.enabled,
        mig.pending,
        &mig.instances,
    )];
    let mut last_at = f64::NEG_INFINITY;
    for (s, change) in mig.schedule.iter().enumerate() {
        let sat = format!("{at}.mig.schedule[{s}]");
        if !change.at_s.is_finite() || change.at_s < 0.0 || change.at_s <= last_at {
            return Err(problem(
                format!("{sat}.at_s"),
                "must be a number >= 0, greater than the previous entry's",
            ));
        }
        last_at = change.at_s;
        states.push((
            sat,
            change.at_s,
            change.enabled,
            change.pending,
            &change.instances,
        ));
    }

    let mut seen: HashMap<String, (usize, Seen)> = HashMap::new();
    let mut configs = Vec::with_capacity(states.len());
    for (c, (cat, from_s, enabled, pending, instances)) in states.into_iter().enumerate() {
        if !enabled && !instances.is_empty() {
            return Err(problem(
                format!("{cat}.instances"),
                "MIG devices exist only when enabled is true",
            ));
        }
        if instances.len() > max_devices as usize {
            return Err(problem(
                format!("{cat}.instances"),
                format!(
                    "{} devices exceed max_devices ({max_devices})",
                    instances.len()
                ),
            ));
        }
        let mut devices = Vec::with_capacity(instances.len());
        for (i, inst) in instances.iter().enumerate() {
            let iat = format!("{cat}.instances[{i}]");
            let profile = check_instance(&iat, g, model, inst)?;
            let key = inst.uuid.to_ascii_lowercase();
            let next_slot = seen.len();
            let slot = match seen.get_mut(&key) {
                Some((slot, prev)) => {
                    if prev.last == c {
                        return Err(problem(
                            format!("{iat}.uuid"),
                            format!("duplicate UUID {}", inst.uuid),
                        ));
                    }
                    if prev.last + 1 != c {
                        return Err(problem(
                            format!("{iat}.uuid"),
                            format!(
                                "{} was destroyed before and cannot come back: a recreated \
                                 MIG device gets a new UUID",
                                inst.uuid
                            ),
                        ));
                    }
                    if (prev.gpu_instance_id, prev.compute_instance_id, prev.profile)
                        != (inst.gpu_instance_id, inst.compute_instance_id, profile.name)
                    {
                        return Err(problem(
                            iat,
                            format!(
                                "{} is listed before as GPU instance {} / compute instance {} \
                                 ({}); a surviving MIG device keeps its ids and profile, a \
                                 different one needs a new UUID",
                                inst.uuid,
                                prev.gpu_instance_id,
                                prev.compute_instance_id,
                                prev.profile
                            ),
                        ));
                    }
                    prev.last = c;
                    *slot
                }
                None => {
                    seen.insert(
                        key,
                        (
                            next_slot,
                            Seen {
                                gpu_instance_id: inst.gpu_instance_id,
                                compute_instance_id: inst.compute_instance_id,
                                profile: profile.name,
                                placement_start: u32::MAX,
                                last: c,
                            },
                        ),
                    );
                    next_slot
                }
            };
            devices.push(MigDevice {
                slot,
                spec: inst.clone(),
                profile,
                placement_start: u32::MAX,
            });
        }
        devices.sort_by_key(|d| (d.spec.gpu_instance_id, d.spec.compute_instance_id));
        for w in devices.windows(2) {
            if w[0].spec.gpu_instance_id == w[1].spec.gpu_instance_id {
                return Err(problem(
                    format!("{cat}.instances"),
                    format!(
                        "gpu_instance_id {} is listed twice: the fake models one compute \
                         instance spanning each GPU instance",
                        w[0].spec.gpu_instance_id
                    ),
                ));
            }
        }
        if let Some(model) = model {
            place(&cat, model, &mut devices, &mut seen)?;
        }
        configs.push(MigConfig {
            from_s,
            enabled,
            pending: pending.unwrap_or(enabled),
            devices,
        });
    }
    Ok(Some(MigTimeline {
        model,
        configs,
        max_devices,
        stale_handle_error,
        slots: seen.len(),
    }))
}

/// Checks one instance entry and returns its profile.
fn check_instance(
    iat: &str,
    g: &GpuSpec,
    model: Option<&'static MigModel>,
    inst: &MigInstance,
) -> Result<&'static GpuInstanceProfile, Problem> {
    let model = model.ok_or_else(|| {
        problem(
            format!("{iat}.profile"),
            format!(
                "the fake has no MIG profiles for {:?}; MIG devices need one of: {}",
                g.name,
                mig_profiles::model_names()
            ),
        )
    })?;
    let profile = model.profile(&inst.profile).ok_or_else(|| {
        problem(
            format!("{iat}.profile"),
            format!(
                "{:?} is not a MIG profile of {}; use one of: {}",
                inst.profile,
                model.gpu_name,
                model.names()
            ),
        )
    })?;
    if !inst.uuid.starts_with("MIG-") {
        return Err(problem(format!("{iat}.uuid"), "must start with \"MIG-\""));
    }
    check_string(&format!("{iat}.uuid"), &inst.uuid, 80)?;
    check_string(
        &format!("{iat}.profile"),
        &format!("{} MIG {}", g.name, profile.name),
        96,
    )?;
    if let Some(total) = inst.memory_total_mib
        && total != profile.memory_mib
    {
        return Err(problem(
            format!("{iat}.memory_total_mib"),
            format!(
                "{total} differs from the {} profile's {} MiB; leave it out or give that",
                profile.name, profile.memory_mib
            ),
        ));
    }
    check_non_negative(&format!("{iat}.memory_used_mib"), &inst.memory_used_mib)?;
    if inst.memory_used_mib.max() > profile.memory_mib as f64 {
        return Err(problem(
            format!("{iat}.memory_used_mib"),
            format!(
                "can reach {} MiB, more than the device's {} MiB",
                inst.memory_used_mib.max(),
                profile.memory_mib
            ),
        ));
    }
    if let Some(gpm) = &inst.gpm {
        for id in names::GPM_METRICS.iter().map(|m| m.id) {
            if let Some((v, _)) = gpm.metric(id) {
                check_value(&format!("{iat}.gpm"), v)?;
            }
        }
    }
    Ok(profile)
}

/// Gives every device of one configuration a placement: surviving devices
/// keep theirs, explicit `placement_start`s are checked, the rest take the
/// first placement that fits (searching every combination), as the driver
/// would have to. Fails when the devices cannot coexist on one GPU.
fn place(
    cat: &str,
    model: &MigModel,
    devices: &mut [MigDevice],
    seen: &mut HashMap<String, (usize, Seen)>,
) -> Result<(), Problem> {
    let mut per_profile: HashMap<&str, u32> = HashMap::new();
    let mut compute = 0;
    for d in devices.iter() {
        let n = per_profile.entry(d.profile.name).or_default();
        *n += 1;
        if *n > d.profile.instance_count {
            return Err(problem(
                format!("{cat}.instances"),
                format!(
                    "{} {} devices, but {} has room for {}",
                    n, d.profile.name, model.gpu_name, d.profile.instance_count
                ),
            ));
        }
        compute += d.profile.slices;
    }
    if compute > model.compute_slices {
        return Err(problem(
            format!("{cat}.instances"),
            format!(
                "the devices take {compute} compute slices; {} has {}",
                model.gpu_name, model.compute_slices
            ),
        ));
    }
    // Fixed starts: a surviving device's, else an explicit one.
    let mut fixed = Vec::with_capacity(devices.len());
    for d in devices.iter() {
        let key = d.spec.uuid.to_ascii_lowercase();
        let kept = seen
            .get(&key)
            .map(|(_, s)| s.placement_start)
            .filter(|s| *s != u32::MAX);
        let start = match (kept, d.spec.placement_start) {
            (Some(k), Some(p)) if k != p => {
                return Err(problem(
                    format!("{cat}.instances"),
                    format!(
                        "{} moves from placement {k} to {p}; a surviving MIG device keeps \
                         its placement",
                        d.spec.uuid
                    ),
                ));
            }
            (Some(k), _) => Some(k),
            (None, p) => p,
        };
        if let Some(s) = start
            && !d.profile.placements.contains(&s)
        {
            return Err(problem(
                format!("{cat}.instances"),
                format!(
                    "{}: {} cannot start at memory slice {s}; its placements start at {:?}",
                    d.spec.uuid, d.profile.name, d.profile.placements
                ),
            ));
        }
        fixed.push(start);
    }
    let mut chosen = vec![0u32; devices.len()];
    if !search(devices, &fixed, 0, 0, &mut chosen) {
        let list: Vec<String> = devices
            .iter()
            .map(|d| format!("{} (GI {})", d.profile.name, d.spec.gpu_instance_id))
            .collect();
        return Err(problem(
            format!("{cat}.instances"),
            format!(
                "{} cannot hold {} at once: their memory placements overlap \
                 (check placement_start)",
                model.gpu_name,
                list.join(", ")
            ),
        ));
    }
    for (d, start) in devices.iter_mut().zip(chosen) {
        d.placement_start = start;
        if let Some((_, s)) = seen.get_mut(&d.spec.uuid.to_ascii_lowercase()) {
            s.placement_start = start;
        }
    }
    Ok(())
}

/// Depth-first search for non-overlapping placements (a bit per memory
/// slice in `used`).
fn search(
    devices: &[MigDevice],
    fixed: &[Option<u32>],
    i: usize,
    used: u32,
    chosen: &mut [u32],
) -> bool {
    let Some(d) = devices.get(i) else {
        return true;
    };
    let mask = |start: u32| ((1u32 << d.profile.placement_size) - 1) << start;
    let candidates: Vec<u32> = match fixed[i] {
        Some(s) => vec![s],
        None => d.profile.placements.to_vec(),
    };
    for start in candidates {
        let m = mask(start);
        if used & m == 0 {
            chosen[i] = start;
            if search(devices, fixed, i + 1, used | m, chosen) {
                return true;
            }
        }
    }
    false
}

/// Checks that the GPU's processes run in MIG devices exactly while MIG is
/// enabled, each in one device that exists for its whole life.
pub(super) fn check_processes(
    at: &str,
    g: &GpuSpec,
    timeline: Option<&MigTimeline>,
) -> Result<(), Problem> {
    for (i, p) in g.processes.iter().enumerate() {
        let pat = format!("{at}.processes[{i}]");
        if p.compute_instance_id.is_some() && p.gpu_instance_id.is_none() {
            return Err(problem(
                format!("{pat}.compute_instance_id"),
                "needs gpu_instance_id too",
            ));
        }
        let end = p.end_s.unwrap_or(f64::INFINITY);
        let mut slot = None;
        let windows = timeline.into_iter().flat_map(MigTimeline::windows);
        let mut any_window = false;
        for (config, from, until) in windows {
            any_window = true;
            if !(from < end && p.start_s < until) {
                continue;
            }
            let when = if from.is_finite() {
                format!(" from t = {from}")
            } else {
                String::new()
            };
            match (config.enabled, p.gpu_instance_id) {
                (false, Some(gi)) => {
                    return Err(problem(
                        format!("{pat}.gpu_instance_id"),
                        format!("is {gi}, but MIG is disabled{when} while the process runs"),
                    ));
                }
                (true, None) => {
                    return Err(problem(
                        pat,
                        format!(
                            "runs while MIG is enabled{when}: give the gpu_instance_id and \
                             compute_instance_id of the MIG device it runs in"
                        ),
                    ));
                }
                (false, None) => {}
                (true, Some(gi)) => {
                    let d = config
                        .devices
                        .iter()
                        .find(|d| d.spec.gpu_instance_id == gi)
                        .ok_or_else(|| {
                            problem(
                                format!("{pat}.gpu_instance_id"),
                                format!("no MIG device with gpu_instance_id {gi}{when}"),
                            )
                        })?;
                    if let Some(ci) = p.compute_instance_id
                        && ci != d.spec.compute_instance_id
                    {
                        return Err(problem(
                            format!("{pat}.compute_instance_id"),
                            format!(
                                "is {ci}, but GPU instance {gi}'s compute instance is {}",
                                d.spec.compute_instance_id
                            ),
                        ));
                    }
                    if slot.is_some_and(|s| s != d.slot) {
                        return Err(problem(
                            pat,
                            format!(
                                "outlives its MIG device: GPU instance {gi} is recreated{when}; \
                                 end the process before"
                            ),
                        ));
                    }
                    slot = Some(d.slot);
                }
            }
        }
        if !any_window && p.gpu_instance_id.is_some() {
            return Err(problem(
                format!("{pat}.gpu_instance_id"),
                "this GPU has no mig block",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Scenario;

    fn h100(mig: &str, processes: &str) -> String {
        super::super::tests::one_gpu(&format!(r#", "processes": [{processes}], "mig": {mig}"#))
    }

    fn inst(profile: &str, gi: u32, uuid_tail: u32) -> String {
        format!(
            r#"{{"profile": "{profile}", "gpu_instance_id": {gi}, "compute_instance_id": 0,
                "uuid": "MIG-00000000-0000-0000-0000-{uuid_tail:012x}", "memory_used_mib": 10}}"#
        )
    }

    fn error(json: &str) -> (String, String) {
        match Scenario::from_json_str(json) {
            Err(super::super::ScenarioError::Invalid { at, message, .. }) => (at, message),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn placements_are_found_and_kept_by_survivors() {
        let mig = format!(
            r#"{{"enabled": true, "instances": [{}, {}, {}, {}],
                "schedule": [{{"at_s": 30, "enabled": true, "instances": [{}, {}]}}]}}"#,
            inst("3g.40gb", 2, 1),
            inst("2g.20gb", 3, 2),
            inst("1g.10gb", 9, 3),
            inst("1g.10gb", 10, 4),
            inst("3g.40gb", 2, 1),
            inst("3g.40gb", 1, 5),
        );
        let s = Scenario::from_json_str(&h100(&mig, "")).expect("valid");
        let tl = s.devices()[0].mig.as_ref().expect("timeline");
        assert_eq!(tl.slots, 5);
        let before = tl.at(29.9);
        let gis: Vec<u32> = before
            .devices
            .iter()
            .map(|d| d.spec.gpu_instance_id)
            .collect();
        assert_eq!(gis, [2, 3, 9, 10], "NVML order: ascending GI id");
        let starts: Vec<u32> = before.devices.iter().map(|d| d.placement_start).collect();
        // With the 3g.40gb at 0, the second 1g.10gb finds no slot (a 1g
        // cannot start at 7): the search backtracks to the real layout.
        assert_eq!(starts, [4, 0, 2, 3]);
        let after = tl.at(30.0);
        assert_eq!(after.devices.len(), 2);
        let survivor = &after.devices[1];
        assert_eq!(survivor.spec.gpu_instance_id, 2);
        assert_eq!(survivor.slot, before.devices[0].slot);
        assert_eq!(survivor.placement_start, before.devices[0].placement_start);
        assert_eq!(after.devices[0].slot, 4);
        assert!(tl.device(before.devices[1].slot, 30.0).is_none());
        assert_eq!(tl.max_device_count(0.0), 7);
    }

    #[test]
    fn impossible_layouts_are_rejected() {
        let eight = (0..8)
            .map(|i| inst("1g.10gb", 7 + i, i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let (at, msg) = error(&h100(
            &format!(r#"{{"enabled": true, "max_devices": 8, "instances": [{eight}]}}"#),
            "",
        ));
        assert_eq!(at, "gpus[0].mig.instances");
        assert!(msg.contains("8 1g.10gb devices"), "{msg}");

        let (_, msg) = error(&h100(
            &format!(
                r#"{{"enabled": true, "instances": [{}, {}, {}]}}"#,
                inst("3g.40gb", 1, 1),
                inst("3g.40gb", 2, 2),
                inst("1g.10gb", 9, 3)
            ),
            "",
        ));
        assert!(
            msg.contains("compute slices") || msg.contains("overlap"),
            "{msg}"
        );

        let (at, msg) = error(&h100(
            &format!(
                r#"{{"enabled": true, "instances": [{}]}}"#,
                inst("3g.20gb", 1, 1)
            ),
            "",
        ));
        assert_eq!(at, "gpus[0].mig.instances[0].profile");
        assert!(msg.contains("1g.10gb, 1g.10gb+me"), "{msg}");

        let (at, msg) = error(&h100(
            &format!(
                r#"{{"enabled": true, "instances": [{}],
                    "schedule": [{{"at_s": 5, "enabled": false}},
                                 {{"at_s": 9, "enabled": true, "instances": [{}]}}]}}"#,
                inst("1g.10gb", 7, 1),
                inst("1g.10gb", 7, 1)
            ),
            "",
        ));
        assert_eq!(at, "gpus[0].mig.schedule[1].instances[0].uuid");
        assert!(msg.contains("new UUID"), "{msg}");
    }

    #[test]
    fn processes_follow_the_mig_state() {
        let mig = format!(
            r#"{{"enabled": false, "schedule": [{{"at_s": 30, "enabled": true, "instances": [{}]}}]}}"#,
            inst("7g.80gb", 0, 1)
        );
        let ok = r#"{"pid": 1, "name": "a", "type": "compute", "end_s": 25},
                    {"pid": 2, "name": "b", "type": "compute", "start_s": 31,
                     "gpu_instance_id": 0, "compute_instance_id": 0}"#;
        assert!(Scenario::from_json_str(&h100(&mig, ok)).is_ok());
        let (at, msg) = error(&h100(&mig, r#"{"pid": 1, "name": "a", "type": "compute"}"#));
        assert_eq!(at, "gpus[0].processes[0]");
        assert!(msg.contains("MIG is enabled from t = 30"), "{msg}");
        let (at, msg) = error(&h100(
            &mig,
            r#"{"pid": 2, "name": "b", "type": "compute", "gpu_instance_id": 0}"#,
        ));
        assert_eq!(at, "gpus[0].processes[0].gpu_instance_id");
        assert!(msg.contains("MIG is disabled"), "{msg}");
    }
}
