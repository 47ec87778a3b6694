//! The floor: a bare ADS server that replays what Switchyard sent, byte for byte, and does nothing else.
//!
//! The load run records every response each proxy received in each phase, with the number of requests the
//! proxy had sent before it arrived. `xds-load --serve-floor` (a child process of the run) reads that
//! recording, decodes it once before it listens, and then, per stream: looks the node id up, sends the
//! connect-phase responses in order, each as soon as the proxy has sent as many requests as it had when it
//! received it from Switchyard (so the floor never answers before it is asked), and on a trigger (a line `k`
//! on its stdin) does the same with the responses of change `k`. No translation, no hashing, no
//! subscriptions, no versions: only a request counter per stream. What remains is tonic, HTTP/2 and the
//! encoding of the response envelope, which any ADS server pays.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::client::Mode;

/// Per phase, each response as encoded, with the requests the proxy had sent before it arrived.
pub type Phases<T> = Vec<Vec<(u64, T)>>;

pub fn write_recording(
    path: &Path,
    proxies: &[(String, Phases<bytes::Bytes>)],
) -> anyhow::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    let len = |n: usize| (n as u64).to_le_bytes();
    out.write_all(&len(proxies.len()))?;
    for (id, phases) in proxies {
        out.write_all(&len(id.len()))?;
        out.write_all(id.as_bytes())?;
        out.write_all(&len(phases.len()))?;
        for phase in phases {
            out.write_all(&len(phase.len()))?;
            for (requests, bytes) in phase {
                out.write_all(&requests.to_le_bytes())?;
                out.write_all(&len(bytes.len()))?;
                out.write_all(bytes)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn read_recording<T: Message + Default>(
    path: &Path,
) -> anyhow::Result<BTreeMap<String, Phases<T>>> {
    let mut input = BufReader::new(File::open(path)?);
    let read_u64 = |input: &mut BufReader<File>| -> anyhow::Result<u64> {
        let mut b = [0u8; 8];
        input.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    };
    let read_bytes = |input: &mut BufReader<File>, n: u64| -> anyhow::Result<Vec<u8>> {
        let mut v = vec![0u8; usize::try_from(n)?];
        input.read_exact(&mut v)?;
        Ok(v)
    };
    let mut proxies = BTreeMap::new();
    for _ in 0..read_u64(&mut input)? {
        let n = read_u64(&mut input)?;
        let id = String::from_utf8(read_bytes(&mut input, n)?)?;
        let mut phases = Vec::new();
        for _ in 0..read_u64(&mut input)? {
            let mut phase = Vec::new();
            for _ in 0..read_u64(&mut input)? {
                let requests = read_u64(&mut input)?;
                let n = read_u64(&mut input)?;
                let message = T::decode(read_bytes(&mut input, n)?.as_slice())
                    .context("recorded response")?;
                phase.push((requests, message));
            }
            phases.push(phase);
        }
        proxies.insert(id, phases);
    }
    Ok(proxies)
}

struct Floor {
    sotw: Mutex<BTreeMap<String, Phases<DiscoveryResponse>>>,
    delta: Mutex<BTreeMap<String, Phases<DeltaDiscoveryResponse>>>,
    trigger: watch::Receiver<usize>,
}

fn take<T>(map: &Mutex<BTreeMap<String, Phases<T>>>, id: &str) -> Phases<T> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(id)
        .unwrap_or_default()
}

/// Sends `phases` down one stream, paced by the requests received (see the module comment).
async fn replay<Req, Resp>(
    mut inbound: Streaming<Req>,
    phases: Phases<Resp>,
    tx: mpsc::Sender<Result<Resp, Status>>,
    mut trigger: watch::Receiver<usize>,
) where
    Req: Message + Default + 'static,
    Resp: Clone,
{
    let mut received: u64 = 1;
    let (mut phase, mut next) = (0, 0);
    loop {
        let Some(queue) = phases.get(phase) else {
            // Nothing more was recorded for this proxy: keep the stream open, as a server would.
            while let Ok(Some(_)) = inbound.message().await {}
            return;
        };
        // Sent as clones: the recording stays whole, so the floor's memory does not shrink as it sends and
        // its RSS per connected proxy means what Switchyard's does.
        while let Some((_, response)) = queue.get(next).filter(|(needs, _)| *needs <= received) {
            if tx.send(Ok(response.clone())).await.is_err() {
                return;
            }
            next += 1;
        }
        if next == queue.len() && *trigger.borrow() > phase {
            phase += 1;
            next = 0;
            continue;
        }
        tokio::select! {
            request = inbound.message() => match request {
                Ok(Some(_)) => received += 1,
                _ => return,
            },
            changed = trigger.changed() => if changed.is_err() { return },
        }
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Floor {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no request"))?;
        let id = first.node.map(|n| n.id).unwrap_or_default();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(replay(
            inbound,
            take(&self.sotw, &id),
            tx,
            self.trigger.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no request"))?;
        let id = first.node.map(|n| n.id).unwrap_or_default();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(replay(
            inbound,
            take(&self.delta, &id),
            tx,
            self.trigger.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The floor process: serves until its stdin closes (the run that started it is gone).
pub async fn serve(recording: &Path, xds: SocketAddr, mode: Mode) -> anyhow::Result<()> {
    let (sotw, delta) = match mode {
        Mode::Sotw => (read_recording(recording)?, BTreeMap::new()),
        Mode::Delta => (BTreeMap::new(), read_recording(recording)?),
    };
    let (trigger_tx, trigger) = watch::channel(0usize);
    let floor = Floor {
        sotw: Mutex::new(sotw),
        delta: Mutex::new(delta),
        trigger,
    };
    // A plain thread reads the triggers: the library's tokio has no `io-std`, and one blocking reader
    // needs none.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Ok(k) = line.trim().parse::<usize>() {
                trigger_tx.send_replace(k);
            }
        }
        let _ = closed_tx.send(());
    });
    let stdin_closed = async move {
        let _ = closed_rx.await;
    };
    tonic::transport::Server::builder()
        .add_service(AggregatedDiscoveryServiceServer::new(floor))
        .serve_with_shutdown(xds, stdin_closed)
        .await?;
    Ok(())
}
