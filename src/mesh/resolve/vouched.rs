//! The resources of a reading known by address, to tell which of them the last valid reading resolved.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::spec::Sourced;

/// The resources of a reading, by address. The loader shares the resources of the files it did not read
/// again, so a resource of this reading found among the last valid reading's is the very one that reading
/// resolved (which had no error, and kept them alive, so no other allocation can have their address).
pub(super) struct Vouched<T>(Vec<usize>, PhantomData<T>);

impl<T> Vouched<T> {
    pub(super) fn of(items: &[Arc<Sourced<T>>]) -> Vouched<T> {
        // Sorted addresses: cheaper to build than a tree of 10,000, and as quick to search.
        let mut addresses: Vec<usize> = items.iter().map(|i| Arc::as_ptr(i) as usize).collect();
        addresses.sort_unstable();
        Vouched(addresses, PhantomData)
    }

    pub(super) fn contains(&self, item: &Arc<Sourced<T>>) -> bool {
        self.0.binary_search(&(Arc::as_ptr(item) as usize)).is_ok()
    }
}
