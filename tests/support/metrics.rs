//! Reading an admin endpoint's `/metrics` the way Prometheus does: the answer must be OpenMetrics text (every
//! line a `# HELP`/`# TYPE`/`# UNIT` comment or a sample of a declared family, and `# EOF` last), and its
//! samples are looked up by series (`name{labels}` exactly as written).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// One scrape: the text and its samples by series.
#[derive(Debug)]
pub struct Scrape {
    pub text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    /// The value of `series`; panics, showing the scrape, if there is none.
    pub fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.text))
    }

    pub fn get(&self, series: &str) -> Option<f64> {
        self.samples.get(series).copied()
    }
}

/// GETs `/metrics` from the admin endpoint at `admin` and parses it; panics on anything Prometheus would
/// refuse.
pub async fn scrape(admin: SocketAddr) -> Scrape {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert!(response.status().is_success(), "{}", response.status());
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    parse(response.text().await.expect("the body of /metrics"))
}

/// Scrapes every 10 ms until `check` holds, at most for `deadline`; panics, showing the last scrape, after.
/// For what the server records right after something the test can see (an ACK it sent, say).
pub async fn wait_for(
    admin: SocketAddr,
    what: &str,
    deadline: Duration,
    check: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let scrape = scrape(admin).await;
        if check(&scrape) {
            return scrape;
        }
        if tokio::time::Instant::now() >= until {
            panic!("timed out waiting for {what} in /metrics:\n{}", scrape.text);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Parses OpenMetrics text; panics, naming the line, on anything else.
pub fn parse(text: String) -> Scrape {
    let mut families: BTreeSet<String> = BTreeSet::new();
    let mut samples = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "no closing # EOF:\n{text}");
    for (i, line) in lines[..lines.len() - 1].iter().enumerate() {
        let bad = |why: &str| -> ! { panic!("line {}: {why}: {line:?}\n{text}", i + 1) };
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name) = (words.next(), words.next());
            match (kind, name) {
                (Some("TYPE"), Some(name)) => {
                    if !is_name(name) {
                        bad("not a metric name");
                    }
                    families.insert(name.to_string());
                }
                (Some("HELP" | "UNIT"), Some(name)) if is_name(name) => {}
                _ => bad("a comment that is not HELP, TYPE, UNIT or the last line's EOF"),
            }
            continue;
        }
        let (series, value) = split_sample(line).unwrap_or_else(|| bad("not a sample"));
        let name = series.split('{').next().unwrap_or_default();
        let declared = families.iter().any(|family| {
            name == family
                || ["_total", "_bucket", "_sum", "_count", "_created"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(family.as_str()))
        });
        if !is_name(name) || !declared {
            bad("a sample of no declared family");
        }
        let value: f64 = value.parse().unwrap_or_else(|_| bad("not a number"));
        if samples.insert(series.to_string(), value).is_some() {
            bad("a series given twice");
        }
    }
    Scrape { text, samples }
}

/// `name{labels} value` into the series and the value. Label values are quoted and may hold `}` or spaces.
fn split_sample(line: &str) -> Option<(&str, &str)> {
    let end = match line.find(['{', ' '])? {
        brace if line[brace..].starts_with('{') => {
            let mut quoted = false;
            let mut escaped = false;
            let close = line[brace..].char_indices().find(|&(_, c)| {
                let closes = c == '}' && !quoted;
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => quoted = !quoted,
                    _ => {}
                }
                closes
            })?;
            brace + close.0 + 1
        }
        space => space,
    };
    let (series, rest) = line.split_at(end);
    let value = rest.strip_prefix(' ')?;
    (!value.is_empty() && !value.contains(' ')).then_some((series, value))
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
