//! A client for Envoy's admin endpoint (any Envoy, supervised or not).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::error::EnvoyError;
use super::poll::Poll;

/// Counters and gauges by name. Histograms and text readouts are left out.
pub type Stats = BTreeMap<String, u64>;

/// Admin calls on loopback answer in milliseconds; this only bounds a wedged Envoy.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct AdminClient {
    address: SocketAddr,
    http: reqwest::Client,
    /// Answers longer than this many bytes are errors (none: any length).
    max_body: Option<usize>,
}

/// The outcome of one admin request whose status the caller interprets (e.g. `/ready` answers 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminResponse {
    pub status: u16,
    pub body: String,
}

impl AdminClient {
    pub fn new(address: SocketAddr) -> Result<Self, EnvoyError> {
        let http = reqwest::Client::builder()
            // A proxy from the environment must never see loopback admin traffic.
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|source| EnvoyError::Admin {
                url: format!("http://{address}/"),
                source,
            })?;
        Ok(AdminClient {
            address,
            http,
            max_body: None,
        })
    }

    /// Refuses answers longer than `bytes`, read no further: for an address that may not be an Envoy at all
    /// (the dashboard reads the admin port of whatever pod IP a proxy declared).
    pub fn with_body_limit(self, bytes: usize) -> Self {
        AdminClient {
            max_body: Some(bytes),
            ..self
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `path` is the admin path with its query, e.g. `/clusters?format=json`.
    pub async fn request(&self, path: &str) -> Result<AdminResponse, EnvoyError> {
        let url = self.url(path);
        let failed = |source| EnvoyError::Admin {
            url: url.clone(),
            source,
        };
        let mut response = self.http.get(&url).send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let Some(limit) = self.max_body else {
            let body = response.text().await.map_err(failed)?;
            return Ok(AdminResponse { status, body });
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if bytes.len() + chunk.len() > limit {
                return Err(EnvoyError::AdminResponse {
                    url,
                    problem: format!("the answer is longer than {limit} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = String::from_utf8_lossy(&bytes).into_owned();
        Ok(AdminResponse { status, body })
    }

    /// The body of a successful admin GET; any other status is an error carrying the body.
    pub async fn get(&self, path: &str) -> Result<String, EnvoyError> {
        let AdminResponse { status, body } = self.request(path).await?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(EnvoyError::AdminStatus {
                url: self.url(path),
                status,
                body,
            })
        }
    }

    /// Whether `/ready` says LIVE (200). Envoy answers 503 until its initial xDS fetches are done.
    pub async fn is_ready(&self) -> Result<bool, EnvoyError> {
        Ok(self.request("/ready").await?.status == 200)
    }

    /// All counters and gauges.
    pub async fn stats(&self) -> Result<Stats, EnvoyError> {
        self.stats_matching(None).await
    }

    /// One counter or gauge; `None` when Envoy has no stat of that name (yet).
    pub async fn stat(&self, name: &str) -> Result<Option<u64>, EnvoyError> {
        let filter = format!("^{}$", regex_syntax::escape(name));
        Ok(self.stats_matching(Some(&filter)).await?.remove(name))
    }

    /// `/config_dump`; endpoints are only included on request.
    pub async fn config_dump(&self, include_eds: bool) -> Result<Value, EnvoyError> {
        let path = if include_eds {
            "/config_dump?include_eds"
        } else {
            "/config_dump"
        };
        let body = self.get(path).await?;
        serde_json::from_str(&body).map_err(|e| EnvoyError::AdminResponse {
            url: self.url(path),
            problem: format!("invalid JSON: {e}"),
        })
    }

    /// Polls the stats until `check` returns `Ok`, or fails at `deadline` with `what` and the last `Err` text
    /// `check` gave (which should say what it saw, e.g. `"warming_clusters = 2"`).
    pub async fn wait_until<T>(
        &self,
        what: &str,
        deadline: Instant,
        mut check: impl FnMut(&Stats) -> Result<T, String>,
    ) -> Result<T, EnvoyError> {
        let poll = Poll::new(what, deadline);
        loop {
            let last_seen = match self.stats().await {
                Ok(stats) => match check(&stats) {
                    Ok(done) => return Ok(done),
                    Err(seen) => seen,
                },
                Err(e) => format!("no stats: {e}"),
            };
            poll.next(last_seen).await?;
        }
    }

    /// Polls one stat until `accept` is true of it, failing at `deadline` with its last value.
    pub async fn wait_for_stat(
        &self,
        name: &str,
        deadline: Instant,
        accept: impl Fn(u64) -> bool,
    ) -> Result<u64, EnvoyError> {
        let what = format!("stat {name} to reach the expected value");
        self.wait_until(&what, deadline, stat_accepted(name, accept))
            .await
    }

    /// The counters and gauges whose names match `filter` (a regular expression, as Envoy's `/stats` takes it).
    pub async fn stats_matching(&self, filter: Option<&str>) -> Result<Stats, EnvoyError> {
        let mut url =
            reqwest::Url::parse(&self.url("/stats")).map_err(|e| EnvoyError::AdminResponse {
                url: self.url("/stats"),
                problem: format!("bad URL: {e}"),
            })?;
        url.query_pairs_mut().append_pair("format", "json");
        if let Some(filter) = filter {
            url.query_pairs_mut().append_pair("filter", filter);
        }
        let path = match url.query() {
            Some(q) => format!("/stats?{q}"),
            None => "/stats".to_string(),
        };
        let body = self.get(&path).await?;
        parse_stats(&body).map_err(|problem| EnvoyError::AdminResponse {
            url: self.url(&path),
            problem,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }
}

/// Parses `/stats?format=json`: `{"stats": [{"name": .., "value": ..}, .., {"histograms": ..}]}`.
pub(crate) fn parse_stats(body: &str) -> Result<Stats, String> {
    let doc: Value = serde_json::from_str(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let entries = doc
        .get("stats")
        .and_then(Value::as_array)
        .ok_or_else(|| "no \"stats\" array".to_string())?;
    Ok(entries
        .iter()
        .filter_map(|entry| {
            let name = entry.get("name")?.as_str()?;
            // Text readouts carry string values; they are not counters or gauges.
            let value = entry.get("value")?.as_u64()?;
            Some((name.to_string(), value))
        })
        .collect())
}

/// A `wait_until` check on one stat: its value once `accept` holds, otherwise what was seen.
pub(crate) fn stat_accepted<'a>(
    name: &'a str,
    accept: impl Fn(u64) -> bool + 'a,
) -> impl FnMut(&Stats) -> Result<u64, String> + 'a {
    move |stats| match stats.get(name) {
        Some(&v) if accept(v) => Ok(v),
        Some(v) => Err(format!("{name} = {v}")),
        None => Err(format!("{name} absent")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_and_gauges_and_skips_the_rest() {
        let body = r#"{"stats":[
            {"name":"server.live","value":1},
            {"name":"cluster_manager.cds.update_success","value":42},
            {"name":"control_plane.identifier","value":""},
            {"histograms":{"supported_quantiles":[0,25],"computed_quantiles":[]}}
        ]}"#;
        let stats = parse_stats(body).unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats["server.live"], 1);
        assert_eq!(stats["cluster_manager.cds.update_success"], 42);
    }

    /// Whatever answers at an address, a limited client reads no more than its limit.
    #[tokio::test]
    async fn a_body_limit_stops_a_long_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let long = "x".repeat(3 << 20);
        let app = axum::Router::new().route("/stats", axum::routing::get(move || async { long }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = AdminClient::new(address).unwrap();
        assert_eq!(client.get("/stats").await.unwrap().len(), 3 << 20);
        let limited = client.with_body_limit(1 << 20);
        let error = limited.get("/stats").await.unwrap_err().to_string();
        assert!(error.contains("longer than 1048576 bytes"), "{error}");
        let short = AdminClient::new(address).unwrap().with_body_limit(4 << 20);
        assert_eq!(short.get("/stats").await.unwrap().len(), 3 << 20);
        server.abort();
    }

    #[test]
    fn rejects_what_is_not_a_stats_document() {
        assert!(parse_stats("server.live: 1")
            .unwrap_err()
            .contains("invalid JSON"));
        assert!(parse_stats("{}").unwrap_err().contains("\"stats\""));
    }
}
