//! `xds-load`: N simulated Envoys against Switchyard, then against a floor that replays the same bytes.
//!
//! ```sh
//! cargo bench --bench xds-load -- --proxies 1000 --mode delta --json load.json
//! ```
//!
//! Phases: the connect storm (all proxies connect and sync), idle (server RSS), then four spec changes
//! written into the spec directory atomically (a weight shift, a new header match, a new service, a removed
//! workload). Per phase: the time from t0 (the connect, or the rename of the changed file) until each proxy
//! whose configuration changed has ACKed all of it, as p50/p99/max over those proxies; proxies whose
//! configuration did not change are counted, and so are those of them that were sent something anyway;
//! responses and bytes the proxies received; server CPU seconds (/proc utime + stime) and peak RSS (VmHWM,
//! reset per phase); the clients' own CPU seconds (this process), which on a small machine share the cores
//! with the server and so set the pace as much as it does. What each proxy should end up with is Switchyard's own translation of the directory,
//! computed in this process before the phase (`oracle.rs`).
//!
//! The same clients then run against the floor (`floor.rs`), a child process of this binary, which is fed
//! the recording of what Switchyard sent. Both are measured in the same run, on the same machine state, and
//! the clients do the same work in both: they keep what they receive in each (`codec.rs`), and their large
//! allocations do not depend on which run came first (`fix_the_mmap_threshold`).
//!
//! With `--peer PATH` (the `peer-nebucloud` binary, built on its own in `benches/peer-nebucloud`), the same
//! clients then run the connect storm and the idle phase against nebucloud-xds, fed the same recording: it
//! serves each proxy what it held from Switchyard after the connect storm, and never pushes a later snapshot,
//! so it takes no part in the changes.

mod client;
mod codec;
mod envoys;
mod floor;
mod oracle;
mod process;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use envoy_types::pb::envoy::config::core::v3::Node;
use serde::Serialize;
use switchyard::meshgen::{Change, GeneratedMesh, MeshOptions};

use client::{Fingerprint, Mode, Shared};
use floor::Phases;
use process::Server;

#[derive(Debug, Parser)]
#[command(
    name = "xds-load",
    about = "Simulated Envoys against Switchyard and against a floor"
)]
struct Args {
    /// Simulated proxies (one WorkloadEntry each).
    #[arg(long, default_value_t = 100)]
    proxies: usize,
    /// Services in the mesh (default: proxies / 2).
    #[arg(long)]
    services: Option<usize>,
    #[arg(long, default_value_t = 1)]
    namespaces: usize,
    #[arg(long, value_enum, default_value = "sotw")]
    mode: Mode,
    /// Scope each service's workloads with a `Sidecar` that reaches only the K services after it.
    #[arg(long, value_name = "K")]
    sidecar_egress: Option<usize>,
    /// Switchyard's `--debounce-ms`.
    #[arg(long, default_value_t = 10)]
    debounce_ms: u64,
    /// Target a running Switchyard instead of starting one (it must watch `--config`).
    #[arg(long, requires = "config")]
    xds: Option<SocketAddr>,
    /// With `--xds`: the server's process id, for CPU and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The spec directory (default: a temporary one). With `--xds`, the one the server watches.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The switchyard binary (default: the one cargo built beside this bench).
    #[arg(long)]
    switchyard: Option<PathBuf>,
    /// Skip the floor.
    #[arg(long)]
    no_floor: bool,
    /// Keep Switchyard's proxies connected and idle this many seconds after the idle RSS is read, before the
    /// first change: time for a heap profiler or `gdb` to look at the idle server.
    #[arg(long, default_value_t = 0, value_name = "S")]
    hold_idle_s: u64,
    /// The `peer-nebucloud` binary (`benches/peer-nebucloud`): after the floor, run the connect storm and the
    /// idle phase against it, fed the same recording.
    #[arg(long, value_name = "PATH", conflicts_with = "envoys")]
    peer: Option<PathBuf>,
    /// Real Envoys (one per workload, `--concurrency 1`) in place of the simulated proxies: the weight shift
    /// only, convergence read from Switchyard's `/debug/proxies`; no floor.
    #[arg(long, conflicts_with = "xds")]
    envoys: bool,
    /// Per-phase deadline, in seconds.
    #[arg(long, default_value_t = 120)]
    deadline_s: u64,
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run as the floor server.
    #[arg(long, hide = true)]
    serve_floor: bool,
    #[arg(long, hide = true)]
    recording: Option<PathBuf>,
    #[arg(long, hide = true)]
    listen: Option<SocketAddr>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// How long nothing must arrive after a phase converged before it is closed: late pushes to proxies that
/// should have received nothing are counted in the phase that caused them.
const QUIET: Duration = Duration::from_millis(300);
const POLL: Duration = Duration::from_millis(5);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.serve_floor {
        fix_the_mmap_threshold();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.serve_floor {
        let recording = args.recording.context("--serve-floor needs --recording")?;
        let listen = args.listen.context("--serve-floor needs --listen")?;
        return runtime.block_on(floor::serve(&recording, listen, args.mode));
    }
    // The proxies' HTTP/2 connections run here, apart from their decoding (see `client::run`).
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("xds-io")
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(args, io.handle().clone()));
    drop(runtime);
    drop(io);
    outcome
}

/// The clients' costs must not depend on which run came first. glibc's malloc serves a block of 128 KB or more
/// (a 364 KB route configuration being decoded) from a fresh `mmap`, until such a block is freed: then it raises
/// that threshold and carves later ones from the heap, whose freed pages it may keep. So the run that came
/// first (Switchyard's) paid a page fault per 4 KB of every response its clients received, and the floor's,
/// on the heap Switchyard's run had grown, almost none: 29% against 2.5% of the clients' CPU in a `perf`
/// profile of 1,000 unscoped proxies, 3.0-4.4 s against 1.5-2.0 s of client CPU per change. Fixing the
/// threshold at glibc's default makes every large block a fresh mapping in both runs. Only the clients' process
/// is set so: the floor's serves under glibc's defaults, its best.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_the_mmap_threshold() {
    const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: `mallopt` only sets a parameter of the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_the_mmap_threshold() {}

#[derive(Debug, Clone, Serialize)]
struct PhaseResult {
    phase: String,
    change: String,
    /// Proxies whose configuration changed in this phase (all of them in the connect storm).
    affected: usize,
    converged: usize,
    /// Proxies whose configuration did not change, and how many of them were sent something.
    unaffected: usize,
    unaffected_pushed: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    responses: u64,
    bytes: u64,
    cpu_s: Option<f64>,
    /// CPU seconds of this process, the simulated proxies (decoding, hashing, acknowledging, recording),
    /// during the phase: the clients share the cores with the server.
    clients_cpu_s: Option<f64>,
    peak_rss_kb: Option<u64>,
    client_errors: usize,
}

#[derive(Debug, Clone, Serialize)]
struct RunResult {
    server: String,
    empty_rss_kb: Option<u64>,
    idle_rss_kb: Option<u64>,
    rss_per_proxy_kb: Option<f64>,
    phases: Vec<PhaseResult>,
}

#[derive(Debug, Serialize)]
struct Report {
    mode: Mode,
    proxies: usize,
    services: usize,
    namespaces: usize,
    debounce_ms: u64,
    machine: String,
    switchyard: RunResult,
    floor: Option<RunResult>,
    /// nebucloud-xds: the connect phase only.
    peer: Option<RunResult>,
}

/// How a phase's change reaches the server.
enum Driver<'a> {
    Files {
        dir: &'a Path,
        changes: &'a [Change],
        /// Switchyard's admin endpoint, when the bench started it: a phase ends only once the server has
        /// accepted the change, so that a change no proxy sees (a new service nobody reaches) is not still
        /// being processed when the next phase starts, and counted in it.
        admin: Option<SocketAddr>,
        /// One client for every poll of the admin endpoint (its connection is kept), not one per request.
        http: reqwest::Client,
        /// How long the proxies stay connected and idle after the idle figure is taken (`--hold-idle-s`).
        hold_idle: Duration,
    },
    Floor {
        stdin: ChildStdin,
    },
    /// A server that is given no changes (the peer): only the connect phase runs.
    ConnectOnly,
}

impl Driver<'_> {
    /// The server's last accepted reading, if it can be asked.
    async fn accepted_revision(&self) -> anyhow::Result<Option<u64>> {
        let Driver::Files {
            admin: Some(admin),
            http,
            ..
        } = self
        else {
            return Ok(None);
        };
        // The first read after a change also hashes the accepted mesh on the server (its fingerprint, about
        // 25 ms at 10,000 workloads), which counts in the phase's CPU as it would for `apply --wait`.
        let status: serde_json::Value = http
            .get(format!("http://{admin}/debug/config"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(Some(status["accepted_revision"].as_u64().unwrap_or(0)))
    }

    /// Waits until the server has accepted a reading after `before`, or the deadline.
    async fn wait_accepted(&self, before: Option<u64>, deadline: Instant) -> anyhow::Result<()> {
        let Some(before) = before else {
            return Ok(());
        };
        while Instant::now() < deadline {
            if self
                .accepted_revision()
                .await?
                .is_some_and(|now| now > before)
            {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        bail!("the server did not accept the change before the deadline")
    }

    fn apply(&mut self, k: usize) -> anyhow::Result<()> {
        match self {
            Driver::Files { dir, changes, .. } => {
                let change = changes.get(k - 1).context("no such change")?;
                change.apply(dir)?;
            }
            Driver::Floor { stdin } => {
                writeln!(stdin, "{k}")?;
                stdin.flush()?;
            }
            Driver::ConnectOnly => {
                bail!("change {k} asked of a server that runs the connect phase only")
            }
        }
        Ok(())
    }
}

async fn run(args: Args, io: tokio::runtime::Handle) -> anyhow::Result<()> {
    let mut options = MeshOptions::new(args.proxies)
        .namespaces(args.namespaces)
        .sidecar_egress(args.sidecar_egress);
    if let Some(services) = args.services {
        options = options.services(services);
    }
    let mut mesh = GeneratedMesh::new(options.clone())?;
    let temp = tempfile::tempdir()?;
    let dir = args
        .config
        .clone()
        .unwrap_or_else(|| temp.path().join("config"));
    let shadow = temp.path().join("shadow");
    mesh.write_to(&dir)?;
    mesh.write_to(&shadow)?;
    // Before the changes below, which add and remove workloads.
    let identities = mesh.nodes()?;
    let nodes: Vec<(usize, Node)> = identities.iter().map(|(j, n)| (*j, n.to_proto())).collect();

    // Every change and what every proxy should run after it, before any server runs.
    let started = Instant::now();
    let mut changes = Vec::new();
    changes.extend(mesh.shift_weight());
    changes.extend(mesh.add_header_match());
    changes.push(mesh.add_service());
    changes.extend(mesh.remove_workload());
    let mut targets = vec![oracle::targets(&shadow, &nodes, args.proxies)?];
    for change in &changes {
        change.apply(&shadow)?;
        targets.push(oracle::targets(&shadow, &nodes, args.proxies)?);
    }
    eprintln!(
        "mesh: {} proxies, {} services, {} changes; expected state computed in {:.1} s",
        args.proxies,
        options.services,
        changes.len(),
        started.elapsed().as_secs_f64()
    );
    let descriptions: Vec<String> = changes.iter().map(|c| c.description.clone()).collect();
    let deadline = Duration::from_secs(args.deadline_s);

    // Switchyard.
    let (xds, admin, mut server) = match args.xds {
        Some(xds) => (xds, None, None),
        None => {
            let xds = SocketAddr::from((Ipv4Addr::LOCALHOST, process::free_port()?));
            let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, process::free_port()?));
            let binary = args
                .switchyard
                .clone()
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_switchyard")));
            let log = std::fs::File::create(temp.path().join("switchyard.log"))?;
            let child = Command::new(&binary)
                .args(["serve", "--config"])
                .arg(&dir)
                .args(["--xds", &xds.to_string(), "--admin", &admin.to_string()])
                .args(["--debounce-ms", &args.debounce_ms.to_string()])
                // Room for every simulated proxy's connection beside the default limit's headroom.
                .args([
                    "--xds-max-connections",
                    &(args.proxies + 10_000).to_string(),
                ])
                // Per-push info logs would be part of what is measured; a real deployment at scale
                // would not log every push either.
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?;
            let mut server = Server {
                child,
                name: "switchyard",
            };
            server.wait_listening(xds, Duration::from_secs(300))?;
            (xds, Some(admin), Some(server))
        }
    };
    let pid = server.as_ref().map(Server::pid).or(args.server_pid);
    if args.envoys {
        let (admin, change) = admin
            .zip(changes.first())
            .context("--envoys starts its own Switchyard and needs a weight shift")?;
        // The Envoys the weight shift should reach: those whose expected state it changes.
        let affected: std::collections::BTreeSet<usize> = match (targets.first(), targets.get(1)) {
            (Some(before), Some(after)) => (0..before.len())
                .filter(|&j| after[j].is_some() && before[j] != after[j])
                .collect(),
            _ => bail!("no expected state for the weight shift"),
        };
        let run = envoys::run(
            &identities,
            &affected,
            xds,
            admin,
            pid,
            args.mode,
            &dir,
            change,
            deadline,
        )
        .await?;
        envoys::print(&run);
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&run)?)?;
        }
        return Ok(());
    }
    let mut driver = Driver::Files {
        dir: &dir,
        changes: &changes,
        admin,
        http: reqwest::Client::new(),
        hold_idle: Duration::from_secs(args.hold_idle_s),
    };
    let (switchyard, recording) = run_phases(
        "switchyard",
        xds,
        pid,
        args.mode,
        &nodes,
        &targets,
        &descriptions,
        &mut driver,
        !args.no_floor || args.peer.is_some(),
        deadline,
        &io,
    )
    .await?;
    if let Some(server) = &mut server {
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("switchyard exited during the run: {status}");
        }
    }
    drop(server);
    print_run(&switchyard);

    // The floor and the peer, fed what Switchyard sent.
    let recording = match recording {
        Some(recording) => {
            let path = temp.path().join("recording.bin");
            floor::write_recording(&path, &recording)?;
            Some(path)
        }
        None => None,
    };
    let floor = match &recording {
        Some(path) if !args.no_floor => {
            let mut command = Command::new(std::env::current_exe()?);
            command.arg("--serve-floor");
            let (mut server, listen) = start_replayer(command, "floor", path, args.mode)?;
            let stdin = server.child.stdin.take().context("floor stdin")?;
            let mut driver = Driver::Floor { stdin };
            let (floor, _) = run_phases(
                "floor",
                listen,
                Some(server.pid()),
                args.mode,
                &nodes,
                &targets,
                &descriptions,
                &mut driver,
                // Its clients keep what they receive too, dropped unread: the same work as in Switchyard's run.
                true,
                deadline,
                &io,
            )
            .await?;
            print_run(&floor);
            print_ratios(&switchyard, &floor);
            Some(floor)
        }
        _ => None,
    };
    let peer = match (&args.peer, &recording) {
        (Some(binary), Some(path)) => {
            let (mut server, listen) =
                start_replayer(Command::new(binary), "nebucloud", path, args.mode)?;
            let (peer, _) = run_phases(
                "nebucloud",
                listen,
                Some(server.pid()),
                args.mode,
                &nodes,
                &targets[..1],
                &descriptions,
                &mut Driver::ConnectOnly,
                true,
                deadline,
                &io,
            )
            .await?;
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("the peer exited during the run: {status}");
            }
            drop(server);
            print_run(&peer);
            if let Some(floor) = &floor {
                print_ratios(&peer, floor);
            }
            Some(peer)
        }
        _ => None,
    };

    if let Some(path) = &args.json {
        let report = Report {
            mode: args.mode,
            proxies: args.proxies,
            services: options.services,
            namespaces: options.namespaces,
            debounce_ms: args.debounce_ms,
            machine: machine(),
            switchyard,
            floor,
            peer,
        };
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// Starts a server fed the recording (the floor, the peer) on a free loopback port and waits until it
/// listens, which it does once it has read the recording. Its stdin is a pipe: it exits when that closes.
fn start_replayer(
    mut command: Command,
    name: &'static str,
    recording: &Path,
    mode: Mode,
) -> anyhow::Result<(Server, SocketAddr)> {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, process::free_port()?));
    let child = command
        .arg("--recording")
        .arg(recording)
        .args(["--listen", &listen.to_string()])
        .args(["--mode", mode_name(mode)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start the {name} ({command:?})"))?;
    let mut server = Server { child, name };
    server.wait_listening(listen, Duration::from_secs(600))?;
    Ok((server, listen))
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Sotw => "sotw",
        Mode::Delta => "delta",
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    format!("{cores} cores, {model}")
}

#[allow(clippy::too_many_arguments)]
async fn run_phases(
    name: &str,
    xds: SocketAddr,
    pid: Option<u32>,
    mode: Mode,
    nodes: &[(usize, Node)],
    targets: &[Vec<Option<Fingerprint>>],
    descriptions: &[String],
    driver: &mut Driver<'_>,
    record: bool,
    deadline: Duration,
    io: &tokio::runtime::Handle,
) -> anyhow::Result<(RunResult, Option<Vec<(String, Phases<bytes::Bytes>)>>)> {
    let proxies = targets.first().map_or(0, Vec::len);
    let shared = Arc::new(Shared::new(proxies, record));
    let mut recordings: Vec<Phases<bytes::Bytes>> = vec![Vec::new(); proxies];
    let empty_rss_kb = pid.and_then(|p| process::memory_kb(p).ok()).map(|m| m.0);
    let mut idle_rss_kb = None;
    let mut tasks = tokio::task::JoinSet::new();
    let mut phases = Vec::new();
    let mut previous: Vec<Option<Fingerprint>> = vec![None; proxies];
    for (k, target) in targets.iter().enumerate() {
        // Set what each proxy should reach; keep the previous phase's recording.
        let mut affected = vec![false; proxies];
        for j in 0..proxies {
            let mut stats = shared.stats(j);
            if record && k > 0 {
                recordings[j].push(std::mem::take(&mut stats.recording));
            }
            stats.responses = 0;
            stats.bytes = 0;
            stats.converged_at = None;
            stats.target = target[j];
            affected[j] = target[j].is_some() && (k == 0 || target[j] != previous[j]);
            stats.waiting = affected[j];
        }
        let expected = affected.iter().filter(|a| **a).count();
        shared.converged.store(0, Ordering::Relaxed);
        if let Some(pid) = pid {
            process::reset_peak(pid);
        }
        let cpu_before = pid.and_then(|p| process::cpu_seconds(p).ok());
        let clients_cpu_before = process::cpu_seconds(std::process::id()).ok();

        let t0 = Instant::now();
        let mut revision_before = None;
        if k == 0 {
            let endpoint = format!("http://{xds}");
            for (j, node) in nodes {
                tasks.spawn(client::run(
                    *j,
                    node.clone(),
                    endpoint.clone(),
                    mode,
                    shared.clone(),
                    io.clone(),
                ));
            }
        } else {
            revision_before = driver.accepted_revision().await?;
            driver.apply(k)?;
        }
        // t0 of a change is the rename, which is the last thing `apply` does.
        let t0 = if k == 0 { t0 } else { Instant::now() };
        let phase_deadline = t0 + deadline;
        while shared.converged.load(Ordering::Relaxed) < expected && Instant::now() < phase_deadline
        {
            tokio::time::sleep(POLL).await;
        }
        if k > 0 {
            driver
                .wait_accepted(revision_before, phase_deadline)
                .await?;
        }
        let quiet_deadline = Instant::now() + Duration::from_secs(10);
        while shared.since_last_response() < QUIET && Instant::now() < quiet_deadline {
            tokio::time::sleep(POLL).await;
        }

        let mut latencies = Vec::new();
        let (mut responses, mut bytes, mut unaffected, mut unaffected_pushed, mut errors) =
            (0, 0, 0, 0, 0);
        for j in 0..proxies {
            let stats = shared.stats(j);
            responses += stats.responses;
            bytes += stats.bytes;
            errors += usize::from(stats.error.is_some());
            if affected[j] {
                if let Some(at) = stats.converged_at {
                    latencies.push(at.saturating_duration_since(t0).as_secs_f64() * 1e3);
                }
            } else if target[j].is_some() {
                unaffected += 1;
                unaffected_pushed += usize::from(stats.responses > 0);
            }
        }
        latencies.sort_by(f64::total_cmp);
        let cpu_s = match (cpu_before, pid.and_then(|p| process::cpu_seconds(p).ok())) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let clients_cpu_s = match (
            clients_cpu_before,
            process::cpu_seconds(std::process::id()).ok(),
        ) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let peak_rss_kb = pid.and_then(|p| process::memory_kb(p).ok()).map(|m| m.1);
        if k == 0 {
            idle_rss_kb = pid.and_then(|p| process::memory_kb(p).ok()).map(|m| m.0);
            if let Driver::Files { hold_idle, .. } = driver {
                if !hold_idle.is_zero() {
                    eprintln!(
                        "{name}: idle RSS {} KB; holding the proxies idle for {hold_idle:?}",
                        idle_rss_kb.unwrap_or(0)
                    );
                    // A fixed hold, not synchronisation: the idle state is observed from outside.
                    tokio::time::sleep(*hold_idle).await;
                }
            }
        }
        let result = PhaseResult {
            phase: if k == 0 {
                "connect".into()
            } else {
                format!("change {k}")
            },
            change: if k == 0 {
                format!("{} proxies connect and sync", nodes.len())
            } else {
                descriptions.get(k - 1).cloned().unwrap_or_default()
            },
            affected: expected,
            converged: latencies.len(),
            unaffected,
            unaffected_pushed,
            p50_ms: percentile(&latencies, 50.0),
            p99_ms: percentile(&latencies, 99.0),
            max_ms: latencies.last().copied().unwrap_or(f64::NAN),
            responses,
            bytes,
            cpu_s,
            clients_cpu_s,
            peak_rss_kb,
            client_errors: errors,
        };
        if result.converged < result.affected {
            eprintln!(
                "{name} {}: only {} of {} affected proxies converged within {deadline:?}",
                result.phase, result.converged, result.affected
            );
            if let Some(e) = (0..proxies).find_map(|j| shared.stats(j).error.clone()) {
                eprintln!("  a client error: {e}");
            }
        }
        if phases.is_empty() {
            let retried: u32 = (0..proxies).map(|j| shared.stats(j).reconnects).sum();
            if retried > 0 {
                eprintln!("{name}: {retried} connections failed before their first response and were retried");
            }
        }
        phases.push(result);
        previous = target.clone();
    }
    for (j, recording) in recordings.iter_mut().enumerate() {
        let mut stats = shared.stats(j);
        if record {
            recording.push(std::mem::take(&mut stats.recording));
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let connected = nodes.len().max(1) as f64;
    let rss_per_proxy_kb = match (empty_rss_kb, idle_rss_kb) {
        (Some(e), Some(i)) => Some((i as f64 - e as f64) / connected),
        _ => None,
    };
    let recording = record.then(|| {
        nodes
            .iter()
            .map(|(j, node)| (node.id.clone(), std::mem::take(&mut recordings[*j])))
            .collect()
    });
    Ok((
        RunResult {
            server: name.to_string(),
            empty_rss_kb,
            idle_rss_kb,
            rss_per_proxy_kb,
            phases,
        },
        recording,
    ))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("-".into(), |kb| format!("{:.1}", kb as f64 / 1024.0))
}

fn print_run(run: &RunResult) {
    println!(
        "\n{}: empty RSS {} MB, idle RSS {} MB with all proxies connected, {} KB per proxy",
        run.server,
        mb(run.empty_rss_kb),
        mb(run.idle_rss_kb),
        run.rss_per_proxy_kb
            .map_or("-".into(), |k| format!("{k:.1}"))
    );
    println!(
        "| phase | change | affected | converged | unaffected (pushed) | p50 ms | p99 ms | max ms | responses | MB received | CPU s | clients CPU s | peak RSS MB | client errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &run.phases {
        println!(
            "| {} | {} | {} | {} | {} ({}) | {:.1} | {:.1} | {:.1} | {} | {:.2} | {} | {} | {} | {} |",
            p.phase,
            p.change,
            p.affected,
            p.converged,
            p.unaffected,
            p.unaffected_pushed,
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.responses,
            p.bytes as f64 / 1e6,
            p.cpu_s.map_or("-".into(), |c| format!("{c:.2}")),
            p.clients_cpu_s.map_or("-".into(), |c| format!("{c:.2}")),
            mb(p.peak_rss_kb),
            p.client_errors,
        );
    }
}

/// `run` / `floor`, phase by phase (as far as both ran).
fn print_ratios(run: &RunResult, floor: &RunResult) {
    let ratio = |a: f64, b: f64| {
        if b > 0.0 && a.is_finite() && b.is_finite() {
            format!("{:.2}", a / b)
        } else {
            "-".into()
        }
    };
    println!("\n{} / {}", run.server, floor.server);
    println!("| phase | p50 | p99 | max | bytes | CPU | clients CPU | peak RSS |");
    println!("|---|---|---|---|---|---|---|---|");
    for (s, f) in run.phases.iter().zip(&floor.phases) {
        let opt = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => ratio(a, b),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.phase,
            ratio(s.p50_ms, f.p50_ms),
            ratio(s.p99_ms, f.p99_ms),
            ratio(s.max_ms, f.max_ms),
            ratio(s.bytes as f64, f.bytes as f64),
            opt(s.cpu_s, f.cpu_s),
            opt(s.clients_cpu_s, f.clients_cpu_s),
            opt(
                s.peak_rss_kb.map(|k| k as f64),
                f.peak_rss_kb.map(|k| k as f64)
            ),
        );
    }
    let per_proxy = |r: &RunResult| r.rss_per_proxy_kb.unwrap_or(f64::NAN);
    println!(
        "RSS per connected proxy: {} {:.1} KB, {} {:.1} KB",
        run.server,
        per_proxy(run),
        floor.server,
        per_proxy(floor)
    );
}
