//! Who may read the admin endpoint. It shows every proxy's node and metadata, so:
//!
//! - bound on loopback, it answers only requests whose `Host` is a loopback address or `localhost`. A web
//!   page in a browser on the same machine can reach loopback through DNS rebinding (its own name
//!   re-pointed at 127.0.0.1), but its requests then carry that name as `Host`, and are refused;
//! - bound anywhere else, every request but `/healthz` and `/ready` needs `Authorization: Bearer <token>`.
//!   A token also given on loopback is required there too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Paths probes use; they reveal nothing but "up" and "has a configuration".
const OPEN_PATHS: [&str; 2] = ["/healthz", "/ready"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminAccess {
    /// Refuse requests whose `Host` is not loopback (set when bound on loopback).
    check_host: bool,
    token: Option<Arc<str>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("the admin endpoint would listen on {0}, beyond loopback, and shows every proxy's metadata: give it a token (--admin-token-file or SWITCHYARD_ADMIN_TOKEN)")]
    TokenRequired(SocketAddr),
    #[error("the admin token is empty")]
    EmptyToken,
}

impl AdminAccess {
    pub fn for_address(addr: SocketAddr, token: Option<&str>) -> Result<AdminAccess, AccessError> {
        let token = match token.map(str::trim) {
            Some("") => return Err(AccessError::EmptyToken),
            other => other.map(Arc::from),
        };
        let loopback = addr.ip().is_loopback();
        if !loopback && token.is_none() {
            return Err(AccessError::TokenRequired(addr));
        }
        Ok(AdminAccess {
            check_host: loopback,
            token,
        })
    }

    /// Why `request` is refused, if it is.
    fn refusal(&self, request: &Request) -> Option<(StatusCode, &'static str)> {
        if self.check_host {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            if !host.is_some_and(is_loopback_host) {
                return Some((
                    StatusCode::FORBIDDEN,
                    "the admin endpoint answers only requests addressed to localhost or a loopback address\n",
                ));
            }
        }
        if let Some(token) = &self.token {
            if OPEN_PATHS.contains(&request.uri().path()) {
                return None;
            }
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "));
            if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
                return Some((
                    StatusCode::UNAUTHORIZED,
                    "the admin endpoint needs `Authorization: Bearer <token>`\n",
                ));
            }
        }
        None
    }
}

pub async fn check(State(access): State<AdminAccess>, request: Request, next: Next) -> Response {
    match access.refusal(&request) {
        None => next.run(request).await,
        Some((status, why)) => {
            let host = request
                .headers()
                .get(header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
            tracing::warn!(path = %request.uri().path(), ?host, %status, "admin request refused");
            (status, why).into_response()
        }
    }
}

/// `localhost`, `*.localhost` (RFC 6761 keeps it on loopback) or a loopback IP, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:15014`
        Some(v6) => v6.split_once(']').map(|(ip, _)| ip).unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Compares without stopping at the first difference, so response times do not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(path: &str, headers: &[(header::HeaderName, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().uri(path);
        for (k, v) in headers {
            builder = builder.header(k, *v);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn loopback_hosts() {
        for ok in [
            "127.0.0.1:15014",
            "127.0.0.1",
            "localhost:15014",
            "LOCALHOST",
            "app.localhost:1",
            "[::1]:15014",
            "127.9.9.9",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for refused in [
            "evil.example:15014",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "10.0.0.1:15014",
            "[::2]:1",
            "",
        ] {
            assert!(!is_loopback_host(refused), "{refused}");
        }
    }

    #[test]
    fn loopback_checks_the_host_and_elsewhere_needs_a_token() {
        let loopback = AdminAccess::for_address("127.0.0.1:15014".parse().unwrap(), None).unwrap();
        assert!(loopback
            .refusal(&request("/metrics", &[(header::HOST, "127.0.0.1:15014")]))
            .is_none());
        let (status, _) = loopback
            .refusal(&request(
                "/metrics",
                &[(header::HOST, "rebound.example:15014")],
            ))
            .unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(loopback.refusal(&request("/metrics", &[])).is_some());

        let anywhere: SocketAddr = "0.0.0.0:15014".parse().unwrap();
        assert_eq!(
            AdminAccess::for_address(anywhere, None),
            Err(AccessError::TokenRequired(anywhere))
        );
        assert_eq!(
            AdminAccess::for_address(anywhere, Some(" \n")),
            Err(AccessError::EmptyToken)
        );
        let guarded = AdminAccess::for_address(anywhere, Some("s3cret\n")).unwrap();
        let host = (header::HOST, "switchyard.example:15014");
        assert!(guarded
            .refusal(&request(
                "/debug/proxies",
                &[host.clone(), (header::AUTHORIZATION, "Bearer s3cret")]
            ))
            .is_none());
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", ""] {
            let (status, _) = guarded
                .refusal(&request(
                    "/debug/proxies",
                    &[host.clone(), (header::AUTHORIZATION, wrong)],
                ))
                .unwrap();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        }
        assert!(guarded
            .refusal(&request("/ready", std::slice::from_ref(&host)))
            .is_none());
    }
}
