//! What one stream has asked for and been sent, per resource type: the state both protocol variants share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::names::NameSet;
use super::resource_type::ResourceType;
use super::snapshot::{aggregate_version, Encoded, Layer, Snapshot};

/// The name Delta xDS uses to ask for "everything of this type" explicitly.
pub const WILDCARD: &str = "*";

/// Which resources of a type a stream wants. The wildcard subtleties of the xDS spec are explicit here
/// rather than encoded in empty lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceNames {
    /// Legacy wildcard: an LDS/CDS request with no names at all (what Envoy 1.40 sends), meaning everything.
    LegacyWildcard,
    /// Everything (asked as `*`), plus names asked explicitly on top of it.
    Wildcard(NameSet),
    /// Exactly these names.
    Explicit(NameSet),
}

impl ResourceNames {
    /// Interprets a State-of-the-World request's names: for wildcard types an empty list means everything.
    pub fn from_sotw(t: ResourceType, names: &[String]) -> ResourceNames {
        if names.is_empty() && t.is_wildcard() {
            return ResourceNames::LegacyWildcard;
        }
        let mut set: BTreeSet<String> = names.iter().cloned().collect();
        if set.remove(WILDCARD) {
            ResourceNames::Wildcard(NameSet::new(set))
        } else {
            ResourceNames::Explicit(NameSet::new(set))
        }
    }

    /// The starting point of a Delta subscription, before its first subscribe list is applied.
    pub fn delta_initial(t: ResourceType, subscribe: &[String]) -> ResourceNames {
        if subscribe.is_empty() && t.is_wildcard() {
            ResourceNames::LegacyWildcard
        } else {
            ResourceNames::Explicit(NameSet::default())
        }
    }

    /// How many names were asked for explicitly.
    pub fn explicit_len(&self) -> usize {
        match self {
            ResourceNames::LegacyWildcard => 0,
            ResourceNames::Wildcard(names) | ResourceNames::Explicit(names) => names.len(),
        }
    }

    pub fn is_wildcard(&self) -> bool {
        !matches!(self, ResourceNames::Explicit(_))
    }

    pub fn covers(&self, name: &str) -> bool {
        match self {
            ResourceNames::LegacyWildcard | ResourceNames::Wildcard(_) => true,
            ResourceNames::Explicit(names) => names.contains(name),
        }
    }

    /// Applies a Delta subscribe list; returns the explicit names that were newly added.
    pub fn subscribe(&mut self, names: &[String]) -> Vec<String> {
        let mut added = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            if name == WILDCARD {
                if let ResourceNames::Explicit(set) = self {
                    *self = ResourceNames::Wildcard(std::mem::take(set));
                }
                continue;
            }
            if *self == ResourceNames::LegacyWildcard {
                // An explicit name ends legacy mode; the proxy keeps everything it has, so stay wildcard.
                *self = ResourceNames::Wildcard(NameSet::default());
            }
            let set = match self {
                ResourceNames::LegacyWildcard => continue,
                ResourceNames::Wildcard(set) | ResourceNames::Explicit(set) => set,
            };
            // A request may name thousands; `seen` keeps the duplicate check logarithmic.
            if !set.contains(name) && seen.insert(name.as_str()) {
                added.push(name.clone());
            }
        }
        if let ResourceNames::Wildcard(set) | ResourceNames::Explicit(set) = self {
            if !added.is_empty() {
                *set = set.edited(|s| s.extend(added.iter().cloned()));
            }
        }
        added
    }

    /// Applies a Delta unsubscribe list.
    pub fn unsubscribe(&mut self, names: &[String]) {
        let mut removed = Vec::new();
        for name in names {
            match self {
                // Leaving the wildcard keeps the names asked for explicitly; a subscription that never had
                // the wildcard is not changed by leaving it.
                _ if name == WILDCARD => match self {
                    ResourceNames::Wildcard(set) => {
                        *self = ResourceNames::Explicit(std::mem::take(set));
                    }
                    ResourceNames::LegacyWildcard => {
                        *self = ResourceNames::Explicit(NameSet::default());
                    }
                    ResourceNames::Explicit(_) => {}
                },
                ResourceNames::LegacyWildcard => {}
                ResourceNames::Wildcard(set) | ResourceNames::Explicit(set) => {
                    if set.contains(name) {
                        removed.push(name);
                    }
                }
            }
        }
        if let ResourceNames::Wildcard(set) | ResourceNames::Explicit(set) = self {
            if !removed.is_empty() {
                *set = set.edited(|s| {
                    for name in removed {
                        s.remove(name);
                    }
                });
            }
        }
    }

    /// The version of what this subscription covers of type `t` in `snapshot`: a wildcard subscription sees
    /// whole layers, whose versions are already known; an explicit one's is memoised in the layer.
    pub fn version(&self, snapshot: &Snapshot, t: ResourceType) -> String {
        match (self, snapshot.layers(t)) {
            (ResourceNames::LegacyWildcard | ResourceNames::Wildcard(_), _) => snapshot.version(t),
            (ResourceNames::Explicit(names), [layer]) => layer.selection_version(names),
            (ResourceNames::Explicit(_), _) => {
                aggregate_version(self.select(snapshot, t).into_iter().map(|r| r.as_ref()))
            }
        }
    }

    /// The resources of type `t` in `snapshot` this subscription covers, in name order.
    pub fn select<'a>(&self, snapshot: &'a Snapshot, t: ResourceType) -> Vec<&'a Arc<Encoded>> {
        match self {
            ResourceNames::LegacyWildcard | ResourceNames::Wildcard(_) => snapshot.all(t),
            ResourceNames::Explicit(names) => {
                names.iter().filter_map(|n| snapshot.get(t, n)).collect()
            }
        }
    }
}

/// A response sent and not yet superseded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub nonce: String,
    pub version: String,
}

/// The ids of the layers a stream last answered from, per type: while the snapshot still has exactly these,
/// the stream owes nothing (unless the proxy asks).
pub fn layer_ids(snapshot: &Snapshot, t: ResourceType) -> Vec<u64> {
    snapshot.layers(t).iter().map(|l| l.id()).collect()
}

/// A rejection reported by the proxy.
/// How much of a rejection message is kept. Envoy's own are a line or two; anything longer is a client
/// filling the log, the registry and `/debug/proxies` (a 1 MB message per NACK grew the log by 199 MB in 10 s).
pub const NACK_MESSAGE_LIMIT: usize = 4096;

/// A rejection message as it is kept, logged and shown: at most [`NACK_MESSAGE_LIMIT`] bytes of it, cut on a
/// character boundary and followed by how long it was.
pub fn nack_message(message: &str) -> String {
    if message.len() <= NACK_MESSAGE_LIMIT {
        return message.to_owned();
    }
    let mut end = NACK_MESSAGE_LIMIT;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &message[..end], message.len())
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Nack {
    pub nonce: String,
    /// The version the proxy rejected.
    pub rejected_version: String,
    /// The version the proxy still runs.
    pub kept_version: String,
    /// Envoy's reason, shortened by [`nack_message`].
    pub message: String,
}

/// Delta only: the version of each resource a proxy holds, as far as its stream has told it. Kept as "what
/// the subscription covered in the layers of the last answer" plus the exceptions since, so a proxy that is up to
/// date costs a few pointers rather than a map of every name it holds.
#[derive(Clone, Debug, Default)]
pub struct Known {
    base: Vec<Arc<Layer>>,
    /// What the subscription covered when `base` was sent (sharing its name set).
    base_names: Option<ResourceNames>,
    /// Where the proxy's holdings differ from `base`.
    exceptions: BTreeMap<String, Held>,
}

/// What a proxy holds of one resource, where that differs from the base layers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Held {
    /// This version.
    Version(String),
    /// Some version that must be sent again whatever it is (Envoy re-created the cluster that used it).
    Stale,
    /// Nothing (it unsubscribed).
    Nothing,
}

impl Known {
    /// What a reconnecting proxy says it holds (`initial_resource_versions`).
    pub fn from_versions<'a>(
        versions: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Known {
        Known {
            base: Vec::new(),
            base_names: None,
            exceptions: versions
                .into_iter()
                .map(|(name, version)| (name.clone(), Held::Version(version.clone())))
                .collect(),
        }
    }

    /// The version of `name` the proxy holds, if one that need not be sent again.
    pub fn version(&self, name: &str) -> Option<&str> {
        match self.exceptions.get(name) {
            Some(Held::Version(version)) => Some(version),
            Some(Held::Stale | Held::Nothing) => None,
            None => self.base_version(name),
        }
    }

    /// Whether the proxy holds `name` at all (so its disappearance must be told).
    pub fn holds(&self, name: &str) -> bool {
        match self.exceptions.get(name) {
            Some(held) => *held != Held::Nothing,
            None => self.base_version(name).is_some(),
        }
    }

    fn base_version(&self, name: &str) -> Option<&str> {
        if !self.base_covers(name) {
            return None;
        }
        self.base
            .iter()
            .find_map(|l| l.get(name))
            .map(|r| r.version.as_str())
    }

    fn base_covers(&self, name: &str) -> bool {
        self.base_names.as_ref().is_some_and(|n| n.covers(name))
    }

    /// Every name the proxy holds.
    pub fn names(&self) -> impl Iterator<Item = &String> + '_ {
        let from_base = self
            .base
            .iter()
            .flat_map(|l| l.resources().keys())
            .filter(|n| self.base_covers(n) && !self.exceptions.contains_key(*n));
        let exceptions = self
            .exceptions
            .iter()
            .filter(|(_, held)| **held != Held::Nothing)
            .map(|(n, _)| n);
        from_base.chain(exceptions)
    }

    /// The proxy no longer holds `name` (it unsubscribed).
    pub fn forget(&mut self, name: &str) {
        self.exceptions.insert(name.to_owned(), Held::Nothing);
    }

    /// `name`, if the proxy holds it, is to be sent again even though its version did not change; if the
    /// resource is gone meanwhile, the proxy is still told it is removed.
    pub fn resend(&mut self, name: &str) {
        if self.holds(name) {
            self.exceptions.insert(name.to_owned(), Held::Stale);
        }
    }

    /// The proxy was just sent everything `names` covers in `layers`.
    pub fn answered(&mut self, layers: &[Arc<Layer>], names: &ResourceNames) {
        self.base = layers.to_vec();
        self.base_names = Some(names.clone());
        self.exceptions.clear();
    }

    /// The layers of the last answer and the subscription they were answered for: what the proxy holds is
    /// what that subscription covered in them, except the exceptions.
    pub fn base(&self) -> Option<(&[Arc<Layer>], &ResourceNames)> {
        Some((self.base.as_slice(), self.base_names.as_ref()?))
    }

    pub fn is_exception(&self, name: &str) -> bool {
        self.exceptions.contains_key(name)
    }

    /// Names whose version differs from the base layers' (forgotten, or seeded by a reconnecting proxy).
    pub fn exceptions(&self) -> impl Iterator<Item = &String> + '_ {
        self.exceptions.keys()
    }
}

/// Per-type state of one stream.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub names: ResourceNames,
    pub last_sent: Option<Sent>,
    /// Version and nonce of the last response the proxy accepted.
    pub acked: Option<Sent>,
    pub last_nack: Option<Nack>,
    /// Delta only: the version of each resource the proxy holds, as far as this stream has told it.
    pub known: Known,
    /// Delta only: a first request waits for an answer even when nothing differs (or the proxy waits for
    /// its initial fetch timeout); it stays owed until a snapshot exists to answer from.
    pub owes_response: bool,
    /// The layers the last answer was computed from (see [`layer_ids`]).
    pub answered_from: Vec<u64>,
}

impl Subscription {
    pub fn new(names: ResourceNames) -> Subscription {
        Subscription {
            names,
            last_sent: None,
            acked: None,
            last_nack: None,
            known: Known::default(),
            owes_response: false,
            answered_from: Vec::new(),
        }
    }

    pub fn is_current_nonce(&self, nonce: &str) -> bool {
        self.last_sent.as_ref().is_some_and(|s| s.nonce == nonce)
    }

    pub fn sent_version_of(&self, nonce: &str) -> Option<&str> {
        self.last_sent
            .as_ref()
            .filter(|s| s.nonce == nonce)
            .map(|s| s.version.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_nack_message_is_cut_on_a_character_boundary_and_says_how_long_it_was() {
        assert_eq!(nack_message("short"), "short");
        let long = "é".repeat(3000);
        let kept = nack_message(&long);
        assert!(kept.len() <= NACK_MESSAGE_LIMIT + 32, "{}", kept.len());
        assert!(kept.ends_with("… (6000 bytes)"), "{kept}");
        assert!(kept.starts_with("éé"));
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sotw_empty_list_is_wildcard_only_for_wildcard_types() {
        assert_eq!(
            ResourceNames::from_sotw(ResourceType::Listener, &[]),
            ResourceNames::LegacyWildcard
        );
        assert_eq!(
            ResourceNames::from_sotw(ResourceType::Route, &[]),
            ResourceNames::Explicit(NameSet::default())
        );
        let star = ResourceNames::from_sotw(ResourceType::Cluster, &names(&["*", "a"]));
        assert!(star.is_wildcard());
        assert!(star.covers("anything"));
    }

    /// Found by the `delta_stream` fuzz target: leaving a wildcard the stream never had dropped every name
    /// it had asked for explicitly.
    #[test]
    fn unsubscribing_a_wildcard_never_subscribed_keeps_the_explicit_names() {
        let mut n = ResourceNames::delta_initial(ResourceType::Endpoint, &names(&["a"]));
        n.subscribe(&names(&["a"]));
        n.unsubscribe(&names(&["*"]));
        assert!(n.covers("a") && !n.is_wildcard());
    }

    #[test]
    fn delta_subscribe_and_unsubscribe() {
        let mut n = ResourceNames::delta_initial(ResourceType::Endpoint, &names(&["a"]));
        assert_eq!(n.subscribe(&names(&["a", "b"])), names(&["a", "b"]));
        assert_eq!(n.subscribe(&names(&["a"])), Vec::<String>::new());
        assert!(n.covers("a") && !n.covers("c"));
        n.unsubscribe(&names(&["a"]));
        assert!(!n.covers("a") && n.covers("b"));
        n.subscribe(&names(&["*"]));
        assert!(n.covers("c"));
        n.unsubscribe(&names(&["*"]));
        assert!(!n.covers("c") && n.covers("b"));
    }
}
