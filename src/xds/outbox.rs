//! Responses on their way to proxies, within one budget of bytes for all streams.
//!
//! Each stream queues at most [`QUEUE`] responses; tonic takes them one by one as HTTP/2 flow control lets it
//! send. A proxy that stops reading therefore holds its queue and the response the transport is writing,
//! a few MB in a large mesh, and a hundred such streams held hundreds of MB. So every queued byte is reserved
//! from a [`PendingBudget`] shared by all streams (`--xds-max-pending-bytes`), and given back when the
//! transport takes the next response (by then the previous one has been handed to HTTP/2) or the stream ends.
//! A [`Charge`] says what a response holds: bytes of its own, and chunks it shares with other responses (a
//! large resource's entry, `xds/frame.rs`). A shared chunk is counted once while any queue holds it, however
//! many do: a thousand proxies slow to read one 364 KB route configuration hold 364 KB, not 364 MB, while
//! stalled streams that each hold another generation's copy are counted for every copy they keep alive.
//!
//! When a reservation does not fit, the stream that has gone longest without its transport taking anything
//! is evicted: its queue is dropped at once, the budget gets its bytes back, and it ends with
//! `RESOURCE_EXHAUSTED`. Backpressure (making the reserving stream wait) was the alternative, and the wrong
//! one: the streams holding the budget are the ones that do not read, so every healthy proxy would wait on them
//! for ever. Evicting the stalled one costs a healthy proxy nothing, and a proxy that was only slow reconnects
//! and is served the newest state. An evicted stream's connection then carries no stream, and is closed after
//! the idle timeout (`connections.rs`), which frees what HTTP/2 still held for it.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::Status;

use super::limits::{Limit, LimitCounters};

/// Responses queued per stream. A step of the protocol answers at most one response per type.
pub const QUEUE: usize = 4;

/// What a queued response holds in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Charge {
    /// Bytes no other response holds.
    pub own: usize,
    /// Chunks other responses may hold too, each by its address and length.
    pub shared: Vec<(usize, usize)>,
}

impl Charge {
    /// A response of `bytes` bytes of its own.
    pub fn own(bytes: usize) -> Charge {
        Charge {
            own: bytes,
            shared: Vec::new(),
        }
    }

    /// All the bytes it holds, shared or not: what it costs a stream to hold it.
    fn total(&self) -> usize {
        self.own + self.shared.iter().map(|(_, len)| len).sum::<usize>()
    }
}

/// The bytes queued for all streams, and who holds them.
#[derive(Debug)]
pub struct PendingBudget {
    limit: usize,
    counters: Arc<LimitCounters>,
    next_id: AtomicU64,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    /// Every stream's own bytes, plus each shared chunk held once.
    used: usize,
    streams: BTreeMap<u64, Holder>,
    /// Shared chunks held by some queue: by (address, length), how many queued responses hold each.
    shared: BTreeMap<(usize, usize), usize>,
}

impl BudgetState {
    /// What holding `charge` would add to `used`.
    fn added_by(&self, charge: &Charge) -> usize {
        let mut seen = Vec::new();
        let mut added = charge.own;
        for chunk in &charge.shared {
            if !self.shared.contains_key(chunk) && !seen.contains(chunk) {
                added += chunk.1;
                seen.push(*chunk);
            }
        }
        added
    }

    fn hold(&mut self, charge: &Charge) {
        self.used += self.added_by(charge);
        for chunk in &charge.shared {
            *self.shared.entry(*chunk).or_insert(0) += 1;
        }
    }

    fn let_go(&mut self, charge: &Charge) {
        self.used = self.used.saturating_sub(charge.own);
        for chunk in &charge.shared {
            if let Some(holders) = self.shared.get_mut(chunk) {
                *holders -= 1;
                if *holders == 0 {
                    self.shared.remove(chunk);
                    self.used = self.used.saturating_sub(chunk.1);
                }
            }
        }
    }
}

#[derive(Debug)]
struct Holder {
    /// All the bytes its queued responses hold, shared or not.
    bytes: usize,
    /// When its transport last took a response (or it queued its first since holding nothing).
    progress: Instant,
    evicted: bool,
    queue: Weak<dyn Evict>,
}

/// What the budget needs of a stream's queue to evict it.
trait Evict: Send + Sync + std::fmt::Debug {
    /// Drops what is queued, ends the stream with `status`; returns what it held.
    fn evict(&self, status: Status) -> Vec<Charge>;
}

impl PendingBudget {
    pub fn new(limit: usize, counters: Arc<LimitCounters>) -> Arc<PendingBudget> {
        Arc::new(PendingBudget {
            limit,
            counters,
            next_id: AtomicU64::new(0),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BudgetState> {
        // Plain counts: whatever a panicking holder left behind is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes queued now, across all streams.
    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// A queue for one stream: the stream task pushes into the [`Outbox`], tonic reads the [`OutboxStream`].
    pub fn outbox<R: Send + 'static>(self: &Arc<Self>) -> (Outbox<R>, OutboxStream<R>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            id,
            budget: self.clone(),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                in_flight: Charge::default(),
                last: None,
                consumer: None,
                producer_gone: false,
                consumer_gone: false,
            }),
            space: Notify::new(),
            ended: Notify::new(),
        });
        let weak: Weak<dyn Evict> = Arc::downgrade(&shared) as Weak<dyn Evict>;
        self.lock().streams.insert(
            id,
            Holder {
                bytes: 0,
                progress: Instant::now(),
                evicted: false,
                queue: weak,
            },
        );
        (
            Outbox {
                shared: shared.clone(),
            },
            OutboxStream {
                shared,
                done: false,
            },
        )
    }

    /// Reserves `charge` for stream `id`, evicting the most stalled streams until it fits. `Err` when the
    /// stream itself is the one to go (or nothing else can make room).
    fn reserve(&self, id: u64, charge: &Charge) -> Result<(), ()> {
        let bytes = charge.total();
        if BudgetState::default().added_by(charge) > self.limit {
            // Evicting everyone else would not make it fit.
            self.counters.refused(Limit::PendingBytes);
            return Err(());
        }
        let mut evicted = Vec::new();
        let fits = {
            let mut state = self.lock();
            loop {
                if state.used + state.added_by(charge) <= self.limit {
                    let state = &mut *state;
                    state.hold(charge);
                    if let Some(holder) = state.streams.get_mut(&id) {
                        if holder.bytes == 0 {
                            holder.progress = Instant::now();
                        }
                        holder.bytes += bytes;
                    }
                    break true;
                }
                let victim = state
                    .streams
                    .iter()
                    .filter(|(_, h)| h.bytes > 0 && !h.evicted)
                    .min_by_key(|(_, h)| h.progress)
                    .map(|(victim, _)| *victim);
                match victim {
                    Some(victim) if victim != id => {
                        let Some(holder) = state.streams.get_mut(&victim) else {
                            break false;
                        };
                        holder.evicted = true;
                        if let Some(queue) = holder.queue.upgrade() {
                            evicted.push(queue);
                        }
                        // Its queued bytes come back once its queue is dropped, below, outside this lock.
                        drop(state);
                        for queue in evicted.drain(..) {
                            self.counters.refused(Limit::PendingBytes);
                            for freed in queue.evict(over_budget(self.limit)) {
                                self.release(victim, &freed, false);
                            }
                        }
                        state = self.lock();
                    }
                    _ => break false,
                }
            }
        };
        if fits {
            Ok(())
        } else {
            self.counters.refused(Limit::PendingBytes);
            Err(())
        }
    }

    /// Gives back what stream `id` held of `charge`; `progress`: its transport took a response.
    fn release(&self, id: u64, charge: &Charge, progress: bool) {
        let bytes = charge.total();
        if bytes == 0 && !progress {
            return;
        }
        let mut state = self.lock();
        state.let_go(charge);
        if let Some(holder) = state.streams.get_mut(&id) {
            holder.bytes = holder.bytes.saturating_sub(bytes);
            if progress {
                holder.progress = Instant::now();
            }
        }
    }

    fn forget(&self, id: u64, held: Vec<Charge>) {
        let mut state = self.lock();
        for charge in &held {
            state.let_go(charge);
        }
        state.streams.remove(&id);
    }
}

fn over_budget(limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "responses queued for proxies reached {limit} bytes across all streams, and this stream had gone \
         longest without reading"
    ))
}

struct Shared<R> {
    id: u64,
    budget: Arc<PendingBudget>,
    queue: Mutex<Queue<R>>,
    /// A response was taken: a producer waiting for room may go on.
    space: Notify,
    /// The stream was evicted or its reader went away.
    ended: Notify,
}

struct Queue<R> {
    items: VecDeque<(R, Charge)>,
    /// What the response tonic took last holds: HTTP/2 may still be writing it.
    in_flight: Charge,
    /// The status that ends the stream, after what is queued.
    last: Option<Status>,
    consumer: Option<Waker>,
    producer_gone: bool,
    consumer_gone: bool,
}

impl<R> std::fmt::Debug for Queue<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("items", &self.items.len())
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl<R> std::fmt::Debug for Shared<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<R> Shared<R> {
    fn lock(&self) -> MutexGuard<'_, Queue<R>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<R> Queue<R> {
    /// Everything it holds, emptied: the queued responses and the one in flight.
    fn take_all(&mut self) -> Vec<Charge> {
        let mut held: Vec<Charge> = self.items.drain(..).map(|(_, charge)| charge).collect();
        held.push(std::mem::take(&mut self.in_flight));
        held
    }
}

impl<R: Send> Evict for Shared<R> {
    fn evict(&self, status: Status) -> Vec<Charge> {
        let (freed, waker) = {
            let mut queue = self.lock();
            // What HTTP/2 still holds of the response it was writing is given back too, though it is freed only
            // when the connection closes (it carries no stream now, so the idle timeout closes it): counting it
            // until then would let evicted streams fill the budget and starve everyone else.
            let freed = queue.take_all();
            queue.last = Some(status);
            (freed, queue.consumer.take())
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        self.ended.notify_waiters();
        self.space.notify_waiters();
        freed
    }
}

impl<R> Drop for Shared<R> {
    fn drop(&mut self) {
        let queue = self.queue.get_mut().unwrap_or_else(|e| e.into_inner());
        let held = queue.take_all();
        self.budget.forget(self.id, held);
    }
}

/// Why a response could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// The transport dropped the stream: the proxy went away.
    Gone,
    /// The pending-bytes budget ended this stream; the client is told.
    Evicted,
}

/// The stream task's end of a stream's queue.
#[derive(Debug)]
pub struct Outbox<R> {
    shared: Arc<Shared<R>>,
}

impl<R: Send + 'static> Outbox<R> {
    /// Queues `response`, which holds `charge`, once there is room, within the budget.
    pub async fn send(&self, response: R, charge: Charge) -> Result<(), Closed> {
        loop {
            let space = self.shared.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let queue = self.shared.lock();
                if queue.consumer_gone {
                    return Err(Closed::Gone);
                }
                if queue.last.is_some() {
                    return Err(Closed::Evicted);
                }
                if queue.items.len() < QUEUE {
                    break;
                }
            }
            space.await;
        }
        if self.shared.budget.reserve(self.shared.id, &charge).is_err() {
            for freed in self.shared.evict(over_budget(self.shared.budget.limit)) {
                self.shared.budget.release(self.shared.id, &freed, false);
            }
            return Err(Closed::Evicted);
        }
        let waker = {
            let mut queue = self.shared.lock();
            if queue.last.is_some() || queue.consumer_gone {
                drop(queue);
                self.shared.budget.release(self.shared.id, &charge, false);
                return Err(Closed::Evicted);
            }
            queue.items.push_back((response, charge));
            queue.consumer.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Ends the stream with `status` after what is queued, unless it already ends otherwise. Never waits.
    pub fn finish(&self, status: Status) {
        let waker = {
            let mut queue = self.shared.lock();
            queue.last.get_or_insert(status);
            queue.consumer.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Resolves once the stream was evicted or its reader went away, saying which.
    pub async fn ended(&self) -> Closed {
        loop {
            let ended = self.shared.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            {
                let queue = self.shared.lock();
                if queue.consumer_gone {
                    return Closed::Gone;
                }
                if queue.last.is_some() && queue.items.is_empty() {
                    return Closed::Evicted;
                }
            }
            ended.await;
        }
    }
}

impl<R> Drop for Outbox<R> {
    fn drop(&mut self) {
        let waker = {
            let mut queue = self.shared.lock();
            queue.producer_gone = true;
            queue.consumer.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// tonic's end of a stream's queue: the responses, then the status that ends the stream, if any.
#[derive(Debug)]
pub struct OutboxStream<R> {
    shared: Arc<Shared<R>>,
    done: bool,
}

impl<R> Stream for OutboxStream<R> {
    type Item = Result<R, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let shared = self.shared.clone();
        let mut queue = shared.lock();
        // Taking the next response means the transport has handed the previous one to HTTP/2.
        let released = std::mem::take(&mut queue.in_flight);
        let next = if let Some((response, charge)) = queue.items.pop_front() {
            queue.in_flight = charge;
            Poll::Ready(Some(Ok(response)))
        } else if let Some(status) = queue.last.take() {
            Poll::Ready(Some(Err(status)))
        } else if queue.producer_gone {
            Poll::Ready(None)
        } else {
            queue.consumer = Some(cx.waker().clone());
            Poll::Pending
        };
        drop(queue);
        let took = matches!(next, Poll::Ready(Some(Ok(_))));
        if matches!(next, Poll::Ready(Some(Err(_))) | Poll::Ready(None)) {
            self.done = true;
        }
        shared.budget.release(shared.id, &released, took);
        if took {
            shared.space.notify_waiters();
        }
        next
    }
}

impl<R> Drop for OutboxStream<R> {
    fn drop(&mut self) {
        let freed = {
            let mut queue = self.shared.lock();
            queue.consumer_gone = true;
            queue.take_all()
        };
        for charge in &freed {
            self.shared.budget.release(self.shared.id, charge, false);
        }
        self.shared.ended.notify_waiters();
        self.shared.space.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn the_stream_longest_without_reading_is_evicted_and_a_reader_is_not() {
        let counters = Arc::new(LimitCounters::default());
        let budget = PendingBudget::new(100, counters.clone());
        let (stalled, mut stalled_rx) = budget.outbox::<u32>();
        stalled.send(1, Charge::own(60)).await.unwrap();
        let (reader, mut reader_rx) = budget.outbox::<u32>();
        reader.send(2, Charge::own(30)).await.unwrap();
        assert_eq!(reader_rx.next().await.map(|r| r.ok()), Some(Some(2)));
        assert_eq!(budget.used(), 90, "the response taken last still counts");

        // 50 more do not fit: the stalled stream goes, not the one that reads.
        reader.send(3, Charge::own(50)).await.unwrap();
        assert_eq!(stalled.send(4, Charge::own(1)).await, Err(Closed::Evicted));
        assert_eq!(stalled.ended().await, Closed::Evicted);
        let status = stalled_rx.next().await.and_then(|r| r.err()).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(stalled_rx.next().await.is_none());
        assert_eq!(counters.get(Limit::PendingBytes), 1);
        // Taking the next response gives back the previous one's bytes.
        assert_eq!(reader_rx.next().await.map(|r| r.ok()), Some(Some(3)));
        assert_eq!(budget.used(), 50);

        // A response larger than the whole budget evicts nobody else.
        assert_eq!(reader.send(5, Charge::own(101)).await, Err(Closed::Evicted));
        drop((reader, reader_rx, stalled, stalled_rx));
        assert_eq!(budget.used(), 0);
    }

    /// A chunk several queues hold is counted once, until the last of them lets it go; another chunk is
    /// counted on its own.
    #[tokio::test]
    async fn a_shared_chunk_is_counted_once_while_any_queue_holds_it() {
        let budget = PendingBudget::new(1_000, Arc::new(LimitCounters::default()));
        let charge = |chunk: usize| Charge {
            own: 10,
            shared: vec![(chunk, 400)],
        };
        let (a, mut a_rx) = budget.outbox::<u32>();
        let (b, mut b_rx) = budget.outbox::<u32>();
        a.send(1, charge(0xa)).await.unwrap();
        b.send(2, charge(0xa)).await.unwrap();
        assert_eq!(budget.used(), 10 + 10 + 400);
        // Another chunk is counted on its own.
        b.send(3, charge(0xb)).await.unwrap();
        assert_eq!(budget.used(), 10 + 10 + 10 + 400 + 400);
        assert_eq!(a_rx.next().await.map(|r| r.ok()), Some(Some(1)));
        assert_eq!(b_rx.next().await.map(|r| r.ok()), Some(Some(2)));
        // Both took their first response; taking the next gives the first back.
        drop(a);
        assert!(a_rx.next().await.is_none());
        assert_eq!(
            budget.used(),
            10 + 10 + 400 + 400,
            "b still holds chunk a in flight"
        );
        assert_eq!(b_rx.next().await.map(|r| r.ok()), Some(Some(3)));
        assert_eq!(budget.used(), 10 + 400, "only chunk b is held now");
        drop((b, b_rx, a_rx));
        assert_eq!(budget.used(), 0);
    }
}
