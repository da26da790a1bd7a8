//! The core's modules point one way: no import circles (see
//! ARCHITECTURE.md). Read from the sources: every `crate::…` and `super::…`
//! path outside test code is an edge from the module that writes it to the
//! module it names; the graph must have no cycle, and no file may pass the
//! size at which it should be split by concern.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles that are known and on their way out, as (module, module): none
/// (the job report types live in `report`, below both `jobs` and the
/// encoder, and `jobs` no longer calls the encoder).
const KNOWN_CIRCLES: &[(&str, &str)] = &[];

/// Lines a hand-written source file may have before it holds a second
/// concern (STYLE.md: "when a file passes ~800 lines").
const MAX_LINES: usize = 850;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, by module path (`""` for the crate root,
/// `sampler::gpu`, …).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(src()).expect("under src");
            let mut parts: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            (parts.join("::"), path)
        })
        .collect()
}

/// The source without its `#[cfg(test)]` module and comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module a path starting at `base` (already resolved) names: the
/// longest known module its segments spell.
fn target(segments: &[&str], known: &BTreeMap<String, PathBuf>) -> Option<String> {
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|m| known.contains_key(m))
}

/// Edges module → module, from `crate::a::b` and `super::a` paths,
/// including those inside `use crate::{a, b::c}` groups.
fn edges(known: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in known {
        let text = code(&std::fs::read_to_string(path).expect("read source"));
        let parent: Vec<&str> = if module.is_empty() {
            Vec::new()
        } else {
            let mut p: Vec<&str> = module.split("::").collect();
            p.pop();
            p
        };
        for (prefix, base) in [("crate::", Vec::<&str>::new()), ("super::", parent)] {
            for (i, _) in text.match_indices(prefix) {
                if i > 0
                    && text[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                {
                    continue;
                }
                let rest = &text[i + prefix.len()..];
                // `crate::{a, b::c}`: every path of the group.
                let paths: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    group[..end]
                        .split(',')
                        .map(|p| p.trim().to_owned())
                        .collect()
                } else {
                    let end = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                        .unwrap_or(rest.len());
                    vec![rest[..end].trim_end_matches(':').to_owned()]
                };
                for p in paths {
                    let mut segments = base.clone();
                    segments.extend(p.split("::").filter(|s| !s.is_empty()));
                    let Some(to) = target(&segments, known) else {
                        continue;
                    };
                    // A path to the crate root names a re-export: the
                    // module behind it is what is depended on.
                    assert!(
                        !to.is_empty() || module.is_empty(),
                        "{module} uses crate::{p} through the crate root's re-exports; \
                         name the module it is defined in"
                    );
                    // A module using its own items or a child's is no circle.
                    if to != *module && !to.starts_with(&format!("{module}::")) {
                        graph.entry(module.clone()).or_default().insert(to);
                    }
                }
            }
        }
    }
    graph
}

/// Collapses a module into its top-level module (`sampler::gpu` →
/// `sampler`) for edges that leave it.
fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The cycles of `graph` (each as a sorted list of its members).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    // Strongly connected components by Tarjan, iteratively small enough to
    // recurse: the core has a few dozen modules.
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: BTreeSet<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        let next: Vec<&'a str> = s
            .graph
            .get(v)
            .map(|n| n.iter().map(String::as_str).collect())
            .unwrap_or_default();
        for w in next {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut members = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                members.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if members.len() > 1 {
                members.sort();
                s.out.insert(members);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: BTreeSet::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn modules_point_one_way() {
    let known = modules();
    assert!(known.contains_key("sampler::gpu"), "{known:?}");
    let graph = edges(&known);
    // The edges the layout rests on are seen (the reader works).
    assert!(graph["sampler::gpu"].contains("nvml_error"), "{graph:?}");
    assert!(graph["xid"].contains("nvml_error"), "{graph:?}");
    assert!(graph["encoder::snapshot"].contains("series"), "{graph:?}");

    // Inside a directory module: no circle among its files.
    let found = cycles(&graph);
    assert!(
        found
            .iter()
            .all(|c| c.iter().map(|m| top(m)).collect::<BTreeSet<_>>().len() > 1),
        "import circle inside one module: {found:?}"
    );
    // Between top-level modules: only the known circles.
    let mut collapsed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &graph {
        for to in tos {
            if top(from) != top(to) {
                collapsed
                    .entry(top(from).to_owned())
                    .or_default()
                    .insert(top(to).to_owned());
            }
        }
    }
    for circle in cycles(&collapsed) {
        let pair = match circle.as_slice() {
            [a, b] => Some((a.as_str(), b.as_str())),
            _ => None,
        };
        assert!(
            pair.is_some_and(|p| KNOWN_CIRCLES.contains(&p)),
            "import circle between modules {circle:?}: make one of them stop importing the \
             other (move the shared part below both)"
        );
    }
}

#[test]
fn no_hand_written_file_holds_two_concerns_by_size() {
    for (module, path) in modules() {
        // Generated tables (DCGM field names, XID texts) are data.
        if path.ends_with("generated.rs") {
            continue;
        }
        let lines = std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .count();
        assert!(
            lines <= MAX_LINES,
            "{} ({module}) has {lines} lines: split it by concern",
            path.display()
        );
    }
}
