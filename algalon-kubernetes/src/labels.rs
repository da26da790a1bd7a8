//! Pod labels on GPU series (`--kubernetes-enable-pod-labels`): which to
//! keep (`--kubernetes-pod-label-allowlist-regex`) and how their keys become
//! Prometheus label names.

use regex::Regex;

use crate::Error;

/// Which pod labels are kept: all, or those whose key matches one of the
/// allowlist patterns (anywhere in the key, as Go's `MatchString` does;
/// anchor with `^…$` for a whole-key match).
#[derive(Debug, Clone, Default)]
pub struct LabelFilter {
    patterns: Vec<Regex>,
}

impl LabelFilter {
    /// Every label is kept.
    pub fn all() -> LabelFilter {
        LabelFilter::default()
    }

    /// Keeps labels whose key matches one of `patterns`; none given keeps
    /// all (dcgm-exporter's default). A pattern that does not compile is an
    /// error naming it (dcgm-exporter skips it with a warning, which then
    /// silently exports every label).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<LabelFilter, Error> {
        let patterns = patterns
            .iter()
            .map(AsRef::as_ref)
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                Regex::new(p).map_err(|e| Error::LabelPattern {
                    pattern: p.to_owned(),
                    reason: e.to_string().lines().last().unwrap_or("invalid").to_owned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelFilter { patterns })
    }

    /// Whether a pod label with this key is kept.
    pub fn keeps(&self, key: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.is_match(key))
    }

    /// The kept labels, keys sanitized, sorted by key (on a clash after
    /// sanitizing, the first key in sort order wins).
    pub fn apply<'a>(
        &self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = labels
            .into_iter()
            .filter(|(k, _)| self.keeps(k))
            .map(|(k, v)| (sanitize_label_name(k), v.to_owned()))
            .collect();
        out.sort();
        out.dedup_by(|b, a| a.0 == b.0);
        out
    }
}

/// A Kubernetes label key as a Prometheus label name: every character
/// outside `[a-zA-Z0-9_]` becomes `_` (dcgm-exporter's
/// `SanitizeLabelName`: `app.kubernetes.io/name` → `app_kubernetes_io_name`).
/// A key that would start with a digit gets a leading `_`, because a label
/// name may not start with one and a single such name would make the whole
/// exposition unparseable.
pub fn sanitize_label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 1);
    if key.starts_with(|c: char| c.is_ascii_digit()) || key.is_empty() {
        out.push('_');
    }
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing() {
        assert_eq!(
            sanitize_label_name("app.kubernetes.io/name"),
            "app_kubernetes_io_name"
        );
        assert_eq!(sanitize_label_name("team"), "team");
        assert_eq!(sanitize_label_name("3rd-party"), "_3rd_party");
        assert_eq!(sanitize_label_name("ünï"), "_n_");
    }

    #[test]
    fn allowlist() {
        let all = LabelFilter::new::<&str>(&[]).expect("empty");
        assert!(all.keeps("anything"));
        let f = LabelFilter::new(&["^app\\.kubernetes\\.io/", "team"]).expect("valid");
        assert!(f.keeps("app.kubernetes.io/name"));
        assert!(f.keeps("my-team-id"), "unanchored, as Go's MatchString");
        assert!(!f.keeps("pod-template-hash"));
        let kept = f.apply([
            ("pod-template-hash", "5d4f"),
            ("team", "vision"),
            ("app.kubernetes.io/name", "trainer"),
        ]);
        assert_eq!(
            kept,
            [
                ("app_kubernetes_io_name".to_owned(), "trainer".to_owned()),
                ("team".to_owned(), "vision".to_owned())
            ]
        );
        let err = LabelFilter::new(&["app(", "ok"]).expect_err("bad pattern");
        let msg = err.to_string();
        assert!(
            msg.contains("--kubernetes-pod-label-allowlist-regex"),
            "{msg}"
        );
        assert!(msg.contains("\"app(\""), "{msg}");
    }
}
