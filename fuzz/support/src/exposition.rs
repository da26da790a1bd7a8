//! A small, strict reader of the Prometheus text format (0.0.4) and
//! OpenMetrics 1.0 text, for checking what Algalon's encoder writes.
//!
//! "Strict" means it accepts what the two specifications allow and a little
//! less, never more: every line must be a known comment or a well-formed
//! sample, escapes must be the ones the format defines, a family's metadata
//! comes before its samples and a family appears once, no label name repeats
//! within a sample, and an OpenMetrics text ends with `# EOF`. Label values
//! and help text come back unescaped, so a caller can compare them with
//! what went into the encoder.

use std::collections::HashSet;

/// Which text format to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

/// One metric family: its metadata and samples, in text order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The name on the `# HELP` / `# TYPE` lines (or of the first sample).
    pub name: String,
    /// The unescaped help text, when there is a `# HELP` line.
    pub help: Option<String>,
    /// The type on the `# TYPE` line (`untyped`/`unknown` when there is none).
    pub kind: String,
    /// The family's samples.
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name (with any `_total` / `_info` suffix).
    pub name: String,
    /// Label names and unescaped values, in text order.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `text`; the error names the 1-based line and what is wrong.
pub fn parse(text: &str, flavor: Flavor) -> Result<Vec<Family>, String> {
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| "the text does not end with a newline".to_owned())?;
    let mut families: Vec<Family> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut eof = false;
    for (i, line) in body.split('\n').enumerate() {
        let at = |msg: String| format!("line {}: {msg}: {line:?}", i + 1);
        if eof {
            return Err(at("content after # EOF".into()));
        }
        if let Some(comment) = line.strip_prefix('#') {
            match comment_line(comment, flavor).map_err(at)? {
                Comment::Eof => eof = true,
                Comment::Other => {}
                Comment::Help(name, help) => {
                    let fam = family_for(&mut families, &mut seen, &name, flavor).map_err(at)?;
                    if fam.help.is_some() {
                        return Err(at(format!("second # HELP for {name}")));
                    }
                    if !fam.samples.is_empty() {
                        return Err(at(format!("# HELP for {name} after its samples")));
                    }
                    fam.help = Some(help);
                }
                Comment::Type(name, kind) => {
                    let fam = family_for(&mut families, &mut seen, &name, flavor).map_err(at)?;
                    if fam.kind != default_kind(flavor) || !fam.samples.is_empty() {
                        return Err(at(format!(
                            "# TYPE for {name} repeated or after its samples"
                        )));
                    }
                    fam.kind = kind;
                }
            }
            continue;
        }
        if line.is_empty() && flavor == Flavor::Text {
            continue;
        }
        let sample = sample_line(line, flavor).map_err(at)?;
        let belongs = families
            .last()
            .is_some_and(|f| belongs_to(&sample.name, f, flavor));
        if !belongs {
            if flavor == Flavor::OpenMetrics {
                return Err(at(format!(
                    "sample {} does not belong to the family above it",
                    sample.name
                )));
            }
            let name = sample.name.clone();
            family_for(&mut families, &mut seen, &name, flavor).map_err(at)?;
        }
        let fam = families.last_mut().expect("a family was just ensured");
        if flavor == Flavor::OpenMetrics {
            check_openmetrics_value(fam, &sample).map_err(at)?;
        }
        fam.samples.push(sample);
    }
    if flavor == Flavor::OpenMetrics && !eof {
        return Err("OpenMetrics text does not end with # EOF".into());
    }
    Ok(families)
}

enum Comment {
    Help(String, String),
    Type(String, String),
    Eof,
    Other,
}

fn default_kind(flavor: Flavor) -> String {
    match flavor {
        Flavor::Text => "untyped".into(),
        Flavor::OpenMetrics => "unknown".into(),
    }
}

/// The family named `name`: the last one if it has that name, else a new
/// one (a name that appeared before is an error: families are contiguous).
fn family_for<'a>(
    families: &'a mut Vec<Family>,
    seen: &mut HashSet<String>,
    name: &str,
    flavor: Flavor,
) -> Result<&'a mut Family, String> {
    if families.last().is_none_or(|f| f.name != name) {
        if !seen.insert(name.to_owned()) {
            return Err(format!("family {name} appears twice"));
        }
        families.push(Family {
            name: name.to_owned(),
            help: None,
            kind: default_kind(flavor),
            samples: Vec::new(),
        });
    }
    Ok(families.last_mut().expect("pushed or present"))
}

fn comment_line(comment: &str, flavor: Flavor) -> Result<Comment, String> {
    if flavor == Flavor::OpenMetrics && comment == " EOF" {
        return Ok(Comment::Eof);
    }
    if let Some(rest) = comment.strip_prefix(" HELP ") {
        let (name, help) = match rest.split_once(' ') {
            Some((name, help)) => (name, help),
            None if flavor == Flavor::Text => (rest, ""),
            None => return Err("# HELP without a space after the name".into()),
        };
        check_metric_name(name)?;
        return Ok(Comment::Help(name.to_owned(), unescape_help(help, flavor)?));
    }
    if let Some(rest) = comment.strip_prefix(" TYPE ") {
        let (name, kind) = rest
            .split_once(' ')
            .ok_or_else(|| "# TYPE without a type".to_owned())?;
        check_metric_name(name)?;
        let known: &[&str] = match flavor {
            Flavor::Text => &["counter", "gauge", "histogram", "summary", "untyped"],
            Flavor::OpenMetrics => &[
                "counter",
                "gauge",
                "histogram",
                "gaugehistogram",
                "stateset",
                "info",
                "summary",
                "unknown",
            ],
        };
        if !known.contains(&kind) {
            return Err(format!("unknown type {kind:?}"));
        }
        return Ok(Comment::Type(name.to_owned(), kind.to_owned()));
    }
    if let Some(rest) = comment.strip_prefix(" UNIT ")
        && flavor == Flavor::OpenMetrics
    {
        let (name, _) = rest
            .split_once(' ')
            .ok_or_else(|| "# UNIT without a unit".to_owned())?;
        check_metric_name(name)?;
        return Ok(Comment::Other);
    }
    match flavor {
        // The text format allows free-form comments.
        Flavor::Text if !comment.starts_with(" HELP") && !comment.starts_with(" TYPE") => {
            Ok(Comment::Other)
        }
        _ => Err("malformed or unknown comment line".into()),
    }
}

fn unescape_help(s: &str, flavor: Flavor) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if flavor == Flavor::OpenMetrics => out.push('"'),
                other => return Err(format!("invalid escape \\{other:?} in help text")),
            },
            '"' if flavor == Flavor::OpenMetrics => {
                return Err("unescaped '\"' in OpenMetrics help text".into());
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| is_name_start(c) || c == ':')
        && chars.all(|c| is_name_char(c) || c == ':');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn sample_line(line: &str, flavor: Flavor) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = label_set(after, flavor, &mut labels)?;
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or_else(|| "expected one space before the value".to_owned())?;
    let mut parts = rest.split(' ');
    let value_text = parts.next().unwrap_or_default();
    let value = parse_value(value_text)?;
    if let Some(ts) = parts.next() {
        parse_value(ts).map_err(|e| format!("timestamp: {e}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `name="value",…}` into `labels`; returns the text after `}`.
fn label_set<'a>(
    mut s: &'a str,
    flavor: Flavor,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, String> {
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = s.find('=').ok_or_else(|| "label without '='".to_owned())?;
        let name = &s[..name_end];
        let mut chars = name.chars();
        if !(chars.next().is_some_and(is_name_start) && chars.all(is_name_char)) {
            return Err(format!("invalid label name {name:?}"));
        }
        if labels.iter().any(|(k, _)| k == name) {
            return Err(format!("label {name} repeated"));
        }
        let body = s[name_end + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name}: value is not quoted"))?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            let (i, c) = chars
                .next()
                .ok_or_else(|| format!("label {name}: unterminated value"))?;
            match c {
                '"' => break i,
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => {
                        return Err(format!("label {name}: invalid escape \\{other:?}"));
                    }
                },
                '\n' => return Err(format!("label {name}: raw newline in value")),
                c => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        s = &body[end + 1..];
        if let Some(after) = s.strip_prefix(',') {
            s = after;
            if s.starts_with('}') && flavor == Flavor::OpenMetrics {
                return Err("trailing ',' in an OpenMetrics label set".into());
            }
        } else if !s.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {name}"));
        }
    }
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => return Ok(f64::NAN),
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int) && all_digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    if !(mantissa_ok && exponent_ok) {
        return Err(format!("invalid number {s:?}"));
    }
    s.parse::<f64>()
        .map_err(|e| format!("invalid number {s:?}: {e}"))
}

/// Whether sample `name` is a series of family `fam`.
fn belongs_to(name: &str, fam: &Family, flavor: Flavor) -> bool {
    let suffixes: &[&str] = match (flavor, fam.kind.as_str()) {
        (_, "histogram" | "gaugehistogram") => &["_bucket", "_count", "_sum", "_created"],
        (_, "summary") => &["", "_count", "_sum", "_created"],
        (Flavor::OpenMetrics, "counter") => &["_total", "_created"],
        (Flavor::OpenMetrics, "info") => &["_info"],
        _ => &[""],
    };
    suffixes
        .iter()
        .any(|s| name.strip_suffix(s) == Some(fam.name.as_str()))
}

fn check_openmetrics_value(fam: &Family, sample: &Sample) -> Result<(), String> {
    match fam.kind.as_str() {
        "info" if sample.value != 1.0 => Err("an info sample's value must be 1".into()),
        "counter" if sample.value < 0.0 => Err("a counter cannot be negative".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_formats_and_unescapes() {
        let text = "# HELP m A \\\\ help\\nline.\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 1.5\n\
                    m{a=\"2\",} -Inf 123\n# free comment\n\nu 3\n";
        let fams = parse(text, Flavor::Text).expect("valid text format");
        assert_eq!(fams.len(), 2);
        assert_eq!(fams[0].help.as_deref(), Some("A \\ help\nline."));
        assert_eq!(fams[0].samples[0].label("a"), Some("x\"y\\z\nw"));
        assert_eq!(fams[0].samples[0].label("b"), Some(""));
        assert_eq!(fams[1].kind, "untyped");

        let om = "# HELP c A \\\"c\\\".\n# TYPE c counter\nc_total{a=\"1\"} 2\n\
                  # TYPE i info\ni_info{v=\"x\"} 1\n# EOF\n";
        let fams = parse(om, Flavor::OpenMetrics).expect("valid OpenMetrics");
        assert_eq!(fams[0].help.as_deref(), Some("A \"c\"."));
        assert_eq!(fams[1].samples[0].label("v"), Some("x"));
    }

    #[test]
    fn rejects_what_the_formats_forbid() {
        for (text, flavor, why) in [
            ("m 1", Flavor::Text, "newline"),
            ("m{a=\"\\t\"} 1\n", Flavor::Text, "invalid escape"),
            ("m{a=\"1\",a=\"2\"} 1\n", Flavor::Text, "repeated"),
            ("m{a=\"1\"\n", Flavor::Text, "expected ','"),
            ("m{a=\"1} 1\n", Flavor::Text, "unterminated"),
            ("m{1a=\"1\"} 1\n", Flavor::Text, "invalid label name"),
            ("m 1\nn 1\nm 2\n", Flavor::Text, "appears twice"),
            ("m one\n", Flavor::Text, "invalid number"),
            ("m 1  \n", Flavor::Text, "invalid number"),
            ("# HELP m a\\tb\n", Flavor::Text, "invalid escape"),
            ("# TYPE m gauge\nm 1\n", Flavor::OpenMetrics, "# EOF"),
            (
                "# HELP m say \"hi\"\n# EOF\n",
                Flavor::OpenMetrics,
                "unescaped",
            ),
            ("m 1\n# EOF\n", Flavor::OpenMetrics, "does not belong"),
            ("# EOF\nm 1\n", Flavor::OpenMetrics, "after # EOF"),
            (
                "# TYPE m info\nm_info 2\n# EOF\n",
                Flavor::OpenMetrics,
                "must be 1",
            ),
            (
                "# TYPE m gauge\nm{a=\"1\",} 1\n# EOF\n",
                Flavor::OpenMetrics,
                "trailing ','",
            ),
            ("# comment\n# EOF\n", Flavor::OpenMetrics, "comment"),
        ] {
            let err = parse(text, flavor).expect_err(text);
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
