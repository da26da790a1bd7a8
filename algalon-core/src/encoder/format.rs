//! The two exposition formats, their content types, and picking one from a
//! scraper's `Accept` header.

/// The exposition format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4, what dcgm-exporter serves.
    PrometheusText,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The HTTP `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format a scraper asks for in its `Accept` header:
    /// OpenMetrics when it lists `application/openmetrics-text` with a
    /// weight at least that of `text/plain`, else text.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::PrometheusText;
        };
        let weight = |media: &str| -> Option<f32> {
            accept
                .split(',')
                .filter_map(|part| {
                    let mut params = part.split(';').map(str::trim);
                    let kind = params.next()?;
                    if !kind.eq_ignore_ascii_case(media) {
                        return None;
                    }
                    let q = params
                        .find_map(|p| p.strip_prefix("q="))
                        .and_then(|q| q.parse::<f32>().ok())
                        .unwrap_or(1.0);
                    Some(q)
                })
                .reduce(f32::max)
        };
        match (weight("application/openmetrics-text"), weight("text/plain")) {
            (Some(om), text) if om > 0.0 && om >= text.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn accept_header_negotiation() {
        let f = |a: &str| Format::from_accept(Some(a));
        assert_eq!(Format::from_accept(None), Format::PrometheusText);
        assert_eq!(f("*/*"), Format::PrometheusText);
        // What Prometheus 2.x sends.
        assert_eq!(
            f(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(
            f("application/openmetrics-text;q=0"),
            Format::PrometheusText
        );
        assert_eq!(
            f("text/plain;version=0.0.4,application/openmetrics-text;q=0.5"),
            Format::PrometheusText
        );
    }
}
