//! The distributions the xDS server records where its events happen, named after istiod's own
//! (`pilot_xds_push_time`, `pilot_xds_config_size_bytes`, `pilot_proxy_convergence_time`) with Switchyard's
//! prefix. The admin endpoint registers them with everything else it shows; `xds` knows nothing of it.
//!
//! Buckets fit this workload rather than istiod's defaults (whose smallest time bucket is 10 ms): a stream builds
//! and queues a response in well under a millisecond, a proxy on the same host converges in milliseconds and a
//! hundred of them in a few hundred (BENCHMARKS.md), and a response is a few hundred bytes to a few megabytes.
//!
//! Each type has a histogram of its own, so recording an observation looks nothing up: it locks only that
//! histogram, for the few nanoseconds of the update.

use std::fmt;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;

use super::resource_type::{PerType, ResourceType};

/// Seconds from the start of a stream's answer (to a request or a new generation) to a response being queued.
const PUSH_TIME_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Encoded bytes of one response: from a single small resource to beyond gRPC's default 4 MiB message limit.
const CONFIG_SIZE_BUCKETS: [f64; 9] = [
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// Seconds from a change being accepted to a proxy having acknowledged all of it.
const CONVERGENCE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0,
];

/// Histograms of the xDS server. Cloning shares them. Registered as a collector, which shows every type, in
/// push order, from the start.
#[derive(Debug, Clone)]
pub struct XdsHistograms {
    push_time: PerType<Histogram>,
    config_size: PerType<Histogram>,
    convergence: Histogram,
}

impl Default for XdsHistograms {
    fn default() -> XdsHistograms {
        XdsHistograms {
            push_time: PerType::from_fn(|_| Histogram::new(PUSH_TIME_BUCKETS)),
            config_size: PerType::from_fn(|_| Histogram::new(CONFIG_SIZE_BUCKETS)),
            convergence: Histogram::new(CONVERGENCE_BUCKETS),
        }
    }
}

impl XdsHistograms {
    /// A response of type `t`, `bytes` long, was queued `elapsed` after its stream began to answer.
    pub fn pushed(&self, t: ResourceType, elapsed: Duration, bytes: usize) {
        self.push_time[t].observe(elapsed.as_secs_f64());
        // Exact below 2^53 bytes, far beyond any response.
        self.config_size[t].observe(bytes as f64);
    }

    /// A proxy acknowledged all of a change `elapsed` after it was accepted.
    pub fn converged(&self, elapsed: Duration) {
        self.convergence.observe(elapsed.as_secs_f64());
    }
}

impl Collector for XdsHistograms {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        self.convergence.encode(encoder.encode_descriptor(
            "proxy_convergence_time",
            "Seconds from a configuration change being accepted to a proxy having acknowledged every response \
             it was sent because of it (proxies the change did not concern are not pushed and not measured).",
            None,
            MetricType::Histogram,
        )?)?;
        for (name, help, histograms) in [
            (
                "xds_push_time",
                "Seconds from a stream beginning to answer (a request, or a new configuration) to a response \
                 of this type being queued for the proxy: building, encoding and queueing, by type.",
                &self.push_time,
            ),
            (
                "xds_config_size_bytes",
                "Encoded size of each response sent to a proxy, by type.",
                &self.config_size,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (t, histogram) in histograms.iter() {
                histogram.encode(family.encode_family(&[("type", t.short_name())])?)?;
            }
        }
        Ok(())
    }
}
