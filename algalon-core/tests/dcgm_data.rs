//! The DCGM field names and dcgm-exporter's XID texts compiled into the core
//! are exactly what NVIDIA's files say.
//!
//! The files are vendored unchanged under `testing/upstream/` (sources,
//! commits and licences in its README). This test derives the tables from
//! them — field names by the rules of go-dcgm's `cmd/gen-fields`, which
//! builds the maps dcgm-exporter looks CSV rows up in — and compares them
//! with `src/dcgm_fields/generated.rs` and `src/xid_text/generated.rs`.
//! `make dcgm-data` (`UPDATE_DCGM_DATA=1`) rewrites both files instead.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn upstream(path: &str) -> String {
    let file = common::workspace().join("testing/upstream").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn source_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Compares `rendered` with the checked-in `path`, or rewrites it under
/// `UPDATE_DCGM_DATA=1`.
fn check_generated(path: &str, rendered: &str) {
    let file = source_file(path);
    if std::env::var_os("UPDATE_DCGM_DATA").is_some() {
        std::fs::write(&file, rendered).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        return;
    }
    let current = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        current == rendered,
        "{} is not what testing/upstream/ gives: run `make dcgm-data` and review the diff",
        file.display()
    );
}

/// What `dcgm_fields.h` defines: numbered fields and deprecated aliases.
struct Header {
    fields: Vec<(String, u16)>,
    aliases: Vec<(String, String)>,
}

/// go-dcgm `cmd/gen-fields` `containsDeprecatedMarker`.
fn deprecated_marker(line: &str) -> bool {
    line.to_lowercase().contains("deprecated:")
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `#define NAME REST` with NAME a `DCGM_FI_` word: (NAME, REST after the
/// whitespace that follows it).
fn define(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("#define")?;
    let rest = rest.strip_prefix(|c: char| c.is_ascii_whitespace())?;
    let rest = rest.trim_start();
    if !rest.starts_with("DCGM_FI_") {
        return None;
    }
    let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
    let (name, after) = rest.split_at(end);
    let after = after.strip_prefix(|c: char| c.is_ascii_whitespace())?;
    Some((name, after.trim_start()))
}

/// go-dcgm `cmd/gen-fields` `parseHeader`, keeping only what decides which
/// names exist: `#define DCGM_FI_X 123` is a field; `#define DCGM_FI_OLD
/// DCGM_FI_NEW` is an alias when it stands in the `#if DCGM_DEPRECATED` block
/// or under a "Deprecated:" comment.
fn parse_header(text: &str) -> Header {
    let mut fields = Vec::new();
    let mut aliases = Vec::new();
    let mut in_comment_block = false;
    let mut comment_has_deprecated = false;
    let mut in_deprecated_block = false;
    let mut depth = 0usize;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if matches!(
            trimmed,
            "#ifdef DCGM_DEPRECATED" | "#if DCGM_DEPRECATED" | "#if defined(DCGM_DEPRECATED)"
        ) {
            in_deprecated_block = true;
            depth = 1;
            comment_has_deprecated = false;
            continue;
        }
        if in_deprecated_block {
            if ["#ifdef ", "#ifndef ", "#if "]
                .iter()
                .any(|p| trimmed.starts_with(p))
            {
                depth += 1;
                comment_has_deprecated = false;
                continue;
            }
            if trimmed.starts_with("#endif") {
                depth -= 1;
                in_deprecated_block = depth > 0;
                comment_has_deprecated = false;
                continue;
            }
        }
        if trimmed.starts_with("//") {
            comment_has_deprecated |= deprecated_marker(trimmed);
            continue;
        }
        let (open, close) = (line.contains("/*"), line.contains("*/"));
        if open && close && trimmed.starts_with("/*") {
            comment_has_deprecated = deprecated_marker(line);
            in_comment_block = false;
            continue;
        }
        if open && close && deprecated_marker(line) {
            comment_has_deprecated = true;
        }
        if open && !close {
            in_comment_block = true;
            comment_has_deprecated = false;
            continue;
        }
        if close && in_comment_block {
            in_comment_block = false;
            continue;
        }
        if in_comment_block {
            comment_has_deprecated |= deprecated_marker(line);
            continue;
        }
        if let Some((name, rest)) = define(line) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() {
                let id = digits.parse().expect("a field id fits in u16");
                fields.push((name.to_owned(), id));
            } else if rest.starts_with("DCGM_FI_") {
                let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
                let (target, tail) = rest.split_at(end);
                let tail = tail.trim();
                let comment_only = tail.is_empty()
                    || tail.starts_with("//")
                    || (tail.starts_with("/*") && tail.ends_with("*/"));
                if comment_only && (in_deprecated_block || comment_has_deprecated) {
                    aliases.push((name.to_owned(), target.to_owned()));
                }
            }
        }
        comment_has_deprecated = false;
    }
    Header { fields, aliases }
}

/// Range markers (`DCGM_FI_FIRST_NVSWITCH_FIELD_ID`, …) bound groups of ids;
/// they are not fields.
fn is_range_marker(name: &str) -> bool {
    name.ends_with("_FIELD_ID") && (name.contains("_FIRST_") || name.contains("_LAST_"))
}

/// go-dcgm's `legacy_fields.csv`: `name,id` rows of dcgm-exporter 1.x names.
fn parse_legacy(text: &str) -> Vec<(String, u16)> {
    let mut rows = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    assert_eq!(rows.next(), Some("name,id"), "legacy_fields.csv header");
    rows.map(|row| {
        let (name, id) = row.split_once(',').unwrap_or_else(|| panic!("{row:?}"));
        let name = name.trim();
        assert_eq!(name, name.to_lowercase(), "1.x names are lowercase");
        (name.to_owned(), id.trim().parse().expect("numeric id"))
    })
    .collect()
}

/// Every name: (name, id, spelling), sorted by name.
fn dcgm_names() -> Vec<(String, u16, &'static str)> {
    let header = parse_header(&upstream("go-dcgm/dcgm_fields.h"));
    let ids: BTreeMap<&str, u16> = header
        .fields
        .iter()
        .map(|(n, id)| (n.as_str(), *id))
        .collect();
    let mut names: BTreeMap<String, (u16, &'static str)> = BTreeMap::new();
    let mut add = |name: &str, id: u16, spelling: &'static str| {
        let before = names.insert(name.to_owned(), (id, spelling));
        assert!(before.is_none(), "{name} is defined twice");
    };
    for (name, id) in &header.fields {
        if !is_range_marker(name) {
            add(name, *id, "C");
        }
    }
    for (alias, target) in &header.aliases {
        let id = ids
            .get(target.as_str())
            .unwrap_or_else(|| panic!("alias {alias} points at unknown {target}"));
        add(alias, *id, "D");
    }
    for (name, id) in parse_legacy(&upstream("go-dcgm/legacy_fields.csv")) {
        assert!(
            ids.values().any(|v| *v == id),
            "1.x name {name} has id {id}, which dcgm_fields.h does not define"
        );
        add(&name, id, "X");
    }
    names
        .into_iter()
        .map(|(name, (id, s))| (name, id, s))
        .collect()
}

const GENERATED: &str =
    "// @generated by algalon-core/tests/dcgm_data.rs (`make dcgm-data`) from\n";

fn render_names(names: &[(String, u16, &str)]) -> String {
    let mut out = format!(
        "{GENERATED}// testing/upstream/go-dcgm/dcgm_fields.h and testing/upstream/go-dcgm/legacy_fields.csv.\n\
         // Do not edit: change the upstream files and regenerate.\n\n\
         use super::Spelling::{{self, Current as C, Deprecated as D, Exporter1x as X}};\n\n\
         /// Every name, sorted by name (byte order): (name, DCGM field id, spelling).\n\
         pub(super) static NAMES: &[(&str, u16, Spelling)] = &[\n"
    );
    for (name, id, spelling) in names {
        out.push_str(&format!("    ({name:?}, {id}, {spelling}),\n"));
    }
    out.push_str("];\n");
    out
}

/// dcgm-exporter's `xidErrCodeToText`: `N: "text",` rows, N counting from 0.
fn parse_xid_texts(text: &str) -> Vec<String> {
    let start = text
        .find("var xidErrCodeToText = []string{")
        .expect("xidErrCodeToText in xid_errors.go");
    let body = &text[start..];
    let body = &body[..body.find("\n}").expect("end of the table")];
    let mut texts = Vec::new();
    for line in body.lines().skip(1) {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let (code, rest) = line.split_once(':').unwrap_or_else(|| panic!("{line:?}"));
        let code: usize = code.trim().parse().unwrap_or_else(|_| panic!("{line:?}"));
        assert_eq!(code, texts.len(), "XID codes run 0, 1, 2, … without gaps");
        let quoted = rest
            .trim()
            .strip_suffix(',')
            .unwrap_or_else(|| panic!("{line:?}"));
        let inner = quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(!inner.contains('\\'), "no escapes expected: {line:?}");
        texts.push(inner.to_owned());
    }
    texts
}

fn render_xid(texts: &[String]) -> String {
    let mut out = format!(
        "{GENERATED}// testing/upstream/dcgm-exporter/xid_errors.go.\n\
         // Do not edit: change the upstream file and regenerate.\n\n\
         /// dcgm-exporter's `xidErrCodeToText`, indexed by XID number.\n\
         pub(super) static XID_TEXT: &[&str] = &[\n"
    );
    for text in texts {
        out.push_str(&format!("    {text:?},\n"));
    }
    out.push_str("];\n");
    out
}

#[test]
fn dcgm_field_names_match_upstream() {
    let names = dcgm_names();
    check_generated("src/dcgm_fields/generated.rs", &render_names(&names));

    // The same names through the public API.
    let known: Vec<_> = algalon_core::dcgm_fields::names().collect();
    assert_eq!(known.len(), names.len());
    for ((name, id, _), k) in names.iter().zip(&known) {
        assert_eq!((k.name, k.id), (name.as_str(), *id));
    }
    // What dcgm-exporter's own CSVs and manuals rely on.
    let id = |n: &str| algalon_core::dcgm_fields::lookup(n).map(|k| k.id);
    assert_eq!(id("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"), Some(112));
    assert_eq!(id("DCGM_FI_DEV_CLOCKS_EVENT_REASONS"), Some(112));
    assert_eq!(id("DCGM_FI_DEV_POWER_USAGE_INSTANT"), Some(157));
    assert_eq!(id("DCGM_FI_DEV_FB_USED_PERCENT"), Some(254));
    assert_eq!(id("DCGM_FI_DEV_PERSISTENCE_MODE"), Some(66));
    assert_eq!(id("DCGM_FI_DEV_MIG_MODE"), Some(67));
    assert_eq!(id("dcgm_sm_clock"), Some(100));
    assert!(names.len() > 1000, "{} names", names.len());
}

#[test]
fn xid_texts_match_upstream() {
    let texts = parse_xid_texts(&upstream("dcgm-exporter/xid_errors.go"));
    check_generated("src/xid_text/generated.rs", &render_xid(&texts));
    assert_eq!(algalon_core::xid_text::XID_TEXT.len(), texts.len());
    for (code, text) in texts.iter().enumerate() {
        let code = i64::try_from(code).expect("small");
        assert_eq!(algalon_core::xid_text::err_msg(code), text);
    }
}

#[test]
fn the_header_parser_follows_gen_fields() {
    let header = parse_header(
        "/**\n * Current clock event reasons\n */\n#define DCGM_FI_DEV_CLOCKS_EVENT_REASONS 112\n\n\
         /**\n * Deprecated: Use DCGM_FI_DEV_CLOCKS_EVENT_REASONS instead\n */\n\
         #define DCGM_FI_DEV_CLOCK_THROTTLE_REASONS DCGM_FI_DEV_CLOCKS_EVENT_REASONS\n\
         #define DCGM_FI_PROF_FIRST DCGM_FI_DEV_CLOCKS_EVENT_REASONS\n\
         #define DCGM_FI_MAX_FIELDS (DCGM_FI_DEV_CLOCKS_EVENT_REASONS + 1)\n\
         #if DCGM_DEPRECATED\n\
         #define DCGM_FI_DEV_OLD DCGM_FI_DEV_CLOCKS_EVENT_REASONS // 112\n\
         #endif\n\
         #define DCGM_FI_DEV_AFTER DCGM_FI_DEV_CLOCKS_EVENT_REASONS\n",
    );
    assert_eq!(
        header.fields,
        vec![("DCGM_FI_DEV_CLOCKS_EVENT_REASONS".to_owned(), 112)]
    );
    let aliases: Vec<_> = header.aliases.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        aliases,
        ["DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "DCGM_FI_DEV_OLD"],
        "range sentinels and aliases outside the deprecated block are not names"
    );
}
