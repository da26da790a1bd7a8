//! Label-name rules, in one place: which names Prometheus accepts, how a
//! user's label name is made into one, and which names Algalon's job series
//! or the scraper own.
//!
//! The encoder writes job labels through [`sanitize_label_name`]; faces that
//! take user labels check them with [`is_valid_label_name`] and
//! [`RESERVED_LABELS`] before a job starts.

/// Label names the job series set themselves (`job_id`, `job_name`), that
/// the scraper owns (`job`, `instance`), or that every GPU series carries
/// (`Hostname`): a user label with one of these names would be overwritten
/// or would overwrite.
pub const RESERVED_LABELS: &[&str] = &["job_id", "job_name", "job", "instance", "Hostname"];

/// Whether `name` can be a Prometheus label name (user labels that cannot
/// are rewritten by [`sanitize_label_name`]).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Whether `name` is one of [`RESERVED_LABELS`].
pub fn is_reserved_label_name(name: &str) -> bool {
    RESERVED_LABELS.contains(&name)
}

/// `name` made into a valid label name: invalid characters become `_`, a
/// leading digit gets a `_` prefix, and leading underscores shrink to one
/// (names starting with `__`, such as `__name__`, are reserved to
/// Prometheus and would rewrite the series on ingestion).
pub fn sanitize_label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with("__") {
        out = format!("_{}", out.trim_start_matches('_'));
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitized() {
        assert!(is_valid_label_name("team"));
        assert!(!is_valid_label_name("1team"));
        assert!(!is_valid_label_name("__reserved"));
        assert_eq!(sanitize_label_name("my-label.x"), "my_label_x");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name(""), "_");
        assert_eq!(sanitize_label_name("__name__"), "_name__");
        assert_eq!(sanitize_label_name("__"), "_");
        assert_eq!(sanitize_label_name("_-9"), "_9");
        for name in ["__name__", "__", "___x", "--", "_-9", "é", "9", "a-b", ""] {
            let sane = sanitize_label_name(name);
            assert!(is_valid_label_name(&sane), "{name:?} became {sane:?}");
        }
    }

    #[test]
    fn reserved_names_are_valid_but_taken() {
        for name in RESERVED_LABELS {
            assert!(is_valid_label_name(name), "{name}");
            assert!(is_reserved_label_name(name), "{name}");
        }
        assert!(!is_reserved_label_name("team"));
        // Case matters to Prometheus: `hostname` is a different label.
        assert!(!is_reserved_label_name("hostname"));
    }
}
