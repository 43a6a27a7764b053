//! Counters that components add to and `/metrics` renders (Prometheus text format).
//!
//! One registry ([`Metrics`]) is shared by everything in a process; each input path (an
//! adapter's poll, a push endpoint, the ingress) counts what became of every record it
//! received in [`Outcomes`]: `lienthong_records_total{path="…", outcome="…"}` with the
//! outcomes
//!
//! - `published` — stored on its stream;
//! - `duplicate` — stored already (the same record again): nothing new;
//! - `dead_lettered` — failed validation or could not be read: kept in the DLQ with the reason;
//! - `refused` — answered 4xx to its sender (authentication, malformed request, too large);
//! - `withheld` — kept off the bus by policy (secret documents);
//! - `not_carried` — a kind of record the contract does not carry (token exchanges, chat).
//!
//! A record is counted once, in exactly one outcome; a log line is never its only trace.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonic counter.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the value (for a gauge: what is the case now, e.g. events waiting).
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

type Labels = Vec<(String, String)>;

#[derive(Debug, Default)]
struct Family {
    help: String,
    /// `counter` or `gauge`.
    kind: &'static str,
    series: BTreeMap<Labels, Counter>,
}

/// The process's counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter `name{labels}` (created at 0 the first time).
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        self.series(name, help, "counter", labels)
    }

    /// The gauge `name{labels}`: a value that goes up and down ([`Counter::set`]).
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        self.series(name, help, "gauge", labels)
    }

    fn series(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let family = families.entry(name.to_string()).or_default();
        if family.help.is_empty() {
            family.help = help.to_string();
            family.kind = kind;
        }
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        family.series.entry(labels).or_default().clone()
    }

    /// Every counter in Prometheus text format.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, f) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for (labels, c) in &f.series {
                let labels = if labels.is_empty() {
                    String::new()
                } else {
                    let inner: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| {
                            format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                        })
                        .collect();
                    format!("{{{}}}", inner.join(","))
                };
                let _ = writeln!(out, "{name}{labels} {}", c.get());
            }
        }
        out
    }

    /// The value of `name{labels}` (0 if never counted).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        families
            .get(name)
            .and_then(|f| f.series.get(&labels))
            .map(Counter::get)
            .unwrap_or(0)
    }
}

/// The name of the outcome counters.
pub const RECORDS: &str = "lienthong_records_total";

/// What became of the records one input path received.
#[derive(Debug, Clone)]
pub struct Outcomes {
    pub published: Counter,
    pub duplicate: Counter,
    pub dead_lettered: Counter,
    pub refused: Counter,
    pub withheld: Counter,
    pub not_carried: Counter,
}

impl Outcomes {
    /// The counters of `path` (e.g. `field_reports`, `meetings.bbb`, `ingress`).
    pub fn new(metrics: &Metrics, path: &str) -> Self {
        let c = |outcome: &str| {
            metrics.counter(
                RECORDS,
                "Records received, by input path and what became of each.",
                &[("path", path), ("outcome", outcome)],
            )
        };
        Self {
            published: c("published"),
            duplicate: c("duplicate"),
            dead_lettered: c("dead_lettered"),
            refused: c("refused"),
            withheld: c("withheld"),
            not_carried: c("not_carried"),
        }
    }

    /// Every record counted so far.
    pub fn total(&self) -> u64 {
        [
            &self.published,
            &self.duplicate,
            &self.dead_lettered,
            &self.refused,
            &self.withheld,
            &self.not_carried,
        ]
        .iter()
        .map(|c| c.get())
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text_once_per_series() {
        let m = Metrics::new();
        let a = Outcomes::new(&m, "meetings.bbb");
        a.published.add(3);
        a.refused.inc();
        let again = Outcomes::new(&m, "meetings.bbb");
        again.published.inc();
        assert_eq!(a.published.get(), 4, "the same series");
        assert_eq!(a.total(), 5);
        let text = m.render();
        assert_eq!(
            text.matches("# TYPE lienthong_records_total counter")
                .count(),
            1
        );
        assert!(
            text.contains("lienthong_records_total{outcome=\"published\",path=\"meetings.bbb\"} 4")
                || text.contains(
                    "lienthong_records_total{path=\"meetings.bbb\",outcome=\"published\"} 4"
                ),
            "{text}"
        );
        assert_eq!(
            m.value(RECORDS, &[("path", "meetings.bbb"), ("outcome", "refused")]),
            1
        );
    }
}
