//! Sets of resource names shared between streams.
//!
//! Every sidecar of a mesh asks for the same EDS names (one per EDS cluster, thousands in a large mesh) and the
//! same RDS names. Held per stream, those sets were most of what an idle proxy cost; interned, identical sets are
//! one allocation however many streams hold them. Interning happens only where a stream stores a set it was sent,
//! never on the push path.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// An immutable set of names, shared by every holder of an equal set.
#[derive(Clone, Debug, Default)]
pub struct NameSet(Arc<BTreeSet<String>>);

impl NameSet {
    /// The shared copy of `names`.
    pub fn new(names: BTreeSet<String>) -> NameSet {
        if names.is_empty() {
            return NameSet::default();
        }
        INTERNER.intern(names)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> + '_ {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The shared copy of this set changed by `edit`.
    pub fn edited(&self, edit: impl FnOnce(&mut BTreeSet<String>)) -> NameSet {
        let mut names = (*self.0).clone();
        edit(&mut names);
        NameSet::new(names)
    }

    /// Whether two holders share one allocation (for tests and memory accounting).
    /// A reference that does not keep the set alive, for memos keyed by set.
    pub fn downgrade(&self) -> WeakNameSet {
        WeakNameSet(Arc::downgrade(&self.0))
    }

    pub fn shares_with(&self, other: &NameSet) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A [`NameSet`] that may have been freed.
#[derive(Clone, Debug)]
pub struct WeakNameSet(Weak<BTreeSet<String>>);

impl WeakNameSet {
    /// Whether this is `set` (the same allocation, still alive: a freed set's address may be reused).
    pub fn refers_to(&self, set: &NameSet) -> bool {
        self.is_alive() && std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&set.0))
    }

    pub fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

impl PartialEq for NameSet {
    fn eq(&self, other: &NameSet) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for NameSet {}

/// Live sets by a hash of their content. Entries are weak: a set no stream holds any more is freed, and its
/// entry is swept on a later insertion.
struct Interner {
    sets: Mutex<Sets>,
}

#[derive(Default)]
struct Sets {
    by_hash: BTreeMap<u64, Vec<Weak<BTreeSet<String>>>>,
    insertions: u64,
}

/// How many insertions between sweeps of entries whose sets are gone.
const SWEEP_EVERY: u64 = 1024;

static INTERNER: LazyLock<Interner> = LazyLock::new(|| Interner {
    sets: Mutex::new(Sets::default()),
});

impl Interner {
    fn intern(&self, names: BTreeSet<String>) -> NameSet {
        let mut hasher = std::hash::DefaultHasher::new();
        names.hash(&mut hasher);
        let hash = hasher.finish();
        // Only map bookkeeping happens under the lock; a panic elsewhere cannot leave it inconsistent.
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = sets.by_hash.entry(hash).or_default();
        bucket.retain(|w| w.strong_count() > 0);
        if let Some(found) = bucket
            .iter()
            .filter_map(Weak::upgrade)
            .find(|s| **s == names)
        {
            return NameSet(found);
        }
        let set = Arc::new(names);
        bucket.push(Arc::downgrade(&set));
        sets.insertions += 1;
        if sets.insertions % SWEEP_EVERY == 0 {
            sets.by_hash.retain(|_, bucket| {
                bucket.retain(|w| w.strong_count() > 0);
                !bucket.is_empty()
            });
        }
        NameSet(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn equal_sets_share_one_allocation_and_edits_find_it() {
        let a = NameSet::new(set(&["x", "y"]));
        let b = NameSet::new(set(&["y", "x"]));
        assert!(a.shares_with(&b));
        let c = NameSet::new(set(&["x"])).edited(|s| {
            s.insert("y".into());
        });
        assert!(a.shares_with(&c));
        assert!(!a.shares_with(&NameSet::new(set(&["x", "z"]))));
    }

    #[test]
    fn a_set_nobody_holds_is_freed() {
        let weak = {
            let a = NameSet::new(set(&["only-here-a-set-nobody-holds"]));
            Arc::downgrade(&a.0)
        };
        assert_eq!(weak.strong_count(), 0);
    }
}
