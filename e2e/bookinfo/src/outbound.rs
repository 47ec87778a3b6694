//! The HTTP client every outgoing call uses.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{Error, Service, Upstream};

/// A client that connects every call for `upstreams` to the sidecar's outbound IP while the URL, and so the
/// `Host` header, keep the service name. This is what iptables capture does to the real pods.
///
/// `timeout` bounds the connect and each read (not the whole exchange), like Python `requests`' `timeout=`
/// and the JAX-RS connection/receive timeouts. Idle connections are never reused, matching the real
/// services, which open a new connection per call ("so that we can easily test load distribution").
pub(crate) fn client(
    service: Service,
    outbound: SocketAddr,
    upstreams: &[&Upstream],
    timeout: Duration,
) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(timeout)
        .read_timeout(timeout)
        // A redirect to another host would leave the sidecar (and loopback); the real upstreams never send one.
        .redirect(reqwest::redirect::Policy::none());
    for upstream in upstreams {
        // The URL parser lowercases host names, and the override table is matched on that form.
        builder = builder.resolve(&upstream.host.to_ascii_lowercase(), outbound);
    }
    builder
        .build()
        .map_err(|source| Error::HttpClient { service, source })
}

/// The body and status of one upstream call that got an answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

/// Sends `GET url` with `headers`; `Err` when no complete answer arrived (connect error, timeout).
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &str,
    headers: axum::http::HeaderMap,
) -> Result<Answer, reqwest::Error> {
    let response = client.get(url).headers(headers).send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok(Answer { status, body })
}
