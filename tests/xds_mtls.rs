//! xDS over mutual TLS against a whole control plane (Bookinfo's `config/`): each stream is bound to the
//! SPIFFE ID of its client certificate, refused handshakes are counted by reason, Switchyard's own
//! certificate rotates without a restart, and the admin endpoint refuses foreign `Host`s.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use support::xds::{node, SotwClient, DEADLINE};
use switchyard::certs::{self, Authority, CertDir, MintOptions, Subject, Validity};
use switchyard::control_plane::{ControlPlane, ControlPlaneOptions};
use switchyard::xds::identity::{SpiffeId, DEFAULT_TRUST_DOMAIN};
use switchyard::xds::tls::Refusal;
use switchyard::xds::ResourceType::{Cluster, Listener, Route};
use tokio::time::Instant;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const PRODUCTPAGE: &str = "sidecar~127.0.1.1~productpage-v1.default~default.svc.cluster.local";

/// A control plane with mutual TLS over a private copy of `config/` and freshly minted certificates.
struct Plane {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    certs: CertDir,
    cp: ControlPlane,
}

impl Plane {
    async fn start() -> Plane {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let repo_config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        for entry in std::fs::read_dir(repo_config).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, config.join(path.file_name().unwrap())).unwrap();
        }
        let certs = CertDir::new(tmp.path().join("certs"));
        certs::mint(
            &certs,
            &MintOptions {
                trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
                validity_days: 1,
                server_names: certs::default_server_names(),
                proxies: vec![
                    ("default".into(), "productpage-v1".into()),
                    ("default".into(), "reviews-v1".into()),
                ],
            },
        )
        .unwrap();
        let mut options = ControlPlaneOptions::new(&config);
        options.xds = "127.0.0.1:0".parse().unwrap();
        options.admin = Some("127.0.0.1:0".parse().unwrap());
        options.tls = Some(certs.tls_options(DEFAULT_TRUST_DOMAIN));
        let cp = ControlPlane::start(options).await.unwrap();
        Plane {
            _tmp: tmp,
            config,
            certs,
            cp,
        }
    }

    fn tls(&self) -> &switchyard::xds::XdsTls {
        self.cp.tls().expect("the plane runs with TLS")
    }

    /// A TLS channel trusting the CA, presenting `identity` (cert-chain and key PEM) if given.
    async fn channel(
        &self,
        identity: Option<(String, String)>,
    ) -> Result<AggregatedDiscoveryServiceClient<Channel>, tonic::transport::Error> {
        let ca = std::fs::read_to_string(self.certs.ca().cert_chain).unwrap();
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(certs::SERVER_NAME);
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let channel = Endpoint::from_shared(format!("https://{}", self.cp.xds_addr()))
            .unwrap()
            .tls_config(tls)?
            .connect()
            .await?;
        Ok(AggregatedDiscoveryServiceClient::new(channel))
    }

    /// The certificate and key `switchyard certs` minted for a proxy.
    fn identity_of(&self, name: &str) -> (String, String) {
        let files = self.certs.proxy("default", name);
        (
            std::fs::read_to_string(files.cert_chain).unwrap(),
            std::fs::read_to_string(files.key).unwrap(),
        )
    }

    /// A client presenting `identity` (or none) as productpage-v1 gets no response. With TLS 1.3 the client
    /// may believe the handshake done before the server has checked its certificate, so the refusal shows
    /// on the channel, on the stream or as the end of the stream, never as a response.
    async fn assert_not_served(&self, identity: Option<(String, String)>) {
        if let Ok(client) = self.channel(identity).await {
            assert_no_response(client).await;
        }
    }

    async fn sotw_as(&self, certificate_of: &str, node_id: &str) -> SotwClient {
        let client = self
            .channel(Some(self.identity_of(certificate_of)))
            .await
            .unwrap();
        support::xds::sotw_over(client, node(node_id))
            .await
            .unwrap()
    }

    /// Polls until `check` holds of the TLS counters.
    async fn wait_counted(
        &self,
        what: &str,
        check: impl Fn(&switchyard::xds::TlsCounters) -> bool,
    ) {
        let deadline = Instant::now() + DEADLINE;
        while !check(self.tls().counters()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn admin_get(&self, path: &str, host: &str) -> (u16, String) {
        let admin = self.cp.admin_addr().unwrap();
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("http://{admin}{path}"))
            .header("Host", host)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    async fn metrics(&self) -> String {
        let admin = self.cp.admin_addr().unwrap();
        self.admin_get("/metrics", &admin.to_string()).await.1
    }
}

/// Asks for productpage-v1's clusters over `client` and expects no response: a refused stream, or one that
/// ends. The request is queued before the stream opens, so nothing is sent into a stream already gone.
async fn assert_no_response(mut client: AggregatedDiscoveryServiceClient<Channel>) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(DiscoveryRequest {
        node: Some(node(PRODUCTPAGE)),
        type_url: Cluster.type_url().to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let Ok(response) = client
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    else {
        return;
    };
    let first = tokio::time::timeout(DEADLINE, response.into_inner().message()).await;
    assert!(
        matches!(first, Ok(Err(_)) | Ok(Ok(None))),
        "served without a valid certificate: {first:?}"
    );
}

/// productpage-v1, with its own certificate, subscribed to clusters and acknowledging them.
async fn real_productpage(plane: &Plane) -> SotwClient {
    let mut real = plane.sotw_as("productpage-v1", PRODUCTPAGE).await;
    real.subscribe(Cluster, &[]).await;
    let clusters = real.recv_type(Cluster).await;
    assert!(!clusters.resources.is_empty());
    real.ack(&clusters, &[]).await;
    real
}

#[tokio::test]
async fn another_workloads_certificate_cannot_claim_productpage() {
    let plane = Plane::start().await;
    let mut real = real_productpage(&plane).await;
    let real_stream = plane
        .cp
        .registry()
        .latest_by_node_id(PRODUCTPAGE)
        .map(|s| s.stream);

    // reviews-v1's certificate, productpage-v1's node id, and a NACK as its first word.
    let mut spoof = plane.sotw_as("reviews-v1", PRODUCTPAGE).await;
    spoof
        .send(DiscoveryRequest {
            type_url: Cluster.type_url().to_string(),
            version_info: String::new(),
            response_nonce: "1".to_string(),
            error_detail: Some(envoy_types::pb::google::rpc::Status {
                code: 3,
                message: "spoofed rejection".to_string(),
                details: vec![],
            }),
            ..Default::default()
        })
        .await;
    let status = spoof.expect_end().await.expect("a status");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("spiffe://cluster.local/ns/default/sa/reviews-v1"),
        "{}",
        status.message()
    );

    // The same in Delta, asking for listeners.
    let client = plane
        .channel(Some(plane.identity_of("reviews-v1")))
        .await
        .unwrap();
    let mut spoof = support::xds::delta_over(client, node(PRODUCTPAGE))
        .await
        .unwrap();
    spoof.subscribe(Listener, &[]).await;
    let status = spoof.expect_end().await.expect("a status");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // Nothing of the spoofer reached the registry: productpage-v1 has one stream, its own, not rejecting.
    let streams = plane.cp.registry().by_node_id(PRODUCTPAGE);
    assert_eq!(streams.len(), 1, "{streams:#?}");
    assert_eq!(Some(streams[0].stream), real_stream);
    assert!(streams.iter().all(|s| s
        .types
        .values()
        .all(|t| !t.rejected && t.last_nack.is_none())));
    let admin = plane.cp.admin_addr().unwrap();
    let (code, proxies) = plane.admin_get("/debug/proxies", &admin.to_string()).await;
    assert_eq!(code, 200);
    assert!(!proxies.contains("spoofed rejection"), "{proxies}");
    assert_eq!(plane.tls().counters().get(Refusal::IdentityMismatch), 2);
    assert!(plane
        .metrics()
        .await
        .contains("switchyard_xds_tls_refused_total{reason=\"identity_mismatch\"} 2\n"));

    // The real proxy's stream is unaffected: it still answers.
    real.subscribe(Listener, &[]).await;
    real.recv_type(Listener).await;
}

#[tokio::test]
async fn a_client_without_a_certificate_cannot_connect() {
    let plane = Plane::start().await;
    plane.assert_not_served(None).await;
    plane
        .wait_counted("a refusal without a client certificate", |c| {
            c.get(Refusal::NoClientCertificate) == 1
        })
        .await;
    assert!(plane.cp.registry().list().is_empty());

    // Plaintext gRPC on the TLS port is not even a handshake.
    let plain = Endpoint::from_shared(format!("http://{}", plane.cp.xds_addr()))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        assert_no_response(AggregatedDiscoveryServiceClient::new(channel)).await;
    }
    plane
        .wait_counted("a refused plaintext client", |c| {
            c.get(Refusal::Protocol) >= 1
        })
        .await;
    assert!(plane.cp.registry().list().is_empty());
}

#[tokio::test]
async fn expired_and_foreign_certificates_are_refused_with_their_reason() {
    let plane = Plane::start().await;
    let ca = Authority::open(&plane.certs).unwrap();
    let id = Subject::Proxy(SpiffeId::new(
        DEFAULT_TRUST_DOMAIN,
        "default",
        "productpage-v1",
    ));
    let now = time::OffsetDateTime::now_utc();
    let expired = ca
        .issue(
            &id,
            Validity {
                not_before: now - Duration::from_secs(2 * 86400),
                not_after: now - Duration::from_secs(86400),
            },
        )
        .unwrap();
    let other_ca = CertDir::new(plane._tmp.path().join("other-ca"));
    let foreign = Authority::open_or_create(&other_ca)
        .unwrap()
        .issue(&id, Validity::days(1))
        .unwrap();
    for (issued, reason) in [
        (expired, Refusal::Expired),
        (foreign, Refusal::UnknownIssuer),
    ] {
        let before = plane.tls().counters().get(reason);
        plane
            .assert_not_served(Some((issued.cert_pem, issued.key_pem)))
            .await;
        plane
            .wait_counted(reason.label(), |c| c.get(reason) == before + 1)
            .await;
    }
    let metrics = plane.metrics().await;
    assert!(
        metrics.contains("switchyard_xds_tls_refused_total{reason=\"expired\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("switchyard_xds_tls_refused_total{reason=\"unknown_issuer\"} 1\n"));
    assert!(plane.cp.registry().list().is_empty());
}

/// The certificate a fresh TLS connection to `addr` is served, trusting `ca`.
async fn served_certificate(addr: SocketAddr, certs: &CertDir) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.ca().cert_chain).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let files = certs.proxy("default", "productpage-v1");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_chain)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(certs::SERVER_NAME).unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn the_server_certificate_rotates_without_dropping_streams() {
    let plane = Plane::start().await;
    let mut real = real_productpage(&plane).await;
    real.subscribe(Route, &["9080"]).await;
    let routes = real.recv_type(Route).await;
    real.ack(&routes, &["9080"]).await;
    let stream = plane
        .cp
        .registry()
        .latest_by_node_id(PRODUCTPAGE)
        .unwrap()
        .stream;
    let before = plane.tls().certificate();
    assert_eq!(
        served_certificate(plane.cp.xds_addr(), &plane.certs).await,
        before
    );

    // A key that does not go with the certificate: refused, the old pair stays in use.
    let server = plane.certs.server();
    let original_key = std::fs::read(&server.key).unwrap();
    let stranger = plane.certs.proxy("default", "reviews-v1");
    std::fs::copy(&stranger.key, &server.key).unwrap();
    plane
        .wait_counted("a rejected reload", |c| c.reloads().1 >= 1)
        .await;
    assert_eq!(plane.tls().certificate(), before);
    std::fs::write(&server.key, original_key).unwrap();

    // A proper rotation, as `switchyard certs` does it.
    Authority::open(&plane.certs)
        .unwrap()
        .issue_into(
            &server,
            &Subject::Server(certs::default_server_names()),
            Validity::days(1),
        )
        .unwrap();
    plane
        .wait_counted("an accepted reload", |c| c.reloads().0 == 1)
        .await;
    let after = plane.tls().certificate();
    assert_ne!(after, before);
    assert_eq!(
        served_certificate(plane.cp.xds_addr(), &plane.certs).await,
        after
    );

    // The stream opened before the rotation still gets pushes: all-v1 changes productpage's routes.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/istio-bookinfo/virtual-service-all-v1.yaml"),
        plane.config.join("virtual-service-all-v1.yaml"),
    )
    .unwrap();
    let pushed = real.recv_type(Route).await;
    assert_ne!(pushed.version_info, routes.version_info);
    let status = plane.cp.registry().latest_by_node_id(PRODUCTPAGE).unwrap();
    assert_eq!(status.stream, stream, "productpage-v1 had to reconnect");
    let metrics = plane.metrics().await;
    assert!(
        metrics.contains("switchyard_tls_reloads_total{outcome=\"accepted\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_admin_endpoint_refuses_a_foreign_host() {
    let plane = Plane::start().await;
    let admin = plane.cp.admin_addr().unwrap();
    for path in ["/debug/proxies", "/metrics", "/debug/config"] {
        let (code, body) = plane.admin_get(path, "rebinding.example:15014").await;
        assert_eq!(code, 403, "{path}: {body}");
        let (code, _) = plane.admin_get(path, &admin.to_string()).await;
        assert_eq!(code, 200, "{path}");
        let (code, _) = plane
            .admin_get(path, &format!("localhost:{}", admin.port()))
            .await;
        assert_eq!(code, 200, "{path}");
    }
}

#[tokio::test]
async fn a_new_client_ca_is_trusted_once_it_is_in_the_bundle() {
    let plane = Plane::start().await;
    let next_ca =
        Authority::open_or_create(&CertDir::new(plane._tmp.path().join("next-ca"))).unwrap();
    let issued = next_ca
        .issue(
            &Subject::Proxy(SpiffeId::new(
                DEFAULT_TRUST_DOMAIN,
                "default",
                "productpage-v1",
            )),
            Validity::days(1),
        )
        .unwrap();
    let identity = (issued.cert_pem, issued.key_pem);

    // Not yet trusted.
    plane.assert_not_served(Some(identity.clone())).await;
    plane
        .wait_counted("an unknown issuer", |c| c.get(Refusal::UnknownIssuer) == 1)
        .await;

    // The first step of a CA rotation: both CAs in the bundle, picked up without a restart.
    let bundle = plane.certs.server().root_cert;
    let old = std::fs::read_to_string(&bundle).unwrap();
    std::fs::write(&bundle, format!("{old}{}", next_ca.cert_pem())).unwrap();
    plane
        .wait_counted("the new bundle", |c| c.reloads().0 == 1)
        .await;
    let client = plane.channel(Some(identity)).await.unwrap();
    let mut stream = support::xds::sotw_over(client, node(PRODUCTPAGE))
        .await
        .unwrap();
    stream.subscribe(Cluster, &[]).await;
    assert!(!stream.recv_type(Cluster).await.resources.is_empty());
}
