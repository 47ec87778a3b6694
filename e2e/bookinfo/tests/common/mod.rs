//! In-process Bookinfo with a tiny stand-in sidecar: every workload sends its outgoing calls to the
//! sidecar, which dispatches on the `Host` header, records what it saw, and can inject faults.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bookinfo::{AppConfig, Service, Upstreams};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What the sidecar does with requests for one host.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Forward(SocketAddr),
    /// Accept the request and never answer (a delay longer than anyone waits).
    Hang,
    /// Answer with this status and an empty body (an abort fault, or no healthy upstream).
    Status(u16),
}

/// One request as it reached the sidecar.
#[derive(Debug, Clone)]
pub struct Seen {
    pub host: String,
    pub path: String,
    pub headers: HeaderMap,
}

#[derive(Default)]
struct Table {
    routes: BTreeMap<String, Action>,
    seen: Vec<Seen>,
}

struct SidecarState {
    table: Mutex<Table>,
    client: reqwest::Client,
}

pub struct Sidecar {
    pub addr: SocketAddr,
    state: Arc<SidecarState>,
    _stop: oneshot::Sender<()>,
}

impl Sidecar {
    pub async fn start() -> Sidecar {
        let state = Arc::new(SidecarState {
            table: Mutex::default(),
            client: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let app = Router::new().fallback(proxy).with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Sidecar {
            addr,
            state,
            _stop: stop,
        }
    }

    pub fn route(&self, host: &str, action: Action) {
        self.state
            .table
            .lock()
            .unwrap()
            .routes
            .insert(host.to_owned(), action);
    }

    /// Requests seen for `host` (without port), oldest first.
    pub fn seen(&self, host: &str) -> Vec<Seen> {
        let table = self.state.table.lock().unwrap();
        table
            .seen
            .iter()
            .filter(|seen| seen.host == host)
            .cloned()
            .collect()
    }

    pub fn forget(&self) {
        self.state.table.lock().unwrap().seen.clear();
    }
}

async fn proxy(State(state): State<Arc<SidecarState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let host = authority
        .rsplit_once(':')
        .map_or(authority.as_str(), |(host, _)| host)
        .to_owned();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let action = {
        let mut table = state.table.lock().unwrap();
        table.seen.push(Seen {
            host: host.clone(),
            path: path.clone(),
            headers: parts.headers.clone(),
        });
        table.routes.get(&host).copied()
    };
    match action {
        None => StatusCode::NOT_FOUND.into_response(),
        Some(Action::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(Action::Hang) => std::future::pending().await,
        Some(Action::Forward(target)) => {
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut headers = parts.headers.clone();
            headers.remove(header::HOST);
            let answer = state
                .client
                .request(parts.method, format!("http://{target}{path}"))
                .headers(headers)
                .body(body)
                .send()
                .await;
            match answer {
                Ok(answer) => {
                    let status = answer.status();
                    let headers = answer.headers().clone();
                    let bytes = answer.bytes().await.unwrap_or_default();
                    let mut response = Response::new(Body::from(bytes));
                    *response.status_mut() = status;
                    for name in [header::CONTENT_TYPE, header::SET_COOKIE, header::LOCATION] {
                        if let Some(value) = headers.get(&name) {
                            response.headers_mut().insert(name, value.clone());
                        }
                    }
                    response
                }
                Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
    }
}

/// Runs one workload on an ephemeral loopback port until the returned sender is dropped.
pub async fn spawn(config: AppConfig) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        bookinfo::serve_with_shutdown(config, listener, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop)
}

/// All six workloads behind one sidecar; reviews start routed to v1.
pub struct Bookinfo {
    pub sidecar: Sidecar,
    pub productpage: SocketAddr,
    pub details: SocketAddr,
    /// v1, v2, v3.
    pub reviews: [SocketAddr; 3],
    pub ratings: SocketAddr,
    _stops: Vec<oneshot::Sender<()>>,
}

impl Bookinfo {
    pub async fn start() -> Bookinfo {
        let sidecar = Sidecar::start().await;
        let config = |service, version: &str| {
            let mut config = AppConfig::new(
                service,
                version,
                format!("{service}-{version}"),
                sidecar.addr,
            );
            // The sidecar listens on an ephemeral port, and the URL port is the one connected to.
            config.upstreams = Upstreams::on_port(sidecar.addr.port());
            config
        };
        let mut stops = Vec::new();
        let mut addrs = Vec::new();
        for (service, version) in [
            (Service::Productpage, "v1"),
            (Service::Details, "v1"),
            (Service::Reviews, "v1"),
            (Service::Reviews, "v2"),
            (Service::Reviews, "v3"),
            (Service::Ratings, "v1"),
        ] {
            let (addr, stop) = spawn(config(service, version)).await;
            addrs.push(addr);
            stops.push(stop);
        }
        let [productpage, details, v1, v2, v3, ratings] = addrs[..] else {
            unreachable!("six workloads were started")
        };
        let reviews = [v1, v2, v3];
        sidecar.route("details", Action::Forward(details));
        sidecar.route("reviews", Action::Forward(reviews[0]));
        sidecar.route("ratings", Action::Forward(ratings));
        Bookinfo {
            sidecar,
            productpage,
            details,
            reviews,
            ratings,
            _stops: stops,
        }
    }

    /// Routes reviews to version `n` (1, 2 or 3).
    pub fn reviews_to(&self, n: usize) {
        self.sidecar
            .route("reviews", Action::Forward(self.reviews[n - 1]));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.productpage)
    }
}

/// A browser-like client: keeps cookies, does not follow redirects (so tests can look at them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn get_text(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

pub const FILLED_STAR: &str = "glyphicon glyphicon-star";
