//! `peer-nebucloud`: the `nebucloud-xds` 0.1.0 peer of the `xds-load` benchmark.
//!
//! It reads the recording `xds-load` makes of what Switchyard sent each simulated proxy, puts what each proxy
//! held at the end of the connect storm into one nebucloud snapshot per node id (Switchyard's encoded resources,
//! byte for byte, wrapped in nebucloud's prost 0.13 `Any`), and serves them with nebucloud's own ADS server
//! (`xds-server`, SotW and Delta). The same clients then connect to it and check every resource against what
//! Switchyard would serve, so a peer that served other bytes would show as not converged, not as fast.
//!
//! Only the connect storm and the idle memory are measured against it: nebucloud 0.1.0 answers requests from the
//! cache but never pushes a later snapshot to a connected stream (nothing in `xds-server` creates a cache
//! watch; `tests/no_push.rs` shows it), so it cannot take part in the change phases.
//!
//! Outside Switchyard's workspace on purpose: it pulls tonic 0.12, prost 0.13 and nebucloud's generated Envoy
//! types, a second copy of the protos that Switchyard's build and test suite must not carry. It is its own
//! workspace with its own `Cargo.lock`; the workspace root lists it under `exclude`.
//!
//! ```sh
//! (cd benches/peer-nebucloud && cargo build --release)
//! cargo bench --bench xds-load -- --proxies 100 --mode delta \
//!     --peer benches/peer-nebucloud/target/release/peer-nebucloud
//! # what xds-load runs (its recording lives in the run's temporary directory):
//! #   peer-nebucloud --recording FILE --listen 127.0.0.1:PORT --mode sotw|delta
//! # its own tests (the recording read back, the snapshots, nebucloud's lack of pushes):
//! (cd benches/peer-nebucloud && cargo test --release)
//! ```
//!
//! It serves until its stdin closes (the run that started it is gone) or it is killed.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use peer_nebucloud::recording::{self, Mode};
use peer_nebucloud::snapshots::Snapshots;

struct Args {
    recording: PathBuf,
    listen: SocketAddr,
    mode: Mode,
}

const USAGE: &str = "usage: peer-nebucloud --recording FILE --listen ADDR --mode sotw|delta";

fn parse_args() -> anyhow::Result<Args> {
    let (mut recording, mut listen, mut mode) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--recording" => recording = Some(PathBuf::from(value)),
            "--listen" => listen = Some(value.parse().context("--listen")?),
            "--mode" => {
                mode = Some(match value.as_str() {
                    "sotw" => Mode::Sotw,
                    "delta" => Mode::Delta,
                    other => bail!("--mode {other}: sotw or delta"),
                })
            }
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    Ok(Args {
        recording: recording.context(USAGE)?,
        listen: listen.context(USAGE)?,
        mode: mode.context(USAGE)?,
    })
}

/// This process's resident memory, as /proc says.
fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l[6..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> anyhow::Result<()> {
    // Warnings only, as Switchyard runs in the bench: nebucloud logs every response at info.
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;
    let started = Instant::now();
    let mut snapshots = Snapshots::new();
    recording::for_each_proxy(&args.recording, args.mode, |id, held| {
        snapshots.add(id, held)
    })?;
    let (distinct, bytes) = snapshots.distinct();
    eprintln!(
        "peer-nebucloud: {} node snapshots, {distinct} distinct resources ({:.1} MB), from {} in {:.1} s; RSS {}",
        snapshots.nodes(),
        bytes as f64 / 1e6,
        args.recording.display(),
        started.elapsed().as_secs_f64(),
        rss()
    );

    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
        let _ = shutdown_tx.send(());
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(peer_nebucloud::serve(
        Arc::new(snapshots.into_cache()),
        args.listen,
        shutdown_rx,
    ))
}
