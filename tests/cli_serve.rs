//! `switchyard serve`, `bootstrap` and `proxy-status` as a user runs them: the real binary, real ports,
//! a real Envoy validating the bootstraps.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchyard::envoy::{find_or_install, NodeIdentity, SidecarNode};
use switchyard::xds::ResourceType;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(10);

fn switchyard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

fn config_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
}

/// Loopback traffic must never go through a proxy from the environment.
fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn free_addr() -> SocketAddr {
    free_addrs::<1>()[0]
}

/// `N` distinct free loopback ports. All are bound before any is released, so they differ; once released,
/// nothing else on the machine races for loopback ports here.
fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap())
}

/// A `switchyard serve` process, killed on drop. Its stderr (the log) goes to a file that assertion
/// messages quote, so a failure shows what the server said.
struct Served {
    child: Child,
    xds: SocketAddr,
    admin: SocketAddr,
    stderr: tempfile::NamedTempFile,
}

impl Served {
    async fn start() -> Served {
        Served::start_with(&[]).await
    }

    async fn start_with(extra: &[&str]) -> Served {
        Served::start_in(config_dir(), extra).await
    }

    /// `serve` over the spec directory `config` (a scratch copy, for tests that edit it).
    async fn start_in(config: &Path, extra: &[&str]) -> Served {
        let [xds, admin] = free_addrs();
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = switchyard()
            .args(["serve", "--config"])
            .arg(config)
            .args(["--xds", &xds.to_string(), "--admin", &admin.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        let served = Served {
            child,
            xds,
            admin,
            stderr,
        };
        served.wait_ready().await;
        served
    }

    /// What the server logged so far.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.stderr.path()).unwrap_or_else(|e| e.to_string());
        format!("--- switchyard serve stderr ---\n{text}--- end ---")
    }

    async fn wait_ready(&self) {
        let client = http();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let url = format!("http://{}/ready", self.admin);
            if let Ok(r) = client.get(&url).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "serve never became ready\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET <path>` on the admin endpoint: status and body.
    async fn admin_get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.admin_get_with_headers(path).await;
        (status, body)
    }

    /// `GET <path>` on the admin endpoint: status, headers and body.
    async fn admin_get_with_headers(
        &self,
        path: &str,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let url = format!("http://{}{path}", self.admin);
        let response = http().get(url).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    fn proxy_status(&self) -> String {
        let out = switchyard()
            .args(["proxy-status", "--admin", &self.admin.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "proxy-status failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Polls `proxy-status` until one of its lines passes `check`.
    async fn wait_proxy_status(&self, what: &str, check: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self.proxy_status();
            if status.lines().any(&check) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}:\n{status}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `DEADLINE`.
    async fn wait_exit(&mut self, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < deadline, "{what}\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn productpage_node() -> envoy_types::pb::envoy::config::core::v3::Node {
    sidecar_node("productpage", "v1", 1)
}

/// The sidecar of Bookinfo's `<app>-<version>`, pod `pod` (127.0.<pod>.x, as in `config/`).
fn sidecar_node(
    app: &str,
    version: &str,
    pod: u8,
) -> envoy_types::pb::envoy::config::core::v3::Node {
    NodeIdentity::sidecar(&SidecarNode {
        workload_name: format!("{app}-{version}"),
        namespace: "default".into(),
        labels: [("app", app), ("version", version)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        pod_ip: format!("127.0.{pod}.1").parse().unwrap(),
        app_ip: format!("127.0.{pod}.2").parse().unwrap(),
        outbound_ip: format!("127.0.{pod}.3").parse().unwrap(),
    })
    .to_proto()
}

#[tokio::test]
async fn serve_answers_xds_and_reports_proxy_status() {
    let served = Served::start().await;
    let node = productpage_node();
    let id = node.id.clone();
    let mut client = support::xds::sotw_client(served.xds, node).await;
    client.subscribe(ResourceType::Cluster, &[]).await;
    let cds = client.recv_type(ResourceType::Cluster).await;
    assert!(cds.resources.len() > 4, "Bookinfo clusters are served");

    // Sent, not yet acknowledged.
    let status = served.proxy_status();
    assert!(
        status.contains("productpage-v1.default") && status.contains("STALE"),
        "{status}\n{}",
        served.log()
    );
    client.ack(&cds, &[]).await;
    served
        .wait_proxy_status("SYNCED", |line| {
            line.starts_with("productpage-v1.default ") && line.contains("SYNCED")
        })
        .await;

    let metrics = http()
        .get(format!("http://{}/metrics", served.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_proxies{mode=\"sotw\"} 1"),
        "{metrics}\n{}",
        served.log()
    );
    assert!(
        metrics.contains("switchyard_xds_acks_total{type=\"CDS\"} 1"),
        "{metrics}\n{}",
        served.log()
    );
    let admin = |path: &str| format!("http://{}{path}", served.admin);
    let config: serde_json::Value = http()
        .get(admin("/debug/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["accepted_revision"], 1, "{config}");
    assert_eq!(
        config["errors"].as_array().map(Vec::len),
        Some(0),
        "{config}"
    );

    // The resources this proxy is served, with the versions it was sent.
    let snapshot: serde_json::Value = http()
        .get(admin(&format!("/debug/snapshot?proxy={id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let clusters = snapshot["Cluster"].as_object().expect("clusters listed");
    assert!(clusters.contains_key("outbound|9080|v2|reviews.default.svc.cluster.local"));
    assert!(snapshot["Route"].as_object().unwrap().contains_key("9080"));
    let unknown = http()
        .get(admin("/debug/snapshot?proxy=nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_nack_message_cannot_forge_a_log_line_and_is_kept_short() {
    let served = Served::start().await;
    let node = productpage_node();
    let id = node.id.clone();
    let mut client = support::xds::sotw_client(served.xds, node).await;
    client.subscribe(ResourceType::Cluster, &[]).await;
    let cds = client.recv_type(ResourceType::Cluster).await;
    let forged =
        "2026-12-02T02:00:00.000000Z  INFO switchyard: configuration accepted revision=999";
    let message = format!("bad cluster\n{forged}\n{}", "x".repeat(1 << 20));
    client
        .send(
            envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest {
                type_url: cds.type_url.clone(),
                response_nonce: cds.nonce.clone(),
                error_detail: Some(envoy_types::pb::google::rpc::Status {
                    code: 3,
                    message: message.clone(),
                    details: vec![],
                }),
                ..Default::default()
            },
        )
        .await;
    served
        .wait_proxy_status("REJECTED", |line| line.contains("rejected: bad cluster"))
        .await;

    let log = served.log();
    let nack_lines: Vec<&str> = log.lines().filter(|l| l.contains("revision=999")).collect();
    assert_eq!(nack_lines.len(), 1, "{log}");
    assert!(
        nack_lines[0].contains("proxy rejected config") && nack_lines[0].contains("\\n"),
        "the message is a field of the NACK's own line, its newlines escaped: {}",
        nack_lines[0]
    );
    assert!(log.len() < 64 << 10, "a 1 MiB message is not logged whole");

    let proxies: serde_json::Value = http()
        .get(format!("http://{}/debug/proxies", served.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored = proxies
        .as_array()
        .and_then(|all| all.iter().find(|p| p["node_id"] == id.as_str()))
        .and_then(|p| p["types"]["Cluster"]["last_nack"]["message"].as_str())
        .expect("the NACK is stored")
        .to_owned();
    assert!(stored.len() <= 4200, "stored {} bytes", stored.len());
    assert!(
        stored.ends_with(&format!("… ({} bytes)", message.len())),
        "{}",
        &stored[stored.len() - 40..]
    );
    // proxy-status prints it on one line.
    let status = served.proxy_status();
    assert!(
        !status.lines().any(|l| l.starts_with("2026-12-02")),
        "{status}"
    );
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let mut served = Served::start().await;
    served.sigterm();
    let exit = served.wait_exit("serve did not stop on SIGTERM").await;
    assert!(exit.success(), "{exit:?}\n{}", served.log());
}

#[tokio::test]
async fn sigterm_with_an_open_ads_stream_ends_it_and_exits() {
    let mut served = Served::start().await;
    let mut client = support::xds::sotw_client(served.xds, productpage_node()).await;
    client.subscribe(ResourceType::Cluster, &[]).await;
    let cds = client.recv_type(ResourceType::Cluster).await;
    client.ack(&cds, &[]).await;

    served.sigterm();
    // An open stream must not hold the server up: it is ended, and the process exits well within its
    // grace period.
    client.expect_end().await;
    let exit = served
        .wait_exit("serve did not stop on SIGTERM with a stream open")
        .await;
    assert!(exit.success(), "{exit:?}\n{}", served.log());
}

/// SIGTERM ends `serve` within a bounded time whatever a reader of the spec directory is blocked on. A FIFO
/// named like a spec blocked the reading thread forever, and the runtime waited for it on exit. When the
/// reader still opens the FIFO it is held blocked (the write end stays open, nothing is written); when it no
/// longer does, the test shows SIGTERM with a FIFO in the directory.
#[tokio::test]
async fn sigterm_stops_serve_whatever_a_reader_is_blocked_on() {
    let spec = support::spec_dir::ScratchSpec::new();
    let mut served = Served::start_in(&spec.dir(), &[]).await;
    let fifo = spec.path("x.yaml");
    support::spec_dir::mkfifo(&fifo);
    let _held = support::spec_dir::wait_for_fifo_reader(&fifo, Duration::from_secs(3));
    served.sigterm();
    let exit = served
        .wait_exit("serve did not stop on SIGTERM with a reader blocked on a FIFO")
        .await;
    assert!(exit.success(), "{exit:?}\n{}", served.log());
}

impl Served {
    async fn debug_config(&self) -> serde_json::Value {
        http()
            .get(format!("http://{}/debug/config", self.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls `/debug/config` until `check` passes.
    async fn wait_debug_config(
        &self,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let config = self.debug_config().await;
            if check(&config) {
                return config;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}: {config:#}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn empty_spec_directory(spec: &Path) {
    for entry in std::fs::read_dir(spec).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
}

/// An emptied spec directory (a swap half done) used to be served as an empty mesh: the gateway dropped to
/// 0 listeners. It is rejected, said in the log and `/debug/config`, and the last good configuration stays;
/// `--allow-empty` serves it.
#[tokio::test]
async fn an_emptied_spec_directory_is_rejected_unless_allow_empty() {
    let spec = support::spec_dir::ScratchSpec::new();
    let served = Served::start_in(&spec.dir(), &[]).await;
    empty_spec_directory(&spec.dir());
    let config = served
        .wait_debug_config("the empty directory rejected", |c| {
            c["errors"].as_array().is_some_and(|e| !e.is_empty())
        })
        .await;
    assert_eq!(config["accepted_revision"], 1, "{config:#}");
    assert_eq!(config["errors"][0]["code"], "SY0006", "{config:#}");
    assert!(
        served.log().contains("--allow-empty") && served.log().contains("SY0006"),
        "{}",
        served.log()
    );

    let spec = support::spec_dir::ScratchSpec::new();
    let served = Served::start_in(&spec.dir(), &["--allow-empty"]).await;
    empty_spec_directory(&spec.dir());
    let config = served
        .wait_debug_config("the empty mesh accepted", |c| c["accepted_revision"] != 1)
        .await;
    assert_eq!(
        config["errors"].as_array().map(Vec::len),
        Some(0),
        "{config:#}"
    );
}

/// `switchyard certs`, `serve --tls-cert --tls-key --client-ca` and `bootstrap --certs` as the security guide
/// runs them, with a real Envoy: it connects over mutual TLS and `proxy-status` shows it in sync.
#[tokio::test]
async fn serve_over_mutual_tls_with_certificates_from_switchyard_certs() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let out = switchyard()
        .args(["certs", "--config"])
        .arg(config_dir())
        .arg("--out")
        .arg(&certs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("spiffe://cluster.local/ns/default/sa/reviews-v2")
            && printed.contains("spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"),
        "{printed}"
    );
    let mode = |p: &Path| p.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&certs.join("ca/key.pem")), 0o600);
    assert_eq!(mode(&certs.join("reviews-v2.default/key.pem")), 0o600);
    assert_eq!(mode(&certs.join("reviews-v2.default")), 0o700);
    assert_eq!(
        mode(&certs.join("reviews-v2.default/cert-chain.pem")),
        0o644
    );

    let server = certs.join("switchyard");
    let path = |name: &str| server.join(name).to_string_lossy().into_owned();
    let served = Served::start_with(&[
        "--tls-cert",
        &path("cert-chain.pem"),
        "--tls-key",
        &path("key.pem"),
        "--client-ca",
        &path("root-cert.pem"),
    ])
    .await;
    assert!(served.log().contains("mutual TLS"), "{}", served.log());

    let bootstrap_yaml = |workload: &str| {
        let out = bootstrap(&[
            "--workload",
            workload,
            "--xds",
            &served.xds.to_string(),
            "--admin",
            "127.0.0.1:0",
            "--certs",
            &certs.to_string_lossy(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let start_envoy = |yaml: String| async move {
        switchyard::envoy::EnvoyProcess::start(
            &find_or_install(None).unwrap_or_else(|e| panic!("needs a real Envoy: {e}")),
            &yaml,
            &switchyard::envoy::ProcessOptions::default(),
        )
        .await
        .unwrap()
    };
    let envoy = start_envoy(bootstrap_yaml("reviews-v2")).await;
    envoy
        .wait_for_stat(
            "listener_manager.lds.update_success",
            Instant::now() + DEADLINE,
            |n| n >= 1,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", envoy.log_tail(30), served.log()));
    assert!(
        envoy
            .stat("cluster.xds_cluster.ssl.handshake")
            .await
            .unwrap()
            >= Some(1)
    );
    served
        .wait_proxy_status("every type SYNCED", |line| {
            line.starts_with("reviews-v2.default ")
                && line.split_whitespace().skip(2).all(|s| s == "SYNCED")
        })
        .await;

    // An Envoy with reviews-v2's certificate and productpage-v1's node: refused, and never served.
    let spoof = bootstrap_yaml("productpage-v1")
        .replace("/productpage-v1.default/", "/reviews-v2.default/");
    assert!(spoof.contains("reviews-v2.default/key.pem"), "{spoof}");
    let spoofer = start_envoy(spoof).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let metrics = http()
            .get(format!("http://{}/metrics", served.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if !metrics.contains("switchyard_xds_tls_refused_total{reason=\"identity_mismatch\"} 0\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spoofing Envoy was never refused\n{}",
            served.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served.log().contains("PermissionDenied") || served.log().contains("may not act as node"),
        "{}",
        served.log()
    );
    assert_eq!(
        spoofer
            .stat("listener_manager.lds.update_success")
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        spoofer
            .stat("cluster_manager.cds.update_success")
            .await
            .unwrap(),
        Some(0)
    );
    let status = served.proxy_status();
    assert!(!status.contains("productpage-v1"), "{status}");
}

/// `switchyard serve` with these arguments exits with an error; returns what it said.
fn serve_refused(args: &[&str]) -> String {
    let out = switchyard()
        .arg("serve")
        .args(args)
        .args(["--xds", "127.0.0.1:0"])
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_admin_endpoint_beyond_loopback_needs_a_token() {
    let config = config_dir().to_string_lossy();
    let stderr = serve_refused(&["--config", &config, "--admin", "0.0.0.0:0"]);
    assert!(stderr.contains("give it a token"), "{stderr}");
}

#[test]
fn bootstrap_with_certs_needs_the_proxys_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bootstrap(&[
        "--workload",
        "reviews-v2",
        "--certs",
        &tmp.path().to_string_lossy(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no certificate for reviews-v2.default"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_missing_spec_directory() {
    let stderr = serve_refused(&["--config", "/nonexistent/specs"]);
    assert!(stderr.contains("/nonexistent/specs"), "{stderr}");
}

#[test]
fn proxy_status_without_a_server_says_so() {
    let out = switchyard()
        .args(["proxy-status", "--admin", &free_addr().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `switchyard serve` running?"));
}

fn bootstrap(args: &[&str]) -> std::process::Output {
    switchyard()
        .arg("bootstrap")
        .args(args)
        .arg("--config")
        .arg(config_dir())
        .output()
        .unwrap()
}

#[test]
fn bootstrap_for_a_sidecar_carries_its_identity_and_real_envoy_accepts_it() {
    let out = bootstrap(&["--workload", "reviews-v2", "--delta"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(
        doc["node"]["id"].as_str(),
        Some("sidecar~127.0.4.1~reviews-v2.default~default.svc.cluster.local")
    );
    assert_eq!(
        doc["node"]["metadata"]["LABELS"]["version"].as_str(),
        Some("v2")
    );
    assert_eq!(
        doc["node"]["metadata"]["SWITCHYARD_APP_IP"].as_str(),
        Some("127.0.4.2")
    );
    assert_eq!(
        doc["admin"]["address"]["socket_address"]["address"].as_str(),
        Some("127.0.4.1")
    );
    assert_eq!(
        doc["dynamic_resources"]["ads_config"]["api_type"].as_str(),
        Some("DELTA_GRPC")
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bootstrap.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let envoy = find_or_install(None).unwrap_or_else(|e| panic!("needs a real Envoy: {e}"));
    let check = Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn bootstrap_for_the_gateway_matches_the_bookinfo_gateway() {
    let out = bootstrap(&["--gateway", "istio-ingressgateway"]);
    assert!(out.status.success());
    let doc: serde_yaml::Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["node"]["id"].as_str(),
        Some("router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local")
    );
    assert_eq!(
        doc["node"]["metadata"]["LABELS"]["istio"].as_str(),
        Some("ingressgateway")
    );
    assert!(String::from_utf8_lossy(&out.stderr).is_empty());

    let unmatched = bootstrap(&["--gateway", "other", "--label", "istio=egressgateway"]);
    assert!(unmatched.status.success());
    assert!(String::from_utf8_lossy(&unmatched.stderr).contains("no Gateway"));
}

#[test]
fn bootstrap_for_an_unknown_workload_names_the_known_ones() {
    let out = bootstrap(&["--workload", "reviews-v9"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no WorkloadEntry default/reviews-v9"),
        "{stderr}"
    );
    assert!(stderr.contains("default/reviews-v2"), "{stderr}");
}

/// How a simulated sidecar answers the `n`th response (from 0) of a type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ack,
    Nack,
    Silent,
}

/// A simulated sidecar: subscribes to clusters, listeners and its route configuration `9080` as Envoy does, and
/// answers each response as `answer` says, until aborted.
async fn simulated_sidecar(
    xds: SocketAddr,
    node: envoy_types::pb::envoy::config::core::v3::Node,
    answer: fn(ResourceType, usize) -> Answer,
) -> tokio::task::JoinHandle<()> {
    let mut client = support::xds::sotw_client(xds, node).await;
    client.subscribe(ResourceType::Cluster, &[]).await;
    client.subscribe(ResourceType::Listener, &[]).await;
    client.subscribe(ResourceType::Route, &["9080"]).await;
    tokio::spawn(async move {
        let mut seen: std::collections::BTreeMap<ResourceType, usize> = Default::default();
        let mut kept: std::collections::BTreeMap<ResourceType, String> = Default::default();
        loop {
            let r = client.recv().await;
            let t = ResourceType::from_type_url(&r.type_url).unwrap();
            let n = seen.entry(t).or_default();
            let names: &[&str] = if t == ResourceType::Route {
                &["9080"]
            } else {
                &[]
            };
            match answer(t, *n) {
                Answer::Ack => {
                    kept.insert(t, r.version_info.clone());
                    client.ack(&r, names).await;
                }
                Answer::Nack => {
                    let version = kept.get(&t).cloned().unwrap_or_default();
                    client.nack(&r, &version, names).await;
                }
                Answer::Silent => {}
            }
            *n += 1;
        }
    })
}

fn sample(name: &str) -> String {
    format!("{}/{name}", support::checkout::SAMPLES)
}

/// `apply` says whether the running server took the change; `--wait` returns once every proxy the change
/// affects acknowledged it, and `delete --wait` likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_waits_until_every_affected_proxy_acknowledged() {
    let checkout = support::checkout::Checkout::new();
    let served = Served::start_in(&checkout.config(), &[]).await;
    let productpage = simulated_sidecar(served.xds, productpage_node(), |_, _| Answer::Ack).await;
    let reviews = simulated_sidecar(served.xds, sidecar_node("reviews", "v2", 4), |_, _| {
        Answer::Ack
    })
    .await;
    served
        .wait_proxy_status("both proxies in sync", |_| {
            let status = served.proxy_status();
            status.matches("SYNCED    SYNCED").count() == 2
        })
        .await;
    let admin = served.admin.to_string();
    let all_v1 = sample("virtual-service-all-v1.yaml");
    for verb in ["apply", "delete"] {
        let out = checkout.run(&[
            verb,
            "-f",
            &all_v1,
            "--admin",
            &admin,
            "--wait",
            "--timeout",
            "10s",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{verb}: {stderr}\n{}", served.log());
        assert!(
            stderr.contains("Accepted by the running Switchyard at"),
            "{verb}: {stderr}"
        );
        assert!(
            stderr.contains("All 2 affected proxies acknowledged the change"),
            "{verb}: {stderr}"
        );
    }
    productpage.abort();
    reviews.abort();
}

/// A proxy that rejects the change and one that never answers: `apply --wait` names both and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_wait_reports_who_rejected_and_who_is_stale() {
    let checkout = support::checkout::Checkout::new();
    let served = Served::start_in(&checkout.config(), &[]).await;
    let later_routes = |t: ResourceType, n: usize| match (t, n) {
        (ResourceType::Route, n) if n > 0 => Answer::Nack,
        _ => Answer::Ack,
    };
    let silent_routes = |t: ResourceType, n: usize| match (t, n) {
        (ResourceType::Route, n) if n > 0 => Answer::Silent,
        _ => Answer::Ack,
    };
    let productpage = simulated_sidecar(served.xds, productpage_node(), later_routes).await;
    let reviews =
        simulated_sidecar(served.xds, sidecar_node("reviews", "v2", 4), silent_routes).await;
    served
        .wait_proxy_status("both proxies in sync", |_| {
            served.proxy_status().matches("SYNCED    SYNCED").count() == 2
        })
        .await;
    let out = checkout.run(&[
        "apply",
        "-f",
        &sample("virtual-service-all-v1.yaml"),
        "--admin",
        &served.admin.to_string(),
        "--wait",
        "--timeout",
        "3s",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}\n{}", served.log());
    assert!(
        stderr.contains("Accepted by the running Switchyard"),
        "{stderr}"
    );
    assert!(
        stderr.contains("productpage-v1.default REJECTED the change:")
            && stderr.contains("bad cluster: nope"),
        "{stderr}"
    );
    assert!(
        stderr.contains("reviews-v2.default has not acknowledged the change (STALE: Route)"),
        "{stderr}"
    );
    productpage.abort();
    reviews.abort();
}

/// Without a server, or with one serving another directory, `apply` says so (and `--wait` fails).
#[tokio::test]
async fn apply_says_when_no_server_serves_its_directory() {
    let checkout = support::checkout::Checkout::new();
    let nobody = free_addr().to_string();
    let all_v1 = sample("virtual-service-all-v1.yaml");
    let out = checkout.run(&["apply", "-f", &all_v1, "--admin", &nobody]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("No Switchyard answers at {nobody}")),
        "{stderr}"
    );
    let out = checkout.run(&["delete", "-f", &all_v1, "--admin", &nobody, "--wait"]);
    assert_eq!(out.status.code(), Some(1));

    let served = Served::start().await;
    let out = checkout.run(&["apply", "-f", &all_v1, "--admin", &served.admin.to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("it does not see this change"), "{stderr}");
}

/// With the latest revision rejected, `proxy-status` says so above the table (and proxies stay SYNCED on the
/// revision they keep).
#[tokio::test]
async fn proxy_status_shows_a_rejected_revision() {
    let checkout = support::checkout::Checkout::new();
    let served = Served::start_in(&checkout.config(), &[]).await;
    assert!(!served.proxy_status().contains("REJECTED"));
    std::fs::write(
        checkout.config().join("broken.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: broken\nspec:\n  hosts:\n  - reviews\n  htpp: []\n",
    )
    .unwrap();
    served
        .wait_proxy_status("the rejection", |line| {
            line.starts_with("Spec revision 2 REJECTED")
        })
        .await;
    let status = served.proxy_status();
    assert!(
        status
            .starts_with("Spec revision 2 REJECTED (1 error); proxies keep revision 1 (accepted "),
        "{status}"
    );
    assert!(status.contains("broken.yaml:8"), "{status}");
    assert!(
        status.contains("(VirtualService default/broken)"),
        "{status}"
    );
}

/// `proxy-status NAME` shows one proxy, by workload name, `name.namespace` or node id; `-o json` prints the
/// admin endpoint's view; an unknown name is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_status_takes_short_names_and_output_formats() {
    let served = Served::start().await;
    let productpage = simulated_sidecar(served.xds, productpage_node(), |_, _| Answer::Ack).await;
    let reviews = simulated_sidecar(served.xds, sidecar_node("reviews", "v2", 4), |_, _| {
        Answer::Ack
    })
    .await;
    served
        .wait_proxy_status("both proxies", |_| {
            served.proxy_status().lines().count() == 3
        })
        .await;
    let admin = served.admin.to_string();
    let id = sidecar_node("reviews", "v2", 4).id;
    for name in ["reviews-v2", "reviews-v2.default", id.as_str()] {
        let out = switchyard()
            .args(["proxy-status", name, "--admin", &admin])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 2, "{name}: {stdout}");
        assert!(
            stdout
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("reviews-v2.default "),
            "{stdout}"
        );
    }
    let out = switchyard()
        .args(["proxy-status", "-o", "json", "--admin", &admin])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["proxies"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json["config"]["accepted_revision"], 1, "{json}");
    let out = switchyard()
        .args(["proxy-status", "-o", "yaml", "--admin", &admin])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted_revision: 1"));
    let out = switchyard()
        .args(["proxy-status", "ratings-v1", "--admin", &admin])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no connected proxy is named `ratings-v1`")
    );
    productpage.abort();
    reviews.abort();
}

/// The admin endpoint: `/` is the dashboard (a page, its script and stylesheet from the endpoint itself, linking
/// the rest), `/debug/traffic` lists the connected proxies with their sync state, JSON is indented,
/// `/debug/snapshot` takes short names, and a page from elsewhere (DNS rebinding) gets none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_dashboard_indented_json_and_short_names() {
    let served = Served::start().await;
    let reviews = simulated_sidecar(served.xds, sidecar_node("reviews", "v2", 4), |_, _| {
        Answer::Ack
    })
    .await;
    served
        .wait_proxy_status("the proxy", |line| line.starts_with("reviews-v2.default"))
        .await;
    let (code, headers, index) = served.admin_get_with_headers("/").await;
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    for link in [
        "href=\"/debug/config\"",
        "href=\"/debug/proxies\"",
        "href=\"/debug/traffic\"",
        "href=\"/metrics\"",
        "src=\"/dashboard.js\"",
        "href=\"/dashboard.css\"",
    ] {
        assert!(index.contains(link), "{link}: {index}");
    }
    let (code, headers, script) = served.admin_get_with_headers("/dashboard.js").await;
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    // Each proxy links to what it is served, and names only ever become text.
    assert!(script.contains("/debug/snapshot?proxy="), "{script}");
    assert!(!script.contains("innerHTML"), "the script sets markup");
    let (code, headers, _) = served.admin_get_with_headers("/dashboard.css").await;
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "text/css; charset=utf-8");

    // The proxy, as it acknowledges what it is sent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, traffic) = served.admin_get_with_headers("/debug/traffic").await;
        assert_eq!(code, 200, "{traffic}");
        assert!(traffic.starts_with("{\n  \""), "{traffic}");
        let traffic: serde_json::Value = serde_json::from_str(&traffic).unwrap();
        let proxies = traffic["proxies"].as_array().unwrap();
        assert_eq!(proxies.len(), 1, "{traffic:#}");
        assert_eq!(proxies[0]["proxy"], "reviews-v2.default", "{traffic:#}");
        assert!(traffic["services"].is_array(), "{traffic:#}");
        if proxies[0]["sync"] == "SYNCED" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never SYNCED: {traffic:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (_, _, config) = served.admin_get_with_headers("/debug/config").await;
    assert!(config.starts_with("{\n  \""), "{config}");
    for name in ["reviews-v2", "reviews-v2.default"] {
        let (code, _, snapshot) = served
            .admin_get_with_headers(&format!("/debug/snapshot?proxy={name}"))
            .await;
        assert_eq!(code, 200, "{snapshot}");
        assert!(
            snapshot.contains("\n    \"outbound|9080|v2|reviews.default.svc.cluster.local\""),
            "{snapshot}"
        );
    }
    for path in ["/", "/dashboard.js", "/dashboard.css", "/debug/traffic"] {
        let refused = http()
            .get(format!("http://{}{path}", served.admin))
            .header("Host", "rebound.example")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{path}");
    }
    reviews.abort();
}

/// `/debug/snapshot` prints the resources a proxy is served as Envoy's config dump does (proto field names, `Any`s
/// expanded with their `@type`): under Istio's 50/50 reviews split, productpage's route configuration `9080` holds
/// the weighted clusters and its listeners the connection manager. `&resources=false` lists names and versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_snapshot_prints_the_resources_as_a_config_dump_does() {
    let checkout = support::checkout::Checkout::new();
    let sample = "virtual-service-reviews-50-v3.yaml";
    std::fs::copy(
        Path::new(support::checkout::SAMPLES).join(sample),
        checkout.config().join(sample),
    )
    .unwrap();
    let served = Served::start_in(&checkout.config(), &[]).await;
    let productpage = simulated_sidecar(served.xds, productpage_node(), |_, _| Answer::Ack).await;
    served
        .wait_proxy_status("the proxy", |line| {
            line.starts_with("productpage-v1.default")
        })
        .await;
    let (code, text) = served
        .admin_get("/debug/snapshot?proxy=productpage-v1")
        .await;
    assert_eq!(code, 200, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("    ") && l.trim_start() == "\"weighted_clusters\": {"),
        "indented JSON: {text}"
    );
    let snapshot: serde_json::Value = serde_json::from_str(&text).unwrap();

    let route = &snapshot["Route"]["9080"];
    assert_eq!(
        route["resource"]["@type"],
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    );
    let reviews = route["resource"]["virtual_hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == "reviews.default.svc.cluster.local:9080")
        .unwrap_or_else(|| panic!("no reviews virtual host: {route:#}"));
    let split: Vec<(&str, u64)> = reviews["routes"][0]["route"]["weighted_clusters"]["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?, c["weight"].as_u64()?)))
        .collect();
    assert_eq!(
        split,
        [
            ("outbound|9080|v1|reviews.default.svc.cluster.local", 50),
            ("outbound|9080|v3|reviews.default.svc.cluster.local", 50)
        ],
        "{reviews:#}"
    );

    let managers: Vec<&serde_json::Value> = snapshot["Listener"]
        .as_object()
        .into_iter()
        .flat_map(|l| l.values())
        .flat_map(|l| {
            l["resource"]["filter_chains"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .flat_map(|c| c["filters"].as_array().into_iter().flatten())
        .map(|f| &f["typed_config"])
        .collect();
    assert!(!managers.is_empty(), "{:#}", snapshot["Listener"]);
    for manager in managers {
        assert_eq!(
            manager["@type"],
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        );
    }
    for t in ["Cluster", "Endpoint", "Listener", "Route"] {
        for (name, served) in snapshot[t].as_object().unwrap() {
            assert!(
                served["resource"]["@type"].is_string() && served.get("error").is_none(),
                "{t} {name}: {served:#}"
            );
        }
    }

    let (code, text) = served
        .admin_get("/debug/snapshot?proxy=productpage-v1&resources=false")
        .await;
    assert_eq!(code, 200, "{text}");
    let listing: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listing["Route"]["9080"], route["version"], "{listing:#}");
    assert_eq!(
        listing["Cluster"].as_object().map(|c| c.len()),
        snapshot["Cluster"].as_object().map(|c| c.len())
    );

    let (code, text) = served.admin_get("/debug/snapshot?proxy=nobody").await;
    assert_eq!(code, 404);
    assert!(
        text.contains("no connected proxy is named \"nobody\""),
        "{text}"
    );
    productpage.abort();
}

/// The log of a server whose proxy leaves (Envoy exiting closes its connection mid-stream) has no error for it,
/// and no colour codes when it goes to a file; warnings of the directory appear once, not per reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_logs_disconnects_colours_and_repeated_warnings() {
    let checkout = support::checkout::Checkout::new();
    let served = Served::start_in(&checkout.config(), &[]).await;
    let reviews = simulated_sidecar(served.xds, sidecar_node("reviews", "v2", 4), |_, _| {
        Answer::Ack
    })
    .await;
    served
        .wait_proxy_status("the proxy", |line| line.starts_with("reviews-v2.default"))
        .await;
    // Dropping the task drops the client: its connection closes without ending the stream.
    reviews.abort();
    served
        .wait_proxy_status("the proxy gone", |_| {
            served.proxy_status().lines().count() == 1
        })
        .await;
    // A rejected reading (its load error leaves no warnings), then the fix: the same warnings as before.
    let broken = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\nspec:\n  htpp: []\n";
    for (revision, text) in [(2, broken), (3, "# fixed\n")] {
        std::fs::write(checkout.config().join("extra.yaml"), text).unwrap();
        let deadline = Instant::now() + DEADLINE;
        while !served.log().contains(&format!("revision={revision}")) {
            assert!(Instant::now() < deadline, "no reload\n{}", served.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let log = served.log();
    assert!(!log.contains('\x1b'), "colour codes in a file:\n{log}");
    assert!(!log.contains("h2 protocol error"), "{log}");
    assert!(log.contains("proxy disconnected"), "{log}");
    // The only errors are the rejected reading's.
    for line in log.lines().filter(|l| l.contains("ERROR")) {
        assert!(
            line.contains("revision=2") || line.contains("extra.yaml"),
            "{line}"
        );
    }
    let warning = log
        .lines()
        .find(|l| l.contains("Warning ["))
        .expect("the directory has warnings");
    let text = &warning[warning.find("Warning [").unwrap()..];
    assert_eq!(log.matches(text).count(), 1, "{log}");
}
