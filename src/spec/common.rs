//! Small value types shared by several kinds.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};

/// A field Istio defines but Switchyard does not implement yet: present in the YAML, it is a load error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotSupported;

impl<'de> Deserialize<'de> for NotSupported {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Fail before consuming the value, so the error's location is where the field's value starts.
        let _ = deserializer;
        Err(D::Error::custom("this field is not supported yet"))
    }
}

/// Istio's `StringMatch`: exactly one of `exact`, `prefix` or `regex`, or `Present` for an empty `{}` (and
/// Istio's `regex: "*"`), which means "the value is present" and only makes sense where a value may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
    Present,
}

impl<'de> Deserialize<'de> for StringMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            exact: Option<String>,
            prefix: Option<String>,
            regex: Option<String>,
        }
        let raw = Option::<Raw>::deserialize(deserializer)?;
        // Istio treats an empty `{}` match, and the regex `*`, as "present".
        let Some(Raw {
            exact,
            prefix,
            regex,
        }) = raw
        else {
            return Ok(StringMatch::Present);
        };
        match (exact, prefix, regex) {
            (Some(v), None, None) => Ok(StringMatch::Exact(v)),
            (None, Some(v), None) => Ok(StringMatch::Prefix(v)),
            (None, None, Some(v)) if v == "*" => Ok(StringMatch::Present),
            (None, None, Some(v)) => Ok(StringMatch::Regex(v)),
            (None, None, None) => Ok(StringMatch::Present),
            _ => Err(D::Error::custom(
                "a string match takes exactly one of `exact`, `prefix` or `regex`",
            )),
        }
    }
}

/// `port: {number: N}` as used by destinations and port-level settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    pub number: u32,
}

/// Istio's `Percent { value: double }`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    pub value: f64,
}
