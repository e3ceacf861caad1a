//! Prometheus metrics, kept per server instance (not in a process-global recorder) so
//! several servers in one test process each count their own traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency bucket bounds in seconds: metadata calls land in the low ones, multi-GB
/// downloads in the high ones.
const BUCKETS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

type RequestKey = (&'static str, String, String, u16);

#[derive(Default)]
pub struct Metrics {
    /// (protocol, route, method, status) -> count
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    /// (protocol, route) -> latency
    latency: Mutex<BTreeMap<(&'static str, String), Histogram>>,
    /// protocol -> response body bytes sent
    bytes_served: Mutex<BTreeMap<&'static str, u64>>,
    /// error kind -> count
    store_errors: Mutex<BTreeMap<&'static str, u64>>,
    in_flight: AtomicI64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished request: its status, the body bytes sent, and its latency
    /// (until the last byte, not just the headers).
    pub fn request_finished(
        &self,
        protocol: &'static str,
        route: &str,
        method: &str,
        status: u16,
        bytes: u64,
        elapsed: Duration,
    ) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        *self
            .requests
            .lock()
            .unwrap()
            .entry((protocol, route.to_string(), method.to_string(), status))
            .or_default() += 1;
        *self
            .bytes_served
            .lock()
            .unwrap()
            .entry(protocol)
            .or_default() += bytes;
        let secs = elapsed.as_secs_f64();
        let mut latency = self.latency.lock().unwrap();
        let h = latency.entry((protocol, route.to_string())).or_default();
        for (bound, count) in BUCKETS.iter().zip(h.counts.iter_mut()) {
            if secs <= *bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts a failure of the store itself (unreachable, I/O error), by kind.
    pub fn store_error(&self, kind: &'static str) {
        *self.store_errors.lock().unwrap().entry(kind).or_default() += 1;
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP airlock_http_requests_total HTTP requests by protocol, route, method and status.\n");
        out.push_str("# TYPE airlock_http_requests_total counter\n");
        for ((protocol, route, method, status), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "airlock_http_requests_total{{protocol=\"{protocol}\",route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP airlock_http_request_duration_seconds Time from request to last response byte.\n");
        out.push_str("# TYPE airlock_http_request_duration_seconds histogram\n");
        for ((protocol, route), h) in self.latency.lock().unwrap().iter() {
            let labels = format!("protocol=\"{protocol}\",route=\"{}\"", escape(route));
            for (bound, count) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "airlock_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "airlock_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP airlock_http_response_bytes_total Response body bytes sent, by protocol.\n",
        );
        out.push_str("# TYPE airlock_http_response_bytes_total counter\n");
        for (protocol, n) in self.bytes_served.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "airlock_http_response_bytes_total{{protocol=\"{protocol}\"}} {n}"
            );
        }
        out.push_str("# HELP airlock_zero_copy_bytes_total Response body bytes sent from files by sendfile, without copying.\n");
        out.push_str("# TYPE airlock_zero_copy_bytes_total counter\n");
        let _ = writeln!(
            out,
            "airlock_zero_copy_bytes_total {}",
            crate::sendfile::SENT_BYTES.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP airlock_store_errors_total Failures of the object store itself, by kind.\n",
        );
        out.push_str("# TYPE airlock_store_errors_total counter\n");
        for (kind, n) in self.store_errors.lock().unwrap().iter() {
            let _ = writeln!(out, "airlock_store_errors_total{{kind=\"{kind}\"}} {n}");
        }
        out.push_str(
            "# HELP airlock_http_requests_in_flight Requests whose response has not finished.\n",
        );
        out.push_str("# TYPE airlock_http_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "airlock_http_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request_started();
        m.request_finished("oci", "/v2/", "GET", 200, 10, Duration::from_millis(3));
        m.store_error("unavailable");
        let text = m.render();
        assert!(text.contains(
            "airlock_http_requests_total{protocol=\"oci\",route=\"/v2/\",method=\"GET\",status=\"200\"} 1"
        ));
        assert!(text.contains(
            "airlock_http_request_duration_seconds_bucket{protocol=\"oci\",route=\"/v2/\",le=\"0.001\"} 0"
        ));
        assert!(text.contains(
            "airlock_http_request_duration_seconds_bucket{protocol=\"oci\",route=\"/v2/\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("airlock_http_response_bytes_total{protocol=\"oci\"} 10"));
        assert!(text.contains("airlock_store_errors_total{kind=\"unavailable\"} 1"));
        assert!(text.contains("airlock_http_requests_in_flight 0"));
    }
}
