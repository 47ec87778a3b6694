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
        let [xds, admin] = free_addrs();
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = switchyard()
            .args(["serve", "--config"])
            .arg(config_dir())
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
    NodeIdentity::sidecar(&SidecarNode {
        workload_name: "productpage-v1".into(),
        namespace: "default".into(),
        labels: [("app", "productpage"), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        pod_ip: "127.0.1.1".parse().unwrap(),
        app_ip: "127.0.1.2".parse().unwrap(),
        outbound_ip: "127.0.1.3".parse().unwrap(),
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
        status.contains(&id) && status.contains("STALE"),
        "{status}\n{}",
        served.log()
    );
    client.ack(&cds, &[]).await;
    served
        .wait_proxy_status("SYNCED", |line| {
            line.starts_with(&id) && line.contains("SYNCED")
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
    let id = "sidecar~127.0.4.1~reviews-v2.default~default.svc.cluster.local";
    served
        .wait_proxy_status("every type SYNCED", |line| {
            line.starts_with(id) && line.split_whitespace().skip(2).all(|s| s == "SYNCED")
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
