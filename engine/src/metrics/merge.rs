//! Merging the `/metrics` pages of several worker processes into one (prefork).
//!
//! Every worker process renders its own page. Their series differ by the `worker` label (each
//! process numbers its workers from its own offset), so most series are simply gathered under
//! their family. Series that every process reports with the same labels, the process figures
//! and the build info, are combined: summed (CPU seconds, memory, descriptors, worker count),
//! or the smallest start time, or the largest value where a sum means nothing (build info,
//! descriptor limit).

use std::collections::HashMap;
use std::fmt::Write;

use super::names;

/// How two samples of the same series from different processes combine.
fn combine(family: &str, a: f64, b: f64) -> f64 {
    if family == names::PROCESS_START_TIME {
        a.min(b)
    } else if family == names::BUILD_INFO || family == names::PROCESS_MAX_FDS {
        a.max(b)
    } else {
        a + b
    }
}

/// One metric family: its comment lines and its samples, keyed by series (name and labels).
#[derive(Default)]
struct Family {
    comments: Vec<String>,
    series: Vec<(String, f64)>,
    index: HashMap<String, usize>,
}

/// Accumulates pages and renders their union.
#[derive(Default)]
pub struct Merger {
    order: Vec<String>,
    families: HashMap<String, Family>,
    /// The family each series joined first: it stays there, so that a series that one page
    /// puts under another family (a sample before its comments) is not rendered twice.
    homes: HashMap<String, String>,
}

impl Merger {
    /// An empty merger.
    pub fn new() -> Self {
        Merger::default()
    }

    /// Adds one process's page (Prometheus text format). Lines that are not comments or
    /// `series value` samples are skipped.
    pub fn add(&mut self, page: &str) {
        let mut current = String::new();
        for line in page.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut words = rest.splitn(3, ' ');
                let (Some(kind), Some(name)) = (words.next(), words.next()) else {
                    continue;
                };
                if kind != "HELP" && kind != "TYPE" {
                    continue;
                }
                current = name.to_string();
                let fam = self.family(&current);
                if !fam.comments.iter().any(|c| c == line) {
                    fam.comments.push(line.to_string());
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let name = series.split('{').next().unwrap_or(series);
            let family_name = if let Some(home) = self.homes.get(series) {
                home.clone()
            } else if name.starts_with(current.as_str()) && !current.is_empty() {
                current.clone()
            } else {
                name.to_string()
            };
            let fam = self.family(&family_name);
            match fam.index.get(series) {
                Some(&i) => {
                    let old = fam.series[i].1;
                    fam.series[i].1 = combine(&family_name, old, value);
                }
                None => {
                    fam.index.insert(series.to_string(), fam.series.len());
                    fam.series.push((series.to_string(), value));
                    self.homes.insert(series.to_string(), family_name);
                }
            }
        }
    }

    fn family(&mut self, name: &str) -> &mut Family {
        if !self.families.contains_key(name) {
            self.order.push(name.to_string());
        }
        self.families.entry(name.to_string()).or_default()
    }

    /// The merged page.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for name in &self.order {
            let fam = &self.families[name];
            for c in &fam.comments {
                out.push_str(c);
                out.push('\n');
            }
            for (series, value) in &fam.series {
                let _ = writeln!(out, "{series} {}", format_value(*value));
            }
            out.push('\n');
        }
        out
    }
}

impl Merger {
    /// The body of the `metrics_merge` fuzz target (`engine/fuzz/`), replayed on stable by
    /// `engine/tests/fuzz_corpus.rs`; not part of the API. The input, read as UTF-8 (lossily)
    /// and split at NUL bytes into pages, is merged: never a panic, no series twice in the
    /// merged page (Prometheus refuses such a scrape), every sample line of the output a
    /// `series value` pair, and merging the output alone gives the same samples.
    #[doc(hidden)]
    pub fn fuzz_pages(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let mut merger = Merger::new();
        for page in text.split('\0') {
            merger.add(page);
        }
        let out = merger.render();
        let samples = |page: &str| {
            let mut seen = HashMap::new();
            for line in page
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                let value: f64 = value.parse().expect("a sample value");
                let again = seen.insert(series.to_string(), value.to_bits());
                assert!(again.is_none(), "series {series:?} twice in {page:?}");
            }
            seen
        };
        let first = samples(&out);
        let mut again = Merger::new();
        again.add(&out);
        assert_eq!(first, samples(&again.render()));
    }
}

/// A sample value as Prometheus writes it.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P0: &str = "# HELP ringfast_requests_total Requests served.\n\
# TYPE ringfast_requests_total counter\n\
ringfast_requests_total{worker=\"0\",protocol=\"fastcgi\",status_class=\"2xx\"} 5\n\
\n\
# TYPE ringfast_request_duration_seconds histogram\n\
ringfast_request_duration_seconds_bucket{worker=\"0\",protocol=\"fastcgi\",le=\"+Inf\"} 5\n\
ringfast_request_duration_seconds_sum{worker=\"0\",protocol=\"fastcgi\"} 0.01\n\
ringfast_request_duration_seconds_count{worker=\"0\",protocol=\"fastcgi\"} 5\n\
\n\
# TYPE ringfast_build_info gauge\n\
ringfast_build_info{version=\"0.1.0\"} 1\n\
# TYPE ringfast_workers gauge\n\
ringfast_workers 1\n\
# TYPE process_cpu_seconds_total counter\n\
process_cpu_seconds_total 1.5\n\
# TYPE process_start_time_seconds gauge\n\
process_start_time_seconds 100\n";

    const P1: &str = "# HELP ringfast_requests_total Requests served.\n\
# TYPE ringfast_requests_total counter\n\
ringfast_requests_total{worker=\"1\",protocol=\"fastcgi\",status_class=\"2xx\"} 7\n\
# TYPE ringfast_request_duration_seconds histogram\n\
ringfast_request_duration_seconds_bucket{worker=\"1\",protocol=\"fastcgi\",le=\"+Inf\"} 7\n\
ringfast_request_duration_seconds_sum{worker=\"1\",protocol=\"fastcgi\"} 0.02\n\
ringfast_request_duration_seconds_count{worker=\"1\",protocol=\"fastcgi\"} 7\n\
# TYPE ringfast_build_info gauge\n\
ringfast_build_info{version=\"0.1.0\"} 1\n\
# TYPE ringfast_workers gauge\n\
ringfast_workers 1\n\
# TYPE process_cpu_seconds_total counter\n\
process_cpu_seconds_total 2.25\n\
# TYPE process_start_time_seconds gauge\n\
process_start_time_seconds 90\n";

    #[test]
    fn gathers_per_worker_series_and_combines_shared_ones() {
        let mut m = Merger::new();
        m.add(P0);
        m.add(P1);
        let out = m.render();
        assert_eq!(
            out.matches("# TYPE ringfast_requests_total counter")
                .count(),
            1,
            "{out}"
        );
        assert!(out.contains("status_class=\"2xx\"} 5\n"), "{out}");
        assert!(
            out.contains("{worker=\"1\",protocol=\"fastcgi\"} 7\n"),
            "{out}"
        );
        assert!(
            out.contains("ringfast_build_info{version=\"0.1.0\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("ringfast_workers 2\n"), "{out}");
        assert!(out.contains("process_cpu_seconds_total 3.75\n"), "{out}");
        assert!(out.contains("process_start_time_seconds 90\n"), "{out}");
        // The histogram's samples stay under their family, after its TYPE line.
        let ty = out
            .find("# TYPE ringfast_request_duration_seconds histogram")
            .unwrap();
        let b1 = out
            .find("ringfast_request_duration_seconds_bucket{worker=\"1\"")
            .unwrap();
        let info = out.find("# TYPE ringfast_build_info").unwrap();
        assert!(ty < b1 && b1 < info, "{out}");
    }

    /// Found by fuzzing (`metrics_merge`): a sample before its family's comments on one page
    /// and after them on another went to two families and was rendered twice, a page
    /// Prometheus refuses ("duplicate sample").
    #[test]
    fn a_series_is_rendered_once_whatever_family_a_page_puts_it_under() {
        let mut m = Merger::new();
        m.add("x_count 1\n# TYPE x summary\nx_sum 2\n");
        m.add("# TYPE x summary\nx_count 3\nx_sum 4\n");
        let out = m.render();
        assert_eq!(out.matches("x_count").count(), 1, "{out}");
        assert!(
            out.contains("x_count 4\n") && out.contains("x_sum 6\n"),
            "{out}"
        );
    }

    #[test]
    fn skips_junk_and_keeps_special_values() {
        let mut m = Merger::new();
        m.add("garbage line\n# TYPE x gauge\nx NaN\ny +Inf\nz{a=\"b c\"} 3\n");
        let out = m.render();
        assert!(out.contains("x NaN\n"), "{out}");
        assert!(out.contains("y +Inf\n"), "{out}");
        assert!(out.contains("z{a=\"b c\"} 3\n"), "{out}");
        assert!(!out.contains("garbage"), "{out}");
    }
}
