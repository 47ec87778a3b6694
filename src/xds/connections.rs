//! The xDS port's connections: how many are open, how many ADS streams each carries, and closing those that
//! carry none for too long.
//!
//! tonic accepts whatever stream of connections it is given, and HTTP/2 has no timeout for a client that
//! connects and never speaks: 19,990 such connections once filled the file descriptor limit. So connections are
//! accepted here (plaintext and TLS alike, `tls.rs` handshakes on top), wrapped in [`Tracked`], which a watchdog
//! can close: a connection without an open ADS stream for the idle timeout is closed, whether it never sent a
//! request, never finished its TLS handshake, or its streams all ended.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::Status;

use super::limits::{Limit, LimitCounters, XdsLimits};

/// The open connections of one xDS port. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Connections {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limits: XdsLimits,
    counters: Arc<LimitCounters>,
    open: Mutex<BTreeMap<SocketAddr, Arc<Connection>>>,
    /// Set while connections are being refused, so a flood is logged once, not once per connection.
    full: AtomicBool,
}

/// One open connection, as the stream tasks and its watchdog see it.
#[derive(Debug)]
struct Connection {
    /// ADS streams open on it; the watchdog watches it.
    streams: watch::Sender<u32>,
    closer: Arc<Closer>,
}

/// Closes a connection from outside: its reads and writes fail from then on, so the HTTP/2 connection ends
/// and tonic drops it, however stuck it was.
#[derive(Debug, Default)]
struct Closer {
    closed: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Closer {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.reader.wake();
        self.writer.wake();
    }

    fn poll_closed(&self, waker: &AtomicWaker, cx: &Context<'_>) -> Option<io::Error> {
        waker.register(cx.waker());
        self.closed.load(Ordering::SeqCst).then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "closed by Switchyard: no ADS stream within the idle timeout",
            )
        })
    }
}

impl Connections {
    pub fn new(limits: XdsLimits, counters: Arc<LimitCounters>) -> Connections {
        Connections {
            inner: Arc::new(Inner {
                limits,
                counters,
                open: Mutex::default(),
                full: AtomicBool::new(false),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<SocketAddr, Arc<Connection>>> {
        // Plain bookkeeping: whatever a panicking holder left behind is still usable.
        self.inner.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open connections now.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Accepts connections on `listener` until the returned stream is dropped. Each admitted connection is
    /// handed to `admitted` with the sender tonic's stream of connections reads from (the TLS acceptor
    /// handshakes first, plaintext passes it on).
    pub fn accept<T, F>(&self, listener: TcpListener, admitted: F) -> ReceiverStream<io::Result<T>>
    where
        T: Send + 'static,
        F: Fn(Tracked, SocketAddr, mpsc::Sender<io::Result<T>>) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(16);
        let connections = self.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Out of file descriptors, typically: pause rather than spin.
                            tracing::warn!(%error, "cannot accept an xDS connection");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    () = tx.closed() => return,
                };
                // What tonic does for connections it accepts itself: without it, Nagle's algorithm holds the
                // tail of each response larger than a segment back until the proxy's delayed ACK.
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
                }
                if let Some(tracked) = connections.admit(tcp, peer) {
                    admitted(tracked, peer, tx.clone());
                }
            }
        });
        ReceiverStream::new(rx)
    }

    /// Plaintext connections accepted on `listener`, for tonic's `serve_with_incoming`.
    pub fn incoming(&self, listener: TcpListener) -> ReceiverStream<io::Result<Tracked>> {
        self.accept(listener, |tracked, _, tx| {
            tokio::spawn(async move {
                let _ = tx.send(Ok(tracked)).await;
            });
        })
    }

    /// Tracks a new connection, or closes it at once if the limit is reached.
    fn admit(&self, tcp: TcpStream, peer: SocketAddr) -> Option<Tracked> {
        let limits = &self.inner.limits;
        let connection = {
            let mut open = self.lock();
            if open.len() >= limits.max_connections {
                drop(open);
                self.inner.counters.refused(Limit::Connections);
                if !self.inner.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        max = limits.max_connections,
                        "xDS connection limit reached: refusing new connections (counted in \
                         switchyard_xds_refused_total{{reason=\"connections\"}})"
                    );
                }
                return None;
            }
            self.inner.full.store(false, Ordering::Relaxed);
            let connection = Arc::new(Connection {
                streams: watch::channel(0).0,
                closer: Arc::default(),
            });
            open.insert(peer, connection.clone());
            connection
        };
        tokio::spawn(watchdog(
            connection.streams.subscribe(),
            connection.closer.clone(),
            limits.idle_timeout,
            self.inner.counters.clone(),
        ));
        Some(Tracked {
            closer: connection.closer.clone(),
            tcp,
            peer,
            connections: self.clone(),
            connection,
        })
    }

    /// Counts an ADS stream on the connection from `peer` while the guard lives, or refuses it if the
    /// connection carries as many as it may. A stream on a connection not accepted here (a test serving the
    /// service directly) is not counted.
    pub fn open_stream(&self, peer: Option<SocketAddr>) -> Result<Option<StreamGuard>, Status> {
        let Some(connection) = peer.and_then(|peer| self.lock().get(&peer).cloned()) else {
            return Ok(None);
        };
        let max = self.inner.limits.max_streams_per_connection;
        let mut admitted = false;
        connection.streams.send_if_modified(|n| {
            admitted = *n < max;
            if admitted {
                *n += 1;
            }
            admitted
        });
        if !admitted {
            self.inner.counters.refused(Limit::StreamsPerConnection);
            return Err(Status::resource_exhausted(format!(
                "this connection already carries {max} ADS streams, the most it may"
            )));
        }
        Ok(Some(StreamGuard(connection)))
    }
}

/// Closes the connection once it has had no ADS stream for `idle`. Ends when the connection does.
async fn watchdog(
    mut streams: watch::Receiver<u32>,
    closer: Arc<Closer>,
    idle: Duration,
    counters: Arc<LimitCounters>,
) {
    loop {
        if streams.wait_for(|n| *n == 0).await.is_err() {
            return;
        }
        match tokio::time::timeout(idle, streams.wait_for(|n| *n > 0)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                counters.refused(Limit::IdleConnection);
                tracing::debug!("closing an xDS connection without an ADS stream for {idle:?}");
                closer.close();
                return;
            }
        }
    }
}

/// One ADS stream counted on its connection.
#[derive(Debug)]
pub struct StreamGuard(Arc<Connection>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// An accepted TCP connection that its watchdog can close; forgotten by [`Connections`] when dropped.
#[derive(Debug)]
pub struct Tracked {
    tcp: TcpStream,
    peer: SocketAddr,
    closer: Arc<Closer>,
    connections: Connections,
    connection: Arc<Connection>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        if open
            .get(&self.peer)
            .is_some_and(|c| Arc::ptr_eq(c, &self.connection))
        {
            open.remove(&self.peer);
        }
    }
}

impl Connected for Tracked {
    // The TCP connection's own, so tonic's `remote_addr` and `peer_certs` (under TLS) work as without tracking.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp.connect_info()
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(closed) = self.closer.poll_closed(&self.closer.reader, cx) {
            return Poll::Ready(Err(closed));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(closed) = self.closer.poll_closed(&self.closer.writer, cx) {
            return Poll::Ready(Err(closed));
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(closed) = self.closer.poll_closed(&self.closer.writer, cx) {
            return Poll::Ready(Err(closed));
        }
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    /// tonic sets TCP_NODELAY only on connections it accepts itself; these are accepted here. Without it,
    /// Nagle's algorithm holds back the tail of every response larger than a segment until the proxy's
    /// delayed ACK: at 100 proxies a weight shift took 81-98 ms to converge rather than 49-64 ms.
    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Connections::new(XdsLimits::default(), Arc::default());
        let mut incoming = connections.incoming(listener);
        let _client = TcpStream::connect(addr).await.unwrap();
        let tracked = incoming.next().await.unwrap().unwrap();
        assert!(tracked.tcp.nodelay().unwrap());
    }
}
