//! dcgm-exporter's XID texts: the `err_msg` label it puts on
//! `DCGM_FI_DEV_XID_ERRORS` next to `err_code`.
//!
//! dcgm-exporter 4.x labels the last XID of a GPU with its number
//! (`err_code="79"`) and a short text from its own table
//! (`err_msg="GPU has fallen off the bus"`, after NVIDIA's XID catalogue);
//! alert rules and dashboards match on both. The table here is generated
//! from dcgm-exporter's `internal/pkg/collector/xid_errors.go`, vendored
//! unchanged under `testing/upstream/dcgm-exporter/`; `tests/dcgm_data.rs`
//! re-derives it and fails when the two differ (`make dcgm-data` rewrites it).

#[rustfmt::skip]
mod generated;

/// dcgm-exporter's text for an XID outside its table.
pub const UNKNOWN: &str = "Unknown Error";

/// dcgm-exporter's XID texts, indexed by XID number (0 is "No Error").
pub static XID_TEXT: &[&str] = generated::XID_TEXT;

/// The `err_msg` dcgm-exporter gives XID `code`: its table's text, or
/// "Unknown Error" past the table's end (and for a negative value).
pub fn err_msg(code: i64) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| XID_TEXT.get(i))
        .copied()
        .unwrap_or(UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown_codes() {
        assert_eq!(err_msg(0), "No Error");
        assert_eq!(err_msg(48), "Double Bit ECC Error");
        assert_eq!(err_msg(79), "GPU has fallen off the bus");
        assert_eq!(err_msg(94), "Contained ECC error");
        assert_eq!(err_msg(-1), UNKNOWN);
        assert_eq!(err_msg(100_000), UNKNOWN);
        let past_end = i64::try_from(XID_TEXT.len()).expect("small table");
        assert_eq!(err_msg(past_end), UNKNOWN);
        assert_ne!(err_msg(past_end - 1), UNKNOWN);
    }
}
