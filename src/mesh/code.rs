//! The catalogue of diagnostic codes, after Istio's `messages.yaml`: one code per distinct problem, each with the
//! text that explains it. `docs/diagnostics.md` is generated from it (`tests/diagnostic_codes.rs` checks that it
//! is current).

use std::fmt;

use serde::Serialize;

use crate::spec::LoadCode;

/// Declares [`Code`] from one list, so that the doc comment a variant has is also the text the docs table
/// shows, and the code string is written once.
macro_rules! codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $code:literal, )+) => {
        /// A stable diagnostic code: `IST…` where Istio's analyzer makes the same check (so its documentation
        /// applies), `SY…` for Switchyard's own. `SY00xx` are found while loading files, `SY01xx` and `IST…`
        /// while resolving them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl Code {
            /// Every code, in the order of the catalogue.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)+
                }
            }

            /// What the code means: its doc comment.
            pub fn doc(self) -> &'static str {
                match self {
                    $(Code::$variant => concat!($($doc, "\n"),+),)+
                }
            }
        }
    };
}

codes! {
    /// A file cannot be read, or a document is not valid YAML.
    Unreadable = "SY0001",
    /// A document's `apiVersion`/`kind` is not a `networking.istio.io` kind Switchyard knows.
    UnsupportedKind = "SY0002",
    /// An unknown field, or a value of the wrong type.
    InvalidField = "SY0003",
    /// A field Istio defines that Switchyard does not implement yet.
    FieldNotSupported = "SY0004",
    /// A path in the spec directory that is not read (warning): a FIFO, socket or device (opening one could
    /// block or never end), or a directory already read through another path (a symlink loop).
    Skipped = "SY0005",
    /// The spec directory holds no resources. Serving that would withdraw every listener, route and cluster
    /// from every proxy, so the reading is rejected and the last good configuration kept, unless
    /// `serve --allow-empty` says an empty mesh is intended.
    EmptySpecDirectory = "SY0006",
    /// A destination's host is defined by no ServiceEntry (Istio reports missing references as IST0101).
    UnknownHost = "SY0101",
    /// A destination's subset is defined by no DestinationRule for its host (Istio's ReferencedResourceNotFound).
    UnknownSubset = "IST0101",
    /// A subset selects no workload, so traffic routed to it fails (warning).
    EmptySubset = "SY0102",
    /// Route weights that cannot be applied: negative, too large, or all zero.
    InvalidWeights = "SY0103",
    /// The same kind/namespace/name is defined twice.
    DuplicateResource = "SY0104",
    /// A regex Envoy's RE2 engine would reject.
    InvalidRegex = "SY0105",
    /// A duration that does not parse, or is shorter than Envoy accepts.
    InvalidDuration = "SY0106",
    /// A header name with uppercase letters (HTTP/2 header names are lowercase).
    UppercaseHeaderName = "SY0107",
    /// A fault with neither `delay` nor `abort`.
    EmptyFault = "SY0108",
    /// A percentage outside 0..100.
    PercentageOutOfRange = "SY0109",
    /// A Gateway's selector matches no workload (warning).
    GatewaySelectsNothing = "SY0110",
    /// A destination port the service does not define.
    UnknownPort = "SY0111",
    /// A destination without a port, on a service with several ports (Istio's
    /// VirtualServiceDestinationPortSelectorRequired).
    PortRequired = "IST0112",
    /// A VirtualService names a Gateway that does not exist.
    UnknownGateway = "SY0112",
    /// Two VirtualServices bound to the mesh claim the same host; Istio's ConflictingMeshGatewayVirtualServiceHosts
    /// (gateways merge such VirtualServices instead).
    ConflictingMeshHosts = "IST0109",
    /// Valid Istio that Switchyard does not support yet.
    NotSupportedYet = "SY0114",
    /// A number outside the range Istio or Envoy allows: a port, an HTTP status, a redirect code, a ring size.
    OutOfRange = "SY0115",
    /// A ServiceEntry with both `endpoints` and `workloadSelector`.
    EndpointsAndSelector = "SY0116",
    /// Two subsets of one DestinationRule have the same name.
    DuplicateSubset = "SY0117",
    /// A DestinationRule's host is defined by no ServiceEntry, so it applies to nothing (warning).
    UnusedDestinationRule = "SY0118",
    /// Two ServiceEntries define the same host.
    DuplicateHost = "SY0119",
    /// Two DestinationRules for the same host.
    DuplicateDestinationRule = "SY0120",
    /// Two ServiceEntries claim the same address.
    DuplicateAddress = "SY0121",
    /// A field that must be set (or must not be empty) is missing: hosts, ports, an address, a route's action.
    MissingField = "SY0122",
    /// Fields that exclude each other are set together, or not exactly one of a set of alternatives is set.
    ConflictingFields = "SY0123",
    /// A field that only means something together with another one, without it.
    RequiresField = "SY0124",
    /// The same port is listed twice.
    DuplicatePort = "SY0125",
    /// An address that must be an IP address (STATIC resolution) is not one.
    NotAnIpAddress = "SY0126",
    /// A name Envoy does not know: a retry condition, a gRPC status.
    UnknownName = "SY0127",
    /// A name that is empty or contains a character it may not: a subset name, a header name, a resource's
    /// name or namespace (no `/`).
    InvalidName = "SY0128",
    /// A header that may not be modified: a pseudo-header, `host`, or an empty name.
    ProtectedHeader = "SY0129",
    /// An empty match (or regex `*`), which means "present", where the value is always present.
    MeaninglessMatch = "SY0130",
    /// A wildcard host on a ServiceEntry with DNS resolution, which cannot be resolved.
    WildcardDnsHost = "SY0131",
    /// A Sidecar egress host that is not `namespace/dnsName` (`.` this namespace, `*` any, `~` none; the name
    /// `*`, `*.suffix` or a host), or an egress listener without hosts.
    InvalidEgressHost = "SY0132",
    /// Two Sidecars whose workload selectors match one workload: which one applies would be arbitrary.
    ConflictingSidecarSelectors = "IST0110",
    /// Two Sidecars without a workload selector in one namespace: which one applies would be arbitrary.
    MultipleDefaultSidecars = "IST0111",
}

impl From<LoadCode> for Code {
    fn from(code: LoadCode) -> Code {
        match code {
            LoadCode::Unreadable => Code::Unreadable,
            LoadCode::UnsupportedKind => Code::UnsupportedKind,
            LoadCode::InvalidField => Code::InvalidField,
            LoadCode::FieldNotSupported => Code::FieldNotSupported,
            LoadCode::Skipped => Code::Skipped,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As the code string, the form every output (JSON, YAML, text) has always had.
impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Lets callers and tests compare with the code as printed (`d.code == "IST0101"`).
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The table of `docs/diagnostics.md`, generated from the catalogue.
pub fn markdown_table() -> String {
    let mut out = String::from("| code | meaning |\n|---|---|\n");
    for code in Code::ALL {
        let doc = code.doc().split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!("| {} | {} |\n", code.as_str(), doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn load_codes_print_as_their_catalogue_entries() {
        for code in LoadCode::ALL {
            assert_eq!(Code::from(code).as_str(), code.as_str());
        }
    }

    #[test]
    fn codes_are_distinct_and_well_formed() {
        let strings: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(strings.len(), Code::ALL.len());
        for s in strings {
            let digits = s.strip_prefix("SY").or_else(|| s.strip_prefix("IST"));
            assert!(
                digits.is_some_and(|d| d.len() == 4 && d.chars().all(|c| c.is_ascii_digit())),
                "{s}"
            );
        }
    }
}
