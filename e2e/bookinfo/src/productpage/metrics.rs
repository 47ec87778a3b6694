//! productpage's Prometheus counter `request_result{destination_app,response_code}`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

#[derive(Default)]
pub(crate) struct Metrics {
    results: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Metrics {
    pub(crate) fn record(&self, destination_app: &'static str, response_code: u16) {
        let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        *results.entry((destination_app, response_code)).or_default() += 1;
    }

    /// The Prometheus text exposition of the counter.
    pub(crate) fn render(&self) -> String {
        let results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::from(
            "# HELP request_result_total Upstream request result\n# TYPE request_result_total counter\n",
        );
        for ((app, code), count) in results.iter() {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "request_result_total{{destination_app=\"{app}\",response_code=\"{code}\"}} {count}.0"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_app_and_code() {
        let metrics = Metrics::default();
        metrics.record("reviews", 200);
        metrics.record("reviews", 200);
        metrics.record("details", 503);
        let text = metrics.render();
        assert!(text.contains(
            "request_result_total{destination_app=\"reviews\",response_code=\"200\"} 2.0\n"
        ));
        assert!(text.contains(
            "request_result_total{destination_app=\"details\",response_code=\"503\"} 1.0\n"
        ));
    }
}
