//! The selector grammar (see the module docs of [`crate::devices`]).

use std::fmt;

/// A device-selector text that does not parse: what is wrong, quoting the
/// input, and what is accepted instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// One device, as named by a user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// An NVML index (CUDA's integer before `CUDA_VISIBLE_DEVICES` applies).
    Index(u32),
    /// A CUDA index, `cuda:N`: the N-th device this process sees.
    Cuda(u32),
    /// A `GPU-` UUID or a prefix of one, with or without `GPU-`, as given.
    Uuid(String),
    /// A `MIG-` instance id, as given.
    Mig(String),
}

impl fmt::Display for Selector {
    /// The entry as it can be written back (`3`, `cuda:1`, `GPU-5e2d…`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Index(i) => write!(f, "{i}"),
            Selector::Cuda(i) => write!(f, "cuda:{i}"),
            Selector::Uuid(s) | Selector::Mig(s) => f.write_str(s),
        }
    }
}

/// `text` without `prefix`, compared in any case.
pub(crate) fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn is_uuid_text(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Parses one entry: `3`, `cuda:1`, `GPU-…` (or its hex without `GPU-`),
/// `MIG-…`; surrounding spaces are ignored, case is not significant.
pub fn parse_entry(text: &str) -> Result<Selector, SelectorError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(SelectorError("empty device entry".to_owned()));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map(Selector::Index)
            .map_err(|_| SelectorError(format!("device index {t:?} is too large")));
    }
    if let Some(n) = strip_prefix_ci(t, "cuda:") {
        return match n.trim().parse() {
            Ok(i) if n.trim().bytes().all(|b| b.is_ascii_digit()) => Ok(Selector::Cuda(i)),
            _ => Err(SelectorError(format!(
                "{t:?}: expected cuda:N with N a CUDA index (0, 1, …)"
            ))),
        };
    }
    if let Some(rest) = strip_prefix_ci(t, "MIG-") {
        if rest.is_empty() {
            return Err(SelectorError(format!(
                "{t:?}: a MIG id needs its UUID after MIG-"
            )));
        }
        return Ok(Selector::Mig(t.to_owned()));
    }
    if let Some(rest) = strip_prefix_ci(t, "GPU-")
        && is_uuid_text(rest)
    {
        return Ok(Selector::Uuid(t.to_owned()));
    }
    if t.starts_with(|c: char| c.is_ascii_hexdigit()) && is_uuid_text(t) {
        return Ok(Selector::Uuid(t.to_owned()));
    }
    Err(SelectorError(format!(
        "{t:?} is not a device: give an NVML index (0), a GPU UUID or a unique prefix of one (GPU-5e2d…), a MIG id (MIG-…) or a CUDA index (cuda:0)"
    )))
}

/// A comma-separated list of entries (`"0,2"`, `"GPU-5e4b, 1"`), each
/// parsed by [`parse_entry`], duplicates dropped. An empty list or entry is
/// an error.
pub fn parse_list(text: &str) -> Result<Vec<Selector>, SelectorError> {
    let mut out: Vec<Selector> = Vec::new();
    for item in text.split(',') {
        if item.trim().is_empty() {
            return Err(SelectorError(format!(
                "empty entry in device list {text:?}: separate indices or UUIDs by single commas, e.g. \"0,1\""
            )));
        }
        let s =
            parse_entry(item).map_err(|e| SelectorError(format!("device list {text:?}: {e}")))?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// `CUDA_VISIBLE_DEVICES` as CUDA reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VisibleList {
    /// The entries before the first invalid one, duplicates dropped, in order.
    pub entries: Vec<Selector>,
    /// What CUDA (and so Algalon) ignores: the first invalid entry and
    /// everything after it, described for a warning; `None` when the whole
    /// value was used (or it was empty).
    pub ignored: Option<String>,
}

/// Parses `CUDA_VISIBLE_DEVICES` exactly as CUDA does: entries separated by
/// `,`; at the first invalid entry (empty, negative, not an index or a
/// `GPU-`/`MIG-` id) parsing stops and the rest is ignored. `cuda:N` is not
/// CUDA syntax, so it stops parsing here too.
pub fn parse_cuda_visible_devices(value: &str) -> VisibleList {
    let mut out = VisibleList::default();
    if value.trim().is_empty() {
        return out;
    }
    let items: Vec<&str> = value.split(',').collect();
    for (pos, item) in items.iter().enumerate() {
        match parse_entry(item) {
            Ok(Selector::Cuda(_)) | Err(_) => {
                out.ignored = Some(format!(
                    "entry {} ({:?}) is not a valid device, so CUDA ignores it and everything after it ({:?})",
                    pos + 1,
                    item.trim(),
                    items[pos..].join(",")
                ));
                break;
            }
            Ok(s) => {
                if !out.entries.contains(&s) {
                    out.entries.push(s);
                }
            }
        }
    }
    out
}

/// Which whole GPUs a [`DeviceSpec`] selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuSet {
    /// Every GPU.
    All,
    /// No whole GPU (only `i…` was given).
    None,
    /// These, in the order given.
    List(Vec<Selector>),
}

/// Which MIG instances a [`DeviceSpec`] selects (dcgm-exporter's `i`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InstanceSet {
    /// None.
    #[default]
    None,
    /// Every instance (`i`, `f`).
    All,
    /// GPU instance ids (`i:0,2`).
    List(Vec<u32>),
}

/// dcgm-exporter's `-d/--devices` value:
/// `f | g[:LIST][+][i[:LIST]] | i[:LIST]`, plus Algalon's `all`, a bare
/// LIST, and UUIDs inside a GPU LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// The whole GPUs.
    pub gpus: GpuSet,
    /// The MIG instances.
    pub instances: InstanceSet,
}

/// Widest `A-B` range taken (a typo such as `0-99999999` is an error).
const MAX_RANGE: u32 = 4096;

impl DeviceSpec {
    /// Every GPU and instance (`f`).
    pub const ALL: DeviceSpec = DeviceSpec {
        gpus: GpuSet::All,
        instances: InstanceSet::All,
    };

    /// Parses a `-d` value. Errors quote the value and say what is accepted.
    pub fn parse(text: &str) -> Result<DeviceSpec, SelectorError> {
        let t = text.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("f") || t.eq_ignore_ascii_case("all") {
            return Ok(DeviceSpec::ALL);
        }
        let (g_part, i_part) = match t.split_once('+') {
            Some((g, i)) => (Some(g.trim()), Some(i.trim()).filter(|i| !i.is_empty())),
            None if letter(t) == Some('i') => (None, Some(t)),
            None => (Some(t), None),
        };
        let gpus = match g_part {
            None => GpuSet::None,
            Some(g) => parse_gpu_part(text, g)?,
        };
        let instances = match i_part {
            None => InstanceSet::None,
            Some(i) => parse_instance_part(text, i)?,
        };
        Ok(DeviceSpec { gpus, instances })
    }
}

/// `g` / `i` (any case) when `part` is that letter alone or before `:`.
fn letter(part: &str) -> Option<char> {
    let head = part.split(':').next()?.trim();
    match head {
        "g" | "G" => Some('g'),
        "i" | "I" => Some('i'),
        "f" | "F" => Some('f'),
        _ => None,
    }
}

fn split_letter<'a>(
    text: &str,
    part: &'a str,
) -> Result<(Option<char>, Option<&'a str>), SelectorError> {
    let pieces: Vec<&str> = part.split(':').collect();
    match (letter(part), pieces.len()) {
        (Some('f'), 1) => Ok((Some('f'), None)),
        (Some('f'), _) => Err(SelectorError(format!(
            "device option {text:?}: no range can follow the flex option `f`"
        ))),
        (Some(l), 1) => Ok((Some(l), None)),
        (Some(l), 2) => Ok((Some(l), Some(pieces[1]))),
        (Some(_), _) => Err(SelectorError(format!(
            "device option {text:?}: there can only be one `:` range after a letter"
        ))),
        // A bare list; a `:` inside it can only be a stray one.
        (None, 1) => Ok((None, Some(part))),
        (None, _) => Err(SelectorError(format!(
            "device option {text:?}: the only letters before `:LIST` are g and i (or f alone)"
        ))),
    }
}

fn parse_gpu_part(text: &str, part: &str) -> Result<GpuSet, SelectorError> {
    let (l, list) = split_letter(text, part)?;
    match (l, list) {
        (Some('f'), _) => Ok(GpuSet::All),
        (Some('i'), _) => Err(SelectorError(format!(
            "device option {text:?}: `i` comes after `+` (g[:LIST]+i[:LIST])"
        ))),
        (_, None) => Ok(GpuSet::All),
        (_, Some(list)) => {
            let mut out: Vec<Selector> = Vec::new();
            for item in list.split(',') {
                for s in parse_item(text, item)? {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
            Ok(GpuSet::List(out))
        }
    }
}

fn parse_instance_part(text: &str, part: &str) -> Result<InstanceSet, SelectorError> {
    let (l, list) = split_letter(text, part)?;
    if l != Some('i') {
        return Err(SelectorError(format!(
            "device option {text:?}: after `+` comes i or i:LIST (MIG instances)"
        )));
    }
    let Some(list) = list else {
        return Ok(InstanceSet::All);
    };
    let mut out: Vec<u32> = Vec::new();
    for item in list.split(',') {
        for s in parse_item(text, item)? {
            let Selector::Index(i) = s else {
                return Err(SelectorError(format!(
                    "device option {text:?}: MIG instances are given by number, not {:?}",
                    s.to_string()
                )));
            };
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    Ok(InstanceSet::List(out))
}

/// One LIST item: `N`, `A-B`, or (GPUs only) a UUID.
fn parse_item(text: &str, item: &str) -> Result<Vec<Selector>, SelectorError> {
    let item = item.trim();
    if item.is_empty() {
        return Err(SelectorError(format!(
            "empty entry in device list {text:?}"
        )));
    }
    if let Some((a, b)) = item.split_once('-')
        && let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>())
    {
        if a > b {
            return Err(SelectorError(format!(
                "device range {item:?} runs backwards"
            )));
        }
        if b - a > MAX_RANGE {
            return Err(SelectorError(format!("device range {item:?} is too large")));
        }
        return Ok((a..=b).map(Selector::Index).collect());
    }
    match parse_entry(item) {
        Ok(s @ (Selector::Index(_) | Selector::Uuid(_))) => Ok(vec![s]),
        // dcgm-exporter's -d takes no MIG UUID: its instances are `i`.
        Ok(Selector::Mig(id)) => Err(SelectorError(format!(
            "device option {text:?}: {id:?} is a MIG device UUID; MIG instances are selected \
             by GPU instance id after `+` (`g+i` every instance, `g:0+i:1,2` GPU 0's \
             instances 1 and 2), as dcgm-exporter's -d does"
        ))),
        Ok(other) => Err(SelectorError(format!(
            "device option {text:?}: {:?} cannot be used here: give NVML indices, A-B ranges or GPU UUIDs",
            other.to_string()
        ))),
        Err(e) => Err(SelectorError(format!("device option {text:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(v: &[u32]) -> Vec<Selector> {
        v.iter().copied().map(Selector::Index).collect()
    }

    #[test]
    fn entries_in_every_form_and_case() {
        assert_eq!(parse_entry(" 3 "), Ok(Selector::Index(3)));
        assert_eq!(parse_entry("CUDA:1"), Ok(Selector::Cuda(1)));
        assert_eq!(parse_entry("cuda:1"), Ok(Selector::Cuda(1)));
        assert_eq!(
            parse_entry("gpu-5E2D"),
            Ok(Selector::Uuid("gpu-5E2D".into()))
        );
        assert_eq!(parse_entry("5e2d-aa"), Ok(Selector::Uuid("5e2d-aa".into())));
        assert_eq!(
            parse_entry("MIG-x/1/2"),
            Ok(Selector::Mig("MIG-x/1/2".into()))
        );
        for bad in [
            "",
            "-1",
            "cuda:",
            "cuda:-1",
            "foo",
            "GPU-xyz",
            "MIG-",
            "1.5",
            "99999999999",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(Selector::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn cuda_visible_devices_stops_at_the_first_invalid_entry() {
        let p = parse_cuda_visible_devices("1,,2");
        assert_eq!(p.entries, idx(&[1]));
        let why = p.ignored.expect("noted");
        assert!(why.contains("entry 2") && why.contains("\",2\""), "{why}");
        assert_eq!(parse_cuda_visible_devices("0,2,-1,1").entries, idx(&[0, 2]));
        assert_eq!(parse_cuda_visible_devices("0,cuda:1,1").entries, idx(&[0]));
        assert_eq!(parse_cuda_visible_devices("2, 0,2").entries, idx(&[2, 0]));
        assert_eq!(parse_cuda_visible_devices(""), VisibleList::default());
        let whole = parse_cuda_visible_devices("GPU-aa,MIG-bb");
        assert_eq!(whole.ignored, None);
        assert_eq!(
            whole.entries,
            vec![
                Selector::Uuid("GPU-aa".into()),
                Selector::Mig("MIG-bb".into())
            ]
        );
    }

    #[test]
    fn dcgm_exporter_device_options() {
        let all = Ok(DeviceSpec::ALL);
        assert_eq!(DeviceSpec::parse("f"), all);
        assert_eq!(DeviceSpec::parse("F"), all);
        assert_eq!(DeviceSpec::parse("all"), all);
        let g = |gpus: GpuSet, instances: InstanceSet| Ok(DeviceSpec { gpus, instances });
        assert_eq!(DeviceSpec::parse("g"), g(GpuSet::All, InstanceSet::None));
        assert_eq!(DeviceSpec::parse("g+i"), g(GpuSet::All, InstanceSet::All));
        assert_eq!(DeviceSpec::parse("g+"), g(GpuSet::All, InstanceSet::None));
        assert_eq!(DeviceSpec::parse("i"), g(GpuSet::None, InstanceSet::All));
        assert_eq!(
            DeviceSpec::parse("i:0,2-3"),
            g(GpuSet::None, InstanceSet::List(vec![0, 2, 3]))
        );
        assert_eq!(
            DeviceSpec::parse("g:0-3"),
            g(GpuSet::List(idx(&[0, 1, 2, 3])), InstanceSet::None)
        );
        assert_eq!(
            DeviceSpec::parse("g:0,2"),
            g(GpuSet::List(idx(&[0, 2])), InstanceSet::None)
        );
        assert_eq!(
            DeviceSpec::parse("g:1+i:0"),
            g(GpuSet::List(idx(&[1])), InstanceSet::List(vec![0]))
        );
        assert_eq!(
            DeviceSpec::parse("1, GPU-5e2d-aa,1"),
            g(
                GpuSet::List(vec![
                    Selector::Index(1),
                    Selector::Uuid("GPU-5e2d-aa".into())
                ]),
                InstanceSet::None
            )
        );
        for bad in [
            "f:0", "g:0:1", "x:0", "g:", "0,,1", "3-1", "0-99999", "g:cuda:0", "g+g", "i:GPU-aa",
            "g:MIG-aa", "i+g",
        ] {
            let err = DeviceSpec::parse(bad).expect_err(bad).to_string();
            assert!(!err.is_empty() && !err.contains('\n'), "{bad}: {err}");
        }
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_list("0, GPU-aa,0"),
            Ok(vec![Selector::Index(0), Selector::Uuid("GPU-aa".into())])
        );
        assert!(parse_list("").is_err());
        assert!(parse_list("0,,1").is_err());
        assert!(parse_list("0,bogus").is_err());
    }
}
