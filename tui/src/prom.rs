//! A parser of the Prometheus text exposition format (version 0.0.4), the format ringfast's
//! `/metrics` serves.
//!
//! It reads what the format allows and the dashboard needs: `# TYPE` lines (other comments and
//! `# HELP` are skipped), samples with or without labels, label values with the escapes `\\`,
//! `\"` and `\n` (so a value may hold quotes, commas, `=` and braces), a trailing comma after the
//! last label, the values `NaN`, `+Inf` and `-Inf`, and an optional timestamp. It never panics on
//! bad input: a malformed line is a [`ParseError`] naming the line.

use std::collections::HashMap;

use thiserror::Error;

/// One sample: a metric name, its labels in the order written, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name as written (`x_bucket`, `x_sum` and `x_count` keep their suffix).
    pub name: String,
    /// Label names and (unescaped) values, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value; `NaN` and infinities included.
    pub value: f64,
    /// The optional timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
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

/// The type a `# TYPE` line gives a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricType {
    /// A monotonic counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative `_bucket{le}` series plus `_sum` and `_count`.
    Histogram,
    /// Quantile series plus `_sum` and `_count`.
    Summary,
    /// Declared `untyped`, or not declared at all.
    Untyped,
}

/// A parsed page: every sample, and the declared type of each family.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Every sample, in page order.
    pub samples: Vec<Sample>,
    /// Family name to its declared type.
    pub types: HashMap<String, MetricType>,
}

impl Exposition {
    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The declared type of family `name` ([`MetricType::Untyped`] when not declared).
    pub fn type_of(&self, name: &str) -> MetricType {
        self.types.get(name).copied().unwrap_or(MetricType::Untyped)
    }
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What was wrong with it.
    pub kind: ParseErrorKind,
}

/// What was wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The line does not start with a valid metric name.
    #[error("expected a metric name")]
    MetricName,
    /// A label name is missing or not valid.
    #[error("expected a label name")]
    LabelName,
    /// A label name is not followed by `=`.
    #[error("expected '=' after a label name")]
    Equals,
    /// A label value does not start with `"`.
    #[error("expected '\"' to open a label value")]
    OpenQuote,
    /// A label value is not closed before the end of the line.
    #[error("unterminated label value")]
    Unterminated,
    /// A backslash escape other than `\\`, `\"` and `\n`.
    #[error("invalid escape '\\{0}' in a label value")]
    Escape(char),
    /// Something other than `,` or `}` after a label.
    #[error("expected ',' or '}}' after a label")]
    LabelSeparator,
    /// The value is missing or not a number.
    #[error("invalid sample value {0:?}")]
    Value(String),
    /// The timestamp is not an integer.
    #[error("invalid timestamp {0:?}")]
    Timestamp(String),
    /// Text after the timestamp.
    #[error("unexpected text after the sample: {0:?}")]
    Trailing(String),
    /// A `# TYPE` line with an unknown type or no name.
    #[error("invalid TYPE line")]
    TypeLine,
}

/// Parses a whole page.
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    let mut out = Exposition::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let fail = |kind| ParseError {
            line: index + 1,
            kind,
        };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((name, kind)) = parse_type_comment(comment).map_err(fail)? {
                out.types.insert(name, kind);
            }
            continue;
        }
        out.samples.push(parse_sample(line).map_err(fail)?);
    }
    Ok(out)
}

/// `# TYPE name kind` gives `Some((name, kind))`; other comments give `None`.
fn parse_type_comment(comment: &str) -> Result<Option<(String, MetricType)>, ParseErrorKind> {
    let mut words = comment.split_whitespace();
    if words.next() != Some("TYPE") {
        return Ok(None);
    }
    let name = words.next().ok_or(ParseErrorKind::TypeLine)?;
    let kind = match words.next().ok_or(ParseErrorKind::TypeLine)? {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        "summary" => MetricType::Summary,
        "untyped" => MetricType::Untyped,
        _ => return Err(ParseErrorKind::TypeLine),
    };
    if !is_metric_name(name) || words.next().is_some() {
        return Err(ParseErrorKind::TypeLine);
    }
    Ok(Some((name.to_owned(), kind)))
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A cursor over one sample line.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Takes the longest prefix whose characters satisfy `first` (the first one) and `more`.
    fn take_ident(&mut self, first: fn(char) -> bool, more: fn(char) -> bool) -> Option<&'a str> {
        let mut end = 0;
        for (i, c) in self.rest.char_indices() {
            let ok = if i == 0 { first(c) } else { more(c) };
            if !ok {
                break;
            }
            end = i + c.len_utf8();
        }
        if end == 0 {
            return None;
        }
        let (ident, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(ident)
    }

    /// Takes the next whitespace-separated word.
    fn take_word(&mut self) -> Option<&'a str> {
        self.skip_spaces();
        if self.rest.is_empty() {
            return None;
        }
        let end = self.rest.find([' ', '\t']).unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(word)
    }

    /// A quoted label value, unescaped.
    fn take_label_value(&mut self) -> Result<String, ParseErrorKind> {
        if !self.eat('"') {
            return Err(ParseErrorKind::OpenQuote);
        }
        let mut value = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => return Err(ParseErrorKind::Escape(other)),
                    None => return Err(ParseErrorKind::Unterminated),
                },
                other => value.push(other),
            }
        }
        Err(ParseErrorKind::Unterminated)
    }
}

fn name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn label_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn parse_sample(line: &str) -> Result<Sample, ParseErrorKind> {
    let mut cur = Cursor { rest: line };
    let name = cur
        .take_ident(name_start, name_char)
        .ok_or(ParseErrorKind::MetricName)?
        .to_owned();
    cur.skip_spaces();
    let mut labels = Vec::new();
    if cur.eat('{') {
        loop {
            cur.skip_spaces();
            if cur.eat('}') {
                break;
            }
            let label = cur
                .take_ident(label_start, label_char)
                .ok_or(ParseErrorKind::LabelName)?
                .to_owned();
            cur.skip_spaces();
            if !cur.eat('=') {
                return Err(ParseErrorKind::Equals);
            }
            cur.skip_spaces();
            let value = cur.take_label_value()?;
            labels.push((label, value));
            cur.skip_spaces();
            match cur.peek() {
                Some(',') => {
                    cur.eat(',');
                }
                Some('}') => {}
                _ => return Err(ParseErrorKind::LabelSeparator),
            }
        }
    } else if !line[name.len()..].starts_with([' ', '\t']) {
        // The name must be followed by a label set or whitespace.
        return Err(ParseErrorKind::MetricName);
    }
    let value_text = cur
        .take_word()
        .ok_or_else(|| ParseErrorKind::Value(String::new()))?;
    let value = parse_value(value_text).ok_or_else(|| ParseErrorKind::Value(value_text.into()))?;
    let timestamp_ms = match cur.take_word() {
        None => None,
        Some(ts) => Some(
            ts.parse::<i64>()
                .map_err(|_| ParseErrorKind::Timestamp(ts.into()))?,
        ),
    };
    if let Some(extra) = cur.take_word() {
        return Err(ParseErrorKind::Trailing(extra.into()));
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// A sample value: a Go-style float, `NaN`, `+Inf` or `-Inf` (the spellings the format uses;
/// Rust's float parser accepts a few more, such as `infinity`, which do no harm).
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse::<f64>().ok(),
    }
}

/// The body of the `prom_parse` fuzz target (`engine/fuzz/`), replayed on stable by
/// `tui/tests/fuzz_corpus.rs`; not part of the API. The input, read as UTF-8 (lossily), is
/// parsed whole and line by line: never a panic, the page parses exactly when each of its lines
/// does, with the same samples, every name and label name valid, and the dashboard's reduction
/// of a parsed page ([`crate::snapshot::EngineSnapshot::from_exposition`]) never panics.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let whole = parse(&text);
    let mut samples = Vec::new();
    let mut first_error = None;
    for (index, line) in text.lines().enumerate() {
        match parse(line) {
            Ok(page) => samples.extend(page.samples),
            Err(e) => {
                first_error = Some(index + 1);
                assert_eq!(e.line, 1);
                break;
            }
        }
    }
    match whole {
        Ok(page) => {
            assert_eq!(first_error, None);
            assert_eq!(page.samples.len(), samples.len());
            for (a, b) in page.samples.iter().zip(&samples) {
                assert!(a.name == b.name && a.labels == b.labels);
                assert!(a.value == b.value || (a.value.is_nan() && b.value.is_nan()));
                assert!(is_metric_name(&a.name));
                for (label, _) in &a.labels {
                    assert!(label.starts_with(label_start) && label.chars().all(label_char));
                }
            }
            for name in page.types.keys() {
                assert!(is_metric_name(name));
            }
            let _ = crate::snapshot::EngineSnapshot::from_exposition(&page).total();
        }
        Err(e) => assert_eq!(Some(e.line), first_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Sample {
        parse(line).expect("parses").samples.remove(0)
    }

    #[test]
    fn plain_sample() {
        let s = one("ringfast_workers 2");
        assert_eq!(s.name, "ringfast_workers");
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 2.0);
        assert_eq!(s.timestamp_ms, None);
    }

    #[test]
    fn labels_and_timestamp() {
        let s = one(r#"http_requests_total{method="post",code="200"} 1027 1395066363000"#);
        assert_eq!(s.label("method"), Some("post"));
        assert_eq!(s.label("code"), Some("200"));
        assert_eq!(s.value, 1027.0);
        assert_eq!(s.timestamp_ms, Some(1_395_066_363_000));
    }

    #[test]
    fn escaped_quotes_commas_and_equals_in_values() {
        let s = one(
            r#"msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\"",q="a=b,c}d"} 1.458255915e9"#,
        );
        assert_eq!(s.label("path"), Some(r"C:\DIR\FILE.TXT"));
        assert_eq!(s.label("error"), Some("Cannot find file:\n\"FILE.TXT\""));
        assert_eq!(s.label("q"), Some("a=b,c}d"));
        assert_eq!(s.value, 1.458255915e9);
    }

    #[test]
    fn trailing_comma_spaces_and_empty_braces() {
        let s = one(r#"x { a = "1" , b="2", } 3"#);
        assert_eq!(
            s.labels,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        let s = one("y{} 4");
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 4.0);
    }

    #[test]
    fn special_values() {
        assert!(one("a NaN").value.is_nan());
        assert_eq!(one("a +Inf").value, f64::INFINITY);
        assert_eq!(one("a -Inf").value, f64::NEG_INFINITY);
        assert_eq!(one("a -0.5e-3").value, -0.0005);
        let s = one(r#"h_bucket{le="+Inf"} 7"#);
        assert_eq!(s.label("le"), Some("+Inf"));
    }

    #[test]
    fn comments_and_types() {
        let page =
            "# HELP a The a.\n# TYPE a counter\n# a free comment\n\na 1\n# TYPE h histogram\n";
        let e = parse(page).unwrap();
        assert_eq!(e.samples.len(), 1);
        assert_eq!(e.type_of("a"), MetricType::Counter);
        assert_eq!(e.type_of("h"), MetricType::Histogram);
        assert_eq!(e.type_of("nope"), MetricType::Untyped);
    }

    #[test]
    fn errors_name_the_line_and_the_fault() {
        let cases: &[(&str, ParseErrorKind)] = &[
            ("1abc 2", ParseErrorKind::MetricName),
            ("a{=\"x\"} 1", ParseErrorKind::LabelName),
            ("a{b\"x\"} 1", ParseErrorKind::Equals),
            ("a{b=x} 1", ParseErrorKind::OpenQuote),
            ("a{b=\"x} 1", ParseErrorKind::Unterminated),
            ("a{b=\"\\t\"} 1", ParseErrorKind::Escape('t')),
            ("a{b=\"x\" c=\"y\"} 1", ParseErrorKind::LabelSeparator),
            ("a{b=\"x\"", ParseErrorKind::LabelSeparator),
            ("a", ParseErrorKind::MetricName),
            ("a{} ", ParseErrorKind::Value(String::new())),
            ("a one", ParseErrorKind::Value("one".into())),
            ("a 1 soon", ParseErrorKind::Timestamp("soon".into())),
            ("a 1 2 3", ParseErrorKind::Trailing("3".into())),
            ("# TYPE a weird", ParseErrorKind::TypeLine),
            ("# TYPE", ParseErrorKind::TypeLine),
        ];
        for (line, kind) in cases {
            let err = parse(&format!("ok 1\n{line}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{line}");
            assert_eq!(&err.kind, kind, "{line}");
        }
    }

    #[test]
    fn non_ascii_label_values() {
        let s = one("a{b=\"µs ☃\"} 1");
        assert_eq!(s.label("b"), Some("µs ☃"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn label_values_round_trip(value in "\\PC*", number in proptest::num::f64::NORMAL) {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let page = format!("m{{l=\"{escaped}\"}} {number:e}\n");
            let e = parse(&page).unwrap();
            proptest::prop_assert_eq!(e.samples[0].label("l"), Some(value.as_str()));
            proptest::prop_assert_eq!(e.samples[0].value, number);
        }
    }
}
