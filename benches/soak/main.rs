//! `soak`: the demo under steady traffic with a spec change every second, for as long as asked.
//!
//! ```sh
//! cargo bench --bench soak -- --minutes 10 --json soak.json
//! ```
//!
//! Starts `switchyard demo` (Switchyard, the Bookinfo stand-in and seven real Envoys) on a copy of `config/`,
//! sends requests to the product page through the ingress gateway from `--clients` loops, and every second
//! writes the next of Istio's reviews VirtualServices (all-v1, 50/50 v3, v3, 80/20, jason v2/v3, v2/v3) into the
//! spec directory atomically. None of them asks for a failure, so every request must succeed: status 200 and no
//! "unavailable" or "Error fetching" block on the page. Every ten seconds it samples the demo process's RSS
//! (Switchyard and the apps; the Envoys are separate processes) and the revision Switchyard serves.
//! Exits non-zero if any request failed, if the served revision stopped following the changes, or if the RSS of
//! the last sample is more than `--max-growth-percent` above the first sample after warm-up.

#[path = "../xds-load/process.rs"]
#[allow(dead_code)]
mod process;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde::Serialize;

use process::Server;

#[derive(Debug, Parser)]
#[command(
    name = "soak",
    about = "The demo under traffic and a spec change every second"
)]
struct Args {
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Concurrent request loops against the gateway.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Envoys use Delta xDS.
    #[arg(long)]
    delta: bool,
    /// The largest RSS growth accepted between the first sample after warm-up and the last.
    #[arg(long, default_value_t = 10.0)]
    max_growth_percent: f64,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// cargo bench passes `--bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The reviews VirtualServices cycled through, from Istio's samples (none injects a fault).
const ROUTES: [&str; 6] = [
    "virtual-service-all-v1.yaml",
    "virtual-service-reviews-50-v3.yaml",
    "virtual-service-reviews-v3.yaml",
    "virtual-service-reviews-80-20.yaml",
    "virtual-service-reviews-jason-v2-v3.yaml",
    "virtual-service-reviews-v2-v3.yaml",
];

#[derive(Debug, Default, Serialize)]
struct Sample {
    seconds: f64,
    rss_kb: u64,
    served_revision: u64,
    requests: u64,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    minutes: f64,
    mode: &'static str,
    clients: usize,
    requests: u64,
    failures: u64,
    failures_by_kind: BTreeMap<String, u64>,
    changes_written: u64,
    last_revision: u64,
    rss_first_kb: u64,
    rss_last_kb: u64,
    rss_max_kb: u64,
    rss_growth_percent: f64,
    samples: Vec<Sample>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let samples = repo.join("../shared/istio-bookinfo");
    let work = std::env::temp_dir().join(format!("switchyard-soak-{}", std::process::id()));
    let spec = work.join("config");
    std::fs::create_dir_all(&spec)?;
    for entry in std::fs::read_dir(repo.join("config"))? {
        let entry = entry?;
        std::fs::copy(entry.path(), spec.join(entry.file_name()))?;
    }
    let routes: Vec<String> = ROUTES
        .iter()
        .map(|f| std::fs::read_to_string(samples.join(f)).with_context(|| f.to_string()))
        .collect::<Result<_, _>>()?;
    let route_file = spec.join("virtual-service-reviews.yaml");
    std::fs::write(&route_file, &routes[0])?;

    let mut demo = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    demo.args([
        "demo",
        "--xds",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--config",
    ])
    .arg(&spec)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if args.delta {
        demo.arg("--delta");
    }
    let mut server = Server {
        child: demo.spawn().context("cannot start switchyard demo")?,
        name: "switchyard demo",
    };
    let (gateway, admin) = read_addresses(&mut server)?;
    eprintln!("demo up: {gateway} (admin {admin})");

    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(soak(&args, &server, &gateway, &admin, &route_file, &routes))?;
    if let Some(status) = server.child.try_wait()? {
        bail!(
            "the demo exited during the soak ({status}); its log: {}",
            work.join("demo.log").display()
        );
    }
    stop(server)?;
    let _ = std::fs::remove_dir_all(&work);

    println!("| minutes | mode | requests | failed | changes | revision | RSS first | RSS last | RSS max | growth |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {:.1} | {} | {} | {} | {} | {} | {} KB | {} KB | {} KB | {:+.1}% |",
        report.minutes,
        report.mode,
        report.requests,
        report.failures,
        report.changes_written,
        report.last_revision,
        report.rss_first_kb,
        report.rss_last_kb,
        report.rss_max_kb,
        report.rss_growth_percent
    );
    for (kind, n) in &report.failures_by_kind {
        println!("failed: {n} x {kind}");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if report.failures > 0 {
        bail!("{} requests failed", report.failures);
    }
    // About one reading per change; some changes land in one debounce window, so ask for most, not all.
    if report.last_revision < report.changes_written / 2 {
        bail!(
            "{} changes written but revision {} served",
            report.changes_written,
            report.last_revision
        );
    }
    if report.rss_growth_percent > args.max_growth_percent {
        bail!("RSS grew {:.1}%", report.rss_growth_percent);
    }
    Ok(())
}

/// Stops the demo as Ctrl-C would (SIGTERM), so it stops its Envoys; a SIGKILL (what dropping `Server` does,
/// the fallback here) would leave them running.
fn stop(mut server: Server) -> anyhow::Result<()> {
    Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if server.child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the demo did not stop within 20 s of SIGTERM")
}

/// The gateway URL and the admin address, from what `demo` prints once everything is up. The rest of its output
/// is drained on a thread of its own: a demo whose stdout is closed dies at its next line.
fn read_addresses(server: &mut Server) -> anyhow::Result<(String, String)> {
    let stdout = server.child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut gateway = None;
    let mut admin = None;
    while let Some(line) = lines.next() {
        let line = line?;
        if let Some(url) = line.strip_prefix("Bookinfo is up: ") {
            gateway = Some(url.trim().to_owned());
        }
        if let Some((_, rest)) = line.split_once("admin http://") {
            admin = rest.split('/').next().map(str::to_owned);
        }
        if let (Some(g), Some(a)) = (&gateway, &admin) {
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((g.clone(), a.clone()));
        }
    }
    bail!("the demo exited before it was up")
}

async fn soak(
    args: &Args,
    server: &Server,
    gateway: &str,
    admin: &str,
    route_file: &Path,
    routes: &[String],
) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let requests = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let end = Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
    let mut loops = Vec::new();
    for _ in 0..args.clients {
        let (http, url, requests, failures) = (
            http.clone(),
            gateway.to_owned(),
            requests.clone(),
            failures.clone(),
        );
        loops.push(tokio::spawn(async move {
            while Instant::now() < end {
                let kind = match http.get(&url).send().await {
                    Err(e) => Some(format!("transport: {e}")),
                    Ok(r) if r.status() != 200 => Some(format!("status {}", r.status())),
                    Ok(r) => match r.text().await {
                        Err(e) => Some(format!("body: {e}")),
                        Ok(body)
                            if body.contains("unavailable") || body.contains("Error fetching") =>
                        {
                            Some("page reports an unavailable service".to_owned())
                        }
                        Ok(_) => None,
                    },
                };
                requests.fetch_add(1, Ordering::Relaxed);
                if let Some(kind) = kind {
                    *failures.lock().expect("failures").entry(kind).or_default() += 1;
                }
            }
        }));
    }

    let start = Instant::now();
    let mut report = Report {
        minutes: args.minutes,
        mode: if args.delta { "delta" } else { "sotw" },
        clients: args.clients,
        ..Report::default()
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        n += 1;
        let next = &routes[(n as usize) % routes.len()];
        switchyard::spec::write_atomic(route_file, next.as_bytes())?;
        report.changes_written += 1;
        if n % 10 == 0 {
            let (rss_kb, _) = process::memory_kb(server.pid())?;
            let served_revision = served_revision(&http, admin).await.unwrap_or(0);
            report.samples.push(Sample {
                seconds: start.elapsed().as_secs_f64(),
                rss_kb,
                served_revision,
                requests: requests.load(Ordering::Relaxed),
            });
        }
    }
    for l in loops {
        l.await?;
    }
    report.requests = requests.load(Ordering::Relaxed);
    report.failures_by_kind = std::mem::take(&mut *failures.lock().expect("failures"));
    report.failures = report.failures_by_kind.values().sum();
    report.last_revision = served_revision(&http, admin).await.unwrap_or(0);
    // The first minute warms up (allocator arenas, Envoy connections); growth is measured after it.
    let settled: Vec<&Sample> = report
        .samples
        .iter()
        .filter(|s| s.seconds >= 60.0)
        .collect();
    if let (Some(first), Some(last)) = (settled.first(), settled.last()) {
        report.rss_first_kb = first.rss_kb;
        report.rss_last_kb = last.rss_kb;
        report.rss_growth_percent =
            (last.rss_kb as f64 - first.rss_kb as f64) * 100.0 / first.rss_kb.max(1) as f64;
    }
    report.rss_max_kb = report.samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    Ok(report)
}

/// The revision Switchyard serves (the latest accepted reading), from `/debug/config`.
async fn served_revision(http: &reqwest::Client, admin: &str) -> anyhow::Result<u64> {
    let config: serde_json::Value = http
        .get(format!("http://{admin}/debug/config"))
        .send()
        .await?
        .json()
        .await?;
    config
        .get("accepted_revision")
        .and_then(serde_json::Value::as_u64)
        .context("no accepted revision in /debug/config")
}
