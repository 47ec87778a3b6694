//! Which request headers each service passes on to its upstreams.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// Copied verbatim by productpage (`getForwardHeaders`); B3 and `end-user` are handled separately.
const PRODUCTPAGE_COPIED: [&str; 14] = [
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
];

/// reviews' `headers_to_propagate` (the same 20 names details uses). It includes `end-user`, which is what
/// lets a ratings route match on `end-user: jason` at the reviews sidecar.
const REVIEWS_PROPAGATED: [&str; 20] = [
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "sw8",
    "end-user",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
];

/// productpage's outgoing headers: the B3 context re-injected, `end-user` from the session only (an incoming
/// `end-user` is never forwarded), and the copied list.
pub(crate) fn productpage(incoming: &HeaderMap, user: Option<&str>) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(context) = b3::extract(incoming) {
        context.inject(&mut out);
    }
    if let Some(user) = user {
        // A name that cannot be a header value makes `requests` raise; dropping the header is the closest
        // thing that still serves the page.
        if let Ok(value) = HeaderValue::from_str(user) {
            out.insert(HeaderName::from_static("end-user"), value);
        }
    }
    // WSGI joins repeated headers with ", ".
    copy(incoming, &mut out, &PRODUCTPAGE_COPIED, ", ");
    out
}

/// reviews' outgoing headers to ratings.
pub(crate) fn reviews(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    // JAX-RS `getHeaderString` joins repeated headers with ",".
    copy(incoming, &mut out, &REVIEWS_PROPAGATED, ",");
    out
}

fn copy(incoming: &HeaderMap, out: &mut HeaderMap, names: &[&'static str], separator: &str) {
    for name in names {
        let values: Vec<&[u8]> = incoming
            .get_all(*name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let joined = match values.as_slice() {
            [] => continue,
            [one] => one.to_vec(),
            many => many.join(separator.as_bytes()),
        };
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            out.insert(HeaderName::from_static(name), value);
        }
    }
}

/// productpage propagates B3 through OpenTelemetry's `B3MultiFormat`: it extracts the incoming context
/// (single `b3` header first, else the `x-b3-*` headers) and injects it again, so valid ids arrive unchanged
/// (16-hex trace ids widened to 32) and malformed ones are dropped.
mod b3 {
    use axum::http::{HeaderMap, HeaderName, HeaderValue};

    pub(super) struct Context {
        trace_id: u128,
        span_id: u64,
        sampled: bool,
        debug: bool,
    }

    fn first<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn hex_id(text: &str, lengths: &[usize]) -> Option<u128> {
        if !lengths.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(text, 16).ok().filter(|id| *id != 0)
    }

    pub(super) fn extract(headers: &HeaderMap) -> Option<Context> {
        let (trace_id, span_id, sampled, flags) =
            match first(headers, "b3").filter(|v| !v.is_empty()) {
                Some(single) => {
                    let fields: Vec<&str> = single.splitn(5, '-').collect();
                    match fields.as_slice() {
                        [trace, span] => (*trace, *span, "0", None),
                        [trace, span, sampled] | [trace, span, sampled, _] => {
                            (*trace, *span, *sampled, None)
                        }
                        _ => return None,
                    }
                }
                None => (
                    first(headers, "x-b3-traceid")?,
                    first(headers, "x-b3-spanid")?,
                    first(headers, "x-b3-sampled").unwrap_or("0"),
                    first(headers, "x-b3-flags"),
                ),
            };
        let trace_id = hex_id(trace_id, &[16, 32])?;
        let span_id = u64::try_from(hex_id(span_id, &[16])?).ok()?;
        let debug = flags == Some("1");
        let sampled = matches!(sampled, "1" | "True" | "true" | "d") || debug;
        Some(Context {
            trace_id,
            span_id,
            sampled,
            debug,
        })
    }

    impl Context {
        pub(super) fn inject(&self, out: &mut HeaderMap) {
            let mut set = |name: &'static str, value: String| {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    out.insert(HeaderName::from_static(name), value);
                }
            };
            set("x-b3-traceid", format!("{:032x}", self.trace_id));
            set("x-b3-spanid", format!("{:016x}", self.span_id));
            set("x-b3-sampled", if self.sampled { "1" } else { "0" }.into());
            if self.debug {
                set("x-b3-flags", "1".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn productpage_keeps_tracing_headers_unchanged() {
        let incoming = headers(&[
            ("x-request-id", "34eeb41d-d267-9e49-8b84-dde403fc5b72"),
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "1"),
            (
                "sw8",
                "1-MTIz-NDU2-0-c2VydmljZQ==-aW5zdGFuY2U=-L2FwaQ==-ZXhhbXBsZS5jb206ODA4MA==",
            ),
            ("user-agent", "curl/8"),
            ("accept-language", "en"),
        ]);
        let out = productpage(&incoming, None);
        for name in [
            "x-request-id",
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-sampled",
            "sw8",
            "user-agent",
        ] {
            assert_eq!(out.get(name), incoming.get(name), "{name}");
        }
        assert!(out.get("accept-language").is_none());
        assert!(out.get("end-user").is_none());
    }

    #[test]
    fn productpage_end_user_comes_only_from_the_session() {
        let incoming = headers(&[("end-user", "mallory")]);
        assert!(productpage(&incoming, None).get("end-user").is_none());
        assert_eq!(
            productpage(&incoming, Some("jason"))
                .get("end-user")
                .unwrap(),
            "jason"
        );
    }

    #[test]
    fn b3_short_trace_ids_are_widened_and_bad_ones_dropped() {
        let out = productpage(
            &headers(&[
                ("x-b3-traceid", "64fe8b2a57d3eff7"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ]),
            None,
        );
        assert_eq!(
            out.get("x-b3-traceid").unwrap(),
            "000000000000000064fe8b2a57d3eff7"
        );
        assert_eq!(out.get("x-b3-sampled").unwrap(), "0");

        let out = productpage(
            &headers(&[
                ("x-b3-traceid", "nothex"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ]),
            None,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn b3_single_header_becomes_multi_headers() {
        let out = productpage(
            &headers(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]),
            None,
        );
        assert_eq!(out.get("x-b3-spanid").unwrap(), "e457b5a2e4d86bd1");
        assert_eq!(out.get("x-b3-sampled").unwrap(), "1");
    }

    #[test]
    fn reviews_forwards_its_twenty_headers() {
        let incoming = headers(&[
            ("end-user", "jason"),
            ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("host", "reviews:9080"),
        ]);
        let out = reviews(&incoming);
        assert_eq!(out.get("end-user").unwrap(), "jason");
        assert_eq!(out.get("x-b3-parentspanid").unwrap(), "05e3ac9a4f6e3b90");
        assert_eq!(out.get("cookie").unwrap(), "a=1,b=2");
        assert!(out.get("host").is_none());
    }
}
