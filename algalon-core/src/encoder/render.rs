//! Writing: a collector through prometheus-client, label sets and help
//! text as each exposition format requires, own-series descriptors.

use std::borrow::Cow;
use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, LabelSetEncoder, MetricEncoder,
};

use prometheus_client::registry::Registry;

use super::format::Format;
use crate::series::Series;

/// Runs one collector through prometheus-client's encoder for `format`.
pub(super) fn encode_collector(
    collector: impl Collector,
    format: Format,
    capacity: usize,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::with_capacity(capacity);
    let written = match format {
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    // Writing into a String cannot fail; a formatting error here would be a
    // bug in a label or value encoder.
    written.expect("encoding into a String does not fail");
    out
}

/// Starts the family of one of Algalon's own series, with the name, help
/// and type of its row in [`crate::series::SERIES`], the help escaped as
/// `format` requires.
pub(super) fn own_family<'s>(
    encoder: &'s mut DescriptorEncoder<'_>,
    series: Series,
    format: Format,
) -> Result<MetricEncoder<'s>, std::fmt::Error> {
    let def = series.def();
    let help = help_text(def.help, format);
    encoder.encode_descriptor(def.name, &help, None, def.kind.metric_type())
}

/// Help text as `format` requires it. prometheus-client escapes backslashes
/// and newlines in the text format's HELP but writes OpenMetrics HELP
/// verbatim, where backslashes, `"` and newlines must be escaped; help comes
/// from the user's collectors CSV, so it may hold any of them.
pub(super) fn help_text(help: &str, format: Format) -> Cow<'_, str> {
    if format == Format::PrometheusText || !help.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(help);
    }
    let mut out = String::with_capacity(help.len() + 8);
    escape_label_value(&mut out, help);
    Cow::Owned(out)
}

pub(super) type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// A GPU's label set, rendered and escaped once per encode.
///
/// prometheus-client escapes label values byte by byte for every series it
/// writes; a GPU's identity labels are the same on all of its ~30 series, so
/// rendering them once roughly halves the encoder's time. The rendered text
/// goes out through the label-key writer, which writes verbatim, and the last
/// label's value through the value writer, so the library still escapes that
/// value and closes the quote. The golden files and the escaping test pin the
/// bytes this produces.
#[derive(Debug)]
pub(super) struct RenderedLabels {
    /// `k1="v1",…,kn` with values escaped.
    head: String,
    /// The last label's value, unescaped.
    last: String,
}

impl RenderedLabels {
    pub(super) fn new(labels: &[(&str, Cow<'_, str>)]) -> Self {
        let mut head = String::with_capacity(256);
        let Some(((last_key, last_value), rest)) = labels.split_last() else {
            return RenderedLabels {
                head,
                last: String::new(),
            };
        };
        for (key, value) in rest {
            head.push_str(key);
            head.push_str("=\"");
            escape_label_value(&mut head, value);
            head.push_str("\",");
        }
        head.push_str(last_key);
        RenderedLabels {
            head,
            last: last_value.to_string(),
        }
    }
}

/// Escapes a label value as the text formats require: `\\`, `\"`, `\n`.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl EncodeLabelSet for RenderedLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        if self.head.is_empty() {
            return Ok(());
        }
        let mut label = encoder.encode_label();
        let mut key = label.encode_label_key()?;
        key.write_str(&self.head)?;
        let mut value = key.encode_label_value()?;
        value.write_str(&self.last)?;
        value.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Labels, RenderedLabels};
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::registry::Registry;
    use std::borrow::Cow;

    #[derive(Debug)]
    struct One<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static>(L);

    impl<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static> Collector for One<L> {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            let mut family = encoder.encode_descriptor("m", "h", None, MetricType::Gauge)?;
            family.encode_family(&self.0)?.encode_gauge(&1i64)
        }
    }

    fn text<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static>(labels: L) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(One(labels)));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).expect("encode");
        out
    }

    #[test]
    fn rendered_labels_write_what_prometheus_client_writes() {
        for values in [
            ["0", "GPU-1", "plain"],
            ["1", "quote \" and back\\slash", "new\nline"],
            ["", "", ""],
        ] {
            let labels: Labels<'static> = vec![
                ("gpu", Cow::Borrowed(values[0])),
                ("UUID", Cow::Borrowed(values[1])),
                ("Hostname", Cow::Borrowed(values[2])),
            ];
            let owned: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                .collect();
            assert_eq!(
                text(RenderedLabels::new(&labels)),
                text(owned),
                "{values:?}"
            );
        }
    }
}
