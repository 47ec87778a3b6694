//! Where streams get their snapshots: the current generation, which maps a node to the snapshot of its proxy,
//! and the board that rings the streams a new generation concerns ([`super::board`]).
//!
//! Only the latest generation is kept, so a slow stream can never fall behind by more than one generation and
//! nothing queues up: when it looks again it sees the newest state.

use std::sync::{Arc, Mutex};

use super::board::{self, Board, CacheWatch};
use super::generation::{Generation, Uniform};
use super::snapshot::Snapshot;

/// The publishing side of the cache. Cloning shares it.
#[derive(Clone)]
pub struct Cache {
    board: Arc<Mutex<Board>>,
}

impl Cache {
    pub fn new(initial: Arc<dyn Generation>) -> Cache {
        Cache {
            board: Arc::new(Mutex::new(Board::new(initial))),
        }
    }

    /// A cache that serves one snapshot to every node.
    pub fn uniform(snapshot: Snapshot) -> Cache {
        Cache::new(Arc::new(Uniform(Arc::new(snapshot))))
    }

    /// Publishes a new generation; every stream it may concern re-evaluates what it owes its proxy.
    pub fn publish(&self, generation: Arc<dyn Generation>) {
        let replaced = board::lock(&self.board).publish(generation);
        // Outside the lock: streams looking up or posting do not wait for a generation to be freed.
        drop(replaced);
    }

    pub fn set_uniform(&self, snapshot: Snapshot) {
        self.publish(Arc::new(Uniform(Arc::new(snapshot))));
    }

    pub fn current(&self) -> Arc<dyn Generation> {
        board::lock(&self.board).current().clone()
    }

    /// A stream's watch on the cache, rung when a generation may concern it.
    pub fn watch(&self) -> CacheWatch {
        CacheWatch::new(self.board.clone())
    }

    #[cfg(test)]
    pub(super) fn board_for_tests(&self) -> Arc<Mutex<Board>> {
        self.board.clone()
    }

    /// How many watches are open (streams, for tests).
    pub fn watches(&self) -> usize {
        board::lock(&self.board).posts()
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish_non_exhaustive()
    }
}
