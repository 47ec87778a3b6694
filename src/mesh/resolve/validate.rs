//! Value checks shared by several kinds. Each reports a diagnostic and returns `None` on bad input.

use crate::mesh::Code;
use std::time::Duration;

use super::Diags;
use crate::mesh::{self, duration, Meta, PerMillion};
use crate::spec::{Percent, StringMatch};

pub(crate) fn duration(
    diags: &mut Diags<'_>,
    at: &Meta,
    field: &str,
    text: &str,
) -> Option<Duration> {
    match duration::parse(text) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.error(at, Code::InvalidDuration, field, e.to_string());
            None
        }
    }
}

pub(crate) fn opt_duration(
    diags: &mut Diags<'_>,
    at: &Meta,
    field: &str,
    text: Option<&String>,
) -> Option<Duration> {
    text.and_then(|t| duration(diags, at, field, t))
}

/// Istio's `ValidateDuration` for fields Envoy requires to be greater than zero: at least 1ms.
pub(crate) fn positive_duration(
    diags: &mut Diags<'_>,
    at: &Meta,
    field: &str,
    text: &str,
) -> Option<Duration> {
    let d = duration(diags, at, field, text)?;
    if d < Duration::from_millis(1) {
        diags.error(
            at,
            Code::InvalidDuration,
            field,
            format!("duration `{text}` must be at least 1ms (Envoy rejects zero here)"),
        );
        return None;
    }
    Some(d)
}

pub(crate) fn opt_positive_duration(
    diags: &mut Diags<'_>,
    at: &Meta,
    field: &str,
    text: Option<&String>,
) -> Option<Duration> {
    text.and_then(|t| positive_duration(diags, at, field, t))
}

/// RE2 (what Envoy's `safe_regex` uses) and regex-syntax agree on what they reject that matters here:
/// backreferences, look-around and malformed syntax.
pub(crate) fn regex(diags: &mut Diags<'_>, at: &Meta, field: &str, pattern: &str) -> bool {
    if pattern.is_empty() {
        diags.error(
            at,
            Code::InvalidRegex,
            field,
            "an empty regex would be rejected by Envoy",
        );
        return false;
    }
    match regex_syntax::Parser::new().parse(pattern) {
        Ok(_) => true,
        Err(e) => {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or("invalid regex").trim();
            diags.error(
                at,
                Code::InvalidRegex,
                field,
                format!("regex `{pattern}` would be rejected by Envoy (RE2): {last}"),
            );
            false
        }
    }
}

/// The mesh's form of a match that [`string_match`] accepted.
pub(crate) fn to_mesh_match(m: &StringMatch) -> mesh::StringMatch {
    match m {
        StringMatch::Exact(s) => mesh::StringMatch::Exact(s.clone()),
        StringMatch::Prefix(s) => mesh::StringMatch::Prefix(s.clone()),
        StringMatch::Regex(s) => mesh::StringMatch::Regex(s.clone()),
        StringMatch::Present => mesh::StringMatch::Present,
    }
}

pub(crate) fn string_match(diags: &mut Diags<'_>, at: &Meta, field: &str, m: &StringMatch) -> bool {
    match m {
        StringMatch::Regex(r) => regex(diags, at, &format!("{field}.regex"), r),
        StringMatch::Exact(_) | StringMatch::Prefix(_) | StringMatch::Present => true,
    }
}

/// A match on a value that is always there (a CORS origin): "present" (`{}` or regex `*`) says nothing.
pub(crate) fn value_match(diags: &mut Diags<'_>, at: &Meta, field: &str, m: &StringMatch) -> bool {
    if *m == StringMatch::Present {
        diags.error(
            at,
            Code::MeaninglessMatch,
            field,
            "an empty match (or regex `*`) means \"present\", which has no meaning here; use `exact`, `prefix` or a valid `regex`",
        );
        return false;
    }
    string_match(diags, at, field, m)
}

/// Istio's percentages are doubles in 0..=100; Envoy takes millionths.
pub(crate) fn percentage(
    diags: &mut Diags<'_>,
    at: &Meta,
    field: &str,
    p: &Percent,
) -> Option<PerMillion> {
    if !(0.0..=100.0).contains(&p.value) || p.value.is_nan() {
        diags.error(
            at,
            Code::PercentageOutOfRange,
            format!("{field}.value"),
            format!("percentage {} is outside 0..100", p.value),
        );
        return None;
    }
    Some((p.value * 10_000.0).round() as PerMillion)
}

/// Header names must be lowercase: HTTP/2 and Envoy lowercase them, so an uppercase match would never match.
pub(crate) fn header_name(diags: &mut Diags<'_>, at: &Meta, field: &str, name: &str) -> bool {
    if name.is_empty() {
        diags.error(at, Code::InvalidName, field, "header name is empty");
        return false;
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        diags.error(
            at,
            Code::UppercaseHeaderName,
            field,
            format!(
                "header name `{name}` must be lowercase (write `{}`)",
                name.to_ascii_lowercase()
            ),
        );
        return false;
    }
    true
}
