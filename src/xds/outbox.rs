//! Responses on their way to proxies, within one budget of bytes for all streams.
//!
//! Each stream queues at most [`QUEUE`] responses; tonic takes them one by one as HTTP/2 flow control lets it
//! send. A proxy that stops reading therefore holds its queue and the response the transport is writing,
//! a few MB in a large mesh, and a hundred such streams held hundreds of MB. So every byte a queued response
//! holds of its own is reserved from a [`PendingBudget`] shared by all streams (`--xds-max-pending-bytes`), and
//! given back when the transport takes the next response (by then the previous one has been handed to HTTP/2)
//! or the stream ends. The entry of a large resource that every response shares (`xds/frame.rs`) is not a
//! stream's own: it exists once per resource whatever the streams do, and only a new generation (an operator's
//! change, not a client) makes another.
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
    used: usize,
    streams: BTreeMap<u64, Holder>,
}

#[derive(Debug)]
struct Holder {
    bytes: usize,
    /// When its transport last took a response (or it queued its first since holding nothing).
    progress: Instant,
    evicted: bool,
    queue: Weak<dyn Evict>,
}

/// What the budget needs of a stream's queue to evict it.
trait Evict: Send + Sync + std::fmt::Debug {
    /// Drops what is queued, ends the stream with `status`; returns the bytes freed.
    fn evict(&self, status: Status) -> usize;
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
                in_flight: 0,
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

    /// Reserves `bytes` for stream `id`, evicting the most stalled streams until they fit. `Err` when the stream
    /// itself is the one to go (or nothing else can make room).
    fn reserve(&self, id: u64, bytes: usize) -> Result<(), ()> {
        if bytes > self.limit {
            // Evicting everyone else would not make it fit.
            self.counters.refused(Limit::PendingBytes);
            return Err(());
        }
        let mut evicted = Vec::new();
        let fits = {
            let mut state = self.lock();
            loop {
                if state.used + bytes <= self.limit {
                    let state = &mut *state;
                    state.used += bytes;
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
                            let freed = queue.evict(over_budget(self.limit));
                            self.release(victim, freed, false);
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

    /// Gives back `bytes` of stream `id`; `progress`: its transport took a response.
    fn release(&self, id: u64, bytes: usize, progress: bool) {
        if bytes == 0 && !progress {
            return;
        }
        let mut state = self.lock();
        state.used = state.used.saturating_sub(bytes);
        if let Some(holder) = state.streams.get_mut(&id) {
            holder.bytes = holder.bytes.saturating_sub(bytes);
            if progress {
                holder.progress = Instant::now();
            }
        }
    }

    fn forget(&self, id: u64, bytes: usize) {
        let mut state = self.lock();
        state.used = state.used.saturating_sub(bytes);
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
    items: VecDeque<(R, usize)>,
    /// The bytes of the response tonic took last: HTTP/2 may still be writing it.
    in_flight: usize,
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

impl<R: Send> Evict for Shared<R> {
    fn evict(&self, status: Status) -> usize {
        let (freed, waker) = {
            let mut queue = self.lock();
            // What HTTP/2 still holds of the response it was writing is given back too, though it is freed only
            // when the connection closes (it carries no stream now, so the idle timeout closes it): counting it
            // until then would let evicted streams fill the budget and starve everyone else.
            let freed: usize = std::mem::take(&mut queue.in_flight)
                + queue.items.drain(..).map(|(_, n)| n).sum::<usize>();
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
        let held: usize = queue.in_flight + queue.items.iter().map(|(_, n)| n).sum::<usize>();
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
    /// Queues `response` of `bytes` encoded bytes once there is room, within the budget.
    pub async fn send(&self, response: R, bytes: usize) -> Result<(), Closed> {
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
        if self.shared.budget.reserve(self.shared.id, bytes).is_err() {
            let freed = self.shared.evict(over_budget(self.shared.budget.limit));
            self.shared.budget.release(self.shared.id, freed, false);
            return Err(Closed::Evicted);
        }
        let waker = {
            let mut queue = self.shared.lock();
            if queue.last.is_some() || queue.consumer_gone {
                drop(queue);
                self.shared.budget.release(self.shared.id, bytes, false);
                return Err(Closed::Evicted);
            }
            queue.items.push_back((response, bytes));
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
        let next = if let Some((response, bytes)) = queue.items.pop_front() {
            queue.in_flight = bytes;
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
        shared.budget.release(shared.id, released, took);
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
            let freed = queue.in_flight + queue.items.drain(..).map(|(_, n)| n).sum::<usize>();
            queue.in_flight = 0;
            freed
        };
        self.shared.budget.release(self.shared.id, freed, false);
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
        stalled.send(1, 60).await.unwrap();
        let (reader, mut reader_rx) = budget.outbox::<u32>();
        reader.send(2, 30).await.unwrap();
        assert_eq!(reader_rx.next().await.map(|r| r.ok()), Some(Some(2)));
        assert_eq!(budget.used(), 90, "the response taken last still counts");

        // 50 more do not fit: the stalled stream goes, not the one that reads.
        reader.send(3, 50).await.unwrap();
        assert_eq!(stalled.send(4, 1).await, Err(Closed::Evicted));
        assert_eq!(stalled.ended().await, Closed::Evicted);
        let status = stalled_rx.next().await.and_then(|r| r.err()).unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(stalled_rx.next().await.is_none());
        assert_eq!(counters.get(Limit::PendingBytes), 1);
        // Taking the next response gives back the previous one's bytes.
        assert_eq!(reader_rx.next().await.map(|r| r.ok()), Some(Some(3)));
        assert_eq!(budget.used(), 50);

        // A response larger than the whole budget evicts nobody else.
        assert_eq!(reader.send(5, 101).await, Err(Closed::Evicted));
        drop((reader, reader_rx, stalled, stalled_rx));
        assert_eq!(budget.used(), 0);
    }
}
