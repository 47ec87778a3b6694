//! Which streams a new generation concerns, so that a change to one host wakes the streams that hold it and not
//! ten thousand others.
//!
//! Every stream posts on the board the layers of the snapshot it holds, and whom the snapshot was made for (its
//! subject: a sidecar's workload). A published generation says which layers of the one before it it replaced
//! and which subjects may get another snapshot ([`Reach`]); the board rings the streams holding one of them,
//! the streams with a volatile snapshot or none, and every stream when the generation cannot say. A stream that
//! is not rung holds what it would look up in the new generation, so it owes its proxy nothing and does not
//! look.
//!
//! The board and the current generation change under one lock: a stream that looked its snapshot up in a
//! generation replaced before it posted rings itself and looks again, so no publication slips between a lookup
//! and the post.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::generation::{Generation, Reach};
use super::resource_type::ResourceType;
use super::snapshot::Snapshot;

/// The current generation and the streams' posts.
pub(super) struct Board {
    current: Arc<dyn Generation>,
    next_post: u64,
    posts: BTreeMap<u64, Post>,
    /// Per layer and per subject, the posts holding it.
    holders: BTreeMap<Held, BTreeSet<u64>>,
    /// Posts whose snapshot is volatile, or who have none: rung on every publication.
    volatile: BTreeSet<u64>,
}

/// What a post holds that a generation may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Held {
    Layer(u64),
    Subject(u64),
}

struct Post {
    doorbell: Arc<Notify>,
    held: Vec<Held>,
}

/// What a stream posts: what it holds, worked out before taking the board's lock.
pub(super) struct Holding {
    held: Vec<Held>,
    volatile: bool,
}

impl Holding {
    /// A stream that found no snapshot looks again on every generation: whatever kept it from one (an identity
    /// no workload matches yet) may be gone in the next.
    fn of(snapshot: Option<&Snapshot>) -> Holding {
        match snapshot {
            Some(s) => Holding {
                held: ResourceType::ALL
                    .into_iter()
                    .flat_map(|t| s.layers(t).iter().map(|l| Held::Layer(l.id())))
                    .chain(s.subject().map(Held::Subject))
                    .collect(),
                volatile: s.volatile(),
            },
            None => Holding {
                held: Vec::new(),
                volatile: true,
            },
        }
    }
}

impl Board {
    pub(super) fn new(current: Arc<dyn Generation>) -> Board {
        Board {
            current,
            next_post: 0,
            posts: BTreeMap::new(),
            holders: BTreeMap::new(),
            volatile: BTreeSet::new(),
        }
    }

    pub(super) fn current(&self) -> &Arc<dyn Generation> {
        &self.current
    }

    /// Replaces the current generation and rings the streams it concerns. Returns the replaced generation,
    /// for the caller to drop once the board is unlocked (freeing a generation at scale takes a while).
    #[must_use]
    pub(super) fn publish(&mut self, generation: Arc<dyn Generation>) -> Arc<dyn Generation> {
        let previous = std::mem::replace(&mut self.current, generation);
        match self.current.reach_after(&*previous) {
            Reach::Every => self.posts.values().for_each(|p| p.doorbell.notify_one()),
            Reach::Holding(replaced) => {
                let layers = replaced.layers.iter().map(|l| Held::Layer(*l));
                let subjects = replaced.subjects.iter().map(|s| Held::Subject(*s));
                let rung = layers
                    .chain(subjects)
                    .filter_map(|held| self.holders.get(&held))
                    .flatten()
                    .chain(&self.volatile);
                for id in rung {
                    if let Some(post) = self.posts.get(id) {
                        post.doorbell.notify_one();
                    }
                }
            }
        }
        previous
    }

    fn post(&mut self) -> (u64, Arc<Notify>) {
        let id = self.next_post;
        self.next_post += 1;
        let doorbell = Arc::new(Notify::new());
        self.posts.insert(
            id,
            Post {
                doorbell: doorbell.clone(),
                held: Vec::new(),
            },
        );
        (id, doorbell)
    }

    /// Records what post `id` holds, looked up in `generation`.
    fn hold(&mut self, id: u64, generation: &Arc<dyn Generation>, holding: Holding) {
        let Holding { held, volatile } = holding;
        let Some(post) = self.posts.get_mut(&id) else {
            return;
        };
        if !Arc::ptr_eq(generation, &self.current) {
            // Replaced after the lookup: the publication rang the posts as they were, perhaps not this one.
            post.doorbell.notify_one();
        }
        if volatile {
            self.volatile.insert(id);
        } else {
            self.volatile.remove(&id);
        }
        if post.held != held {
            let before = std::mem::replace(&mut post.held, held);
            unindex(&mut self.holders, id, &before);
            for key in &post.held {
                self.holders.entry(*key).or_default().insert(id);
            }
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(post) = self.posts.remove(&id) {
            unindex(&mut self.holders, id, &post.held);
        }
        self.volatile.remove(&id);
    }

    pub(super) fn posts(&self) -> usize {
        self.posts.len()
    }
}

fn unindex(index: &mut BTreeMap<Held, BTreeSet<u64>>, id: u64, keys: &[Held]) {
    for key in keys {
        if let Some(posts) = index.get_mut(key) {
            posts.remove(&id);
            if posts.is_empty() {
                index.remove(key);
            }
        }
    }
}

pub(super) fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    // Every update leaves the board consistent before it can panic (the ringing is last).
    board.lock().unwrap_or_else(|e| e.into_inner())
}

/// A stream's place on the board: rung when a generation may give it another snapshot. Leaves the board when
/// dropped.
pub struct CacheWatch {
    board: Arc<Mutex<Board>>,
    id: u64,
    doorbell: Arc<Notify>,
}

impl CacheWatch {
    pub(super) fn new(board: Arc<Mutex<Board>>) -> CacheWatch {
        let (id, doorbell) = lock(&board).post();
        CacheWatch {
            board,
            id,
            doorbell,
        }
    }

    /// Waits until a published generation may concern this stream. Cancel safe: a ring that arrives while
    /// nobody waits is kept for the next wait.
    pub async fn rung(&self) {
        self.doorbell.notified().await
    }

    /// Whether the stream was rung since it last looked, without waiting (consumes the ring).
    pub fn take_ring(&self) -> bool {
        use futures::FutureExt;
        self.doorbell.notified().now_or_never().is_some()
    }

    /// The generation to look the snapshot up in.
    pub fn current(&self) -> Arc<dyn Generation> {
        lock(&self.board).current().clone()
    }

    /// Posts the snapshot (`None`: none could be found) the stream looked up in `generation` and now holds.
    pub fn hold(&self, generation: &Arc<dyn Generation>, snapshot: Option<&Snapshot>) {
        // Worked out before taking the lock every stream and the publisher share.
        let holding = Holding::of(snapshot);
        lock(&self.board).hold(self.id, generation, holding);
    }
}

impl Drop for CacheWatch {
    fn drop(&mut self) {
        lock(&self.board).remove(self.id);
    }
}

impl std::fmt::Debug for CacheWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheWatch")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::Node;

    use super::*;
    use crate::xds::{Cache, Layer, PerType, Replaced};

    /// A generation serving one fixed snapshot, which says it replaced `replaced` of generation `after`.
    #[derive(Debug)]
    struct Fixed {
        id: u64,
        after: u64,
        replaced: Replaced,
        snapshot: Arc<Snapshot>,
    }

    impl Generation for Fixed {
        fn snapshot_for(&self, _node: &Node) -> Result<Arc<Snapshot>, String> {
            Ok(self.snapshot.clone())
        }
        fn reach_after(&self, previous: &dyn Generation) -> Reach<'_> {
            match previous.id() {
                Some(id) if id == self.after => Reach::Holding(&self.replaced),
                _ => Reach::Every,
            }
        }
        fn id(&self) -> Option<u64> {
            Some(self.id)
        }
    }

    fn snapshot_of(layer: &Arc<Layer>) -> Snapshot {
        let mut layers: PerType<Vec<Arc<Layer>>> = PerType::default();
        layers[ResourceType::Route] = vec![layer.clone()];
        Snapshot::from_layers(layers)
    }

    fn generation(id: u64, after: u64, replaced: &[&Arc<Layer>]) -> Arc<dyn Generation> {
        Arc::new(Fixed {
            id,
            after,
            replaced: Replaced {
                layers: replaced.iter().map(|l| l.id()).collect(),
                subjects: BTreeSet::new(),
            },
            snapshot: Arc::new(Snapshot::default()),
        })
    }

    /// Two streams holding one layer each, looked up in `current`.
    fn two_streams(cache: &Cache, a: &Arc<Layer>, b: &Arc<Layer>) -> (CacheWatch, CacheWatch) {
        let (first, second) = (cache.watch(), cache.watch());
        let current = cache.current();
        first.hold(&current, Some(&snapshot_of(a)));
        second.hold(&current, Some(&snapshot_of(b)));
        (first, second)
    }

    #[test]
    fn a_generation_rings_only_the_streams_holding_a_layer_it_replaced() {
        let (a, b) = (Arc::new(Layer::new([])), Arc::new(Layer::new([])));
        let cache = Cache::new(generation(1, 0, &[]));
        let (first, second) = two_streams(&cache, &a, &b);
        cache.publish(generation(2, 1, &[&b]));
        assert!(!first.take_ring());
        assert!(second.take_ring());
        // Built from a generation that is not the one it replaces: it cannot say, so everyone looks.
        cache.publish(generation(3, 1, &[&b]));
        assert!(first.take_ring());
        assert!(second.take_ring());
    }

    #[test]
    fn a_stream_that_looked_in_a_replaced_generation_rings_itself() {
        let (a, b) = (Arc::new(Layer::new([])), Arc::new(Layer::new([])));
        let cache = Cache::new(generation(1, 0, &[]));
        let (first, _second) = two_streams(&cache, &a, &b);
        let looked_in = cache.current();
        // Published between the stream's lookup and its post: the board did not know it held `b` yet.
        cache.publish(generation(2, 1, &[&b]));
        assert!(!first.take_ring());
        first.hold(&looked_in, Some(&snapshot_of(&b)));
        assert!(
            first.take_ring(),
            "it must look again, in the current generation"
        );
    }

    #[test]
    fn a_volatile_snapshot_is_looked_up_on_every_generation_and_a_closed_watch_leaves_the_board() {
        let (a, b) = (Arc::new(Layer::new([])), Arc::new(Layer::new([])));
        let cache = Cache::new(generation(1, 0, &[]));
        let (first, second) = two_streams(&cache, &a, &b);
        first.hold(&cache.current(), Some(&snapshot_of(&a).marked_volatile()));
        cache.publish(generation(2, 1, &[]));
        assert!(first.take_ring());
        assert!(!second.take_ring());
        assert_eq!(cache.watches(), 2);
        drop(first);
        assert_eq!(cache.watches(), 1);
        // The board forgot the closed stream's layers as well.
        assert!(!lock(&cache_board(&cache))
            .holders
            .contains_key(&Held::Layer(a.id())));
    }

    #[test]
    fn a_generation_rings_the_streams_of_the_subjects_it_names_and_those_without_a_snapshot() {
        let a = Arc::new(Layer::new([]));
        let cache = Cache::new(generation(1, 0, &[]));
        let (mine, other, lost) = (cache.watch(), cache.watch(), cache.watch());
        let current = cache.current();
        mine.hold(&current, Some(&snapshot_of(&a).with_subject(7)));
        other.hold(&current, Some(&snapshot_of(&a).with_subject(8)));
        // Found no snapshot (its identity matches no workload yet).
        lost.hold(&current, None);
        cache.publish(Arc::new(Fixed {
            id: 2,
            after: 1,
            replaced: Replaced {
                layers: BTreeSet::new(),
                subjects: BTreeSet::from([7]),
            },
            snapshot: Arc::new(Snapshot::default()),
        }));
        assert!(mine.take_ring());
        assert!(!other.take_ring());
        assert!(lost.take_ring());
    }

    fn cache_board(cache: &Cache) -> Arc<Mutex<Board>> {
        cache.board_for_tests()
    }
}
