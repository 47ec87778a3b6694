//! Asking a running `switchyard serve` through its admin endpoint: `proxy-status`, and `apply`/`delete` saying
//! whether the server took their change. Only reads; the endpoint's JSON is read as far as each view needs it.

use std::net::SocketAddr;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::control_plane::DEFAULT_ADMIN;

#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// The admin endpoint of the running Switchyard.
    #[arg(long, default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// The admin endpoint's bearer token, when it has one.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

pub struct ServerAdmin {
    http: reqwest::Client,
    args: AdminArgs,
}

/// Why a question got no answer: nothing listens (no server running), or the answer was wrong.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("no Switchyard answers at {0}")]
    Unreachable(SocketAddr),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl ServerAdmin {
    pub fn new(args: &AdminArgs) -> anyhow::Result<ServerAdmin> {
        Ok(ServerAdmin {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            args: args.clone(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.args.admin
    }

    /// `GET <path>` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, AskError> {
        let url = format!("http://{}{path}", self.args.admin);
        let mut request = self.http.get(&url);
        if let Some(token) = &self.args.admin_token {
            request = request.bearer_auth(token.trim());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_connect() => return Err(AskError::Unreachable(self.args.admin)),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("GET {url}")).into()),
        };
        let response = response
            .error_for_status()
            .with_context(|| format!("GET {url}"))?;
        Ok(response
            .json()
            .await
            .with_context(|| format!("unexpected answer from the admin endpoint ({url})"))?)
    }

    /// `/debug/config`.
    pub async fn config(&self) -> Result<ConfigView, AskError> {
        self.get("/debug/config").await
    }
}

/// `/debug/config` (the server's [`crate::admin::ConfigStatus`]) as far as the CLI reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigView {
    #[serde(default)]
    pub spec_dir: Option<std::path::PathBuf>,
    pub revision: u64,
    pub accepted_revision: Option<u64>,
    pub accepted_fingerprint: Option<String>,
    pub accepted_at: Option<String>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

impl ConfigView {
    /// The latest reading was rejected: proxies keep an older one (or none).
    pub fn rejected(&self) -> bool {
        self.accepted_revision != Some(self.revision) && !self.errors.is_empty()
    }

    /// `Spec revision 13 REJECTED (2 errors); proxies keep revision 12 (accepted ...)`, then one line per error.
    pub fn rejection(&self) -> String {
        let errors = self.errors.len();
        let kept = match (self.accepted_revision, &self.accepted_at) {
            (Some(revision), Some(at)) => {
                format!("proxies keep revision {revision} (accepted {at})")
            }
            (Some(revision), None) => format!("proxies keep revision {revision}"),
            (None, _) => "no revision was ever accepted: proxies get no configuration".to_string(),
        };
        let mut out = format!(
            "Spec revision {} REJECTED ({errors} error{}); {kept}:\n",
            self.revision,
            if errors == 1 { "" } else { "s" }
        );
        for e in &self.errors {
            out.push_str(&format!("  {}\n", diagnostic_line(e)));
        }
        out
    }
}

/// A diagnostic from the endpoint's JSON, printed as `validate` prints it.
pub fn diagnostic_line(d: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = format!("{} [{}]", text(&d["severity"]), text(&d["code"]));
    let r = &d["resource"];
    if r.is_object() {
        out.push_str(&format!(
            " ({} {}/{})",
            text(&r["kind"]),
            text(&r["namespace"]),
            text(&r["name"])
        ));
    }
    out.push_str(&format!(" {}:{}", text(&d["file"]), text(&d["line"])));
    let field = text(&d["field"]);
    if !field.is_empty() {
        out.push_str(&format!(" {field}"));
    }
    out.push_str(&format!(": {}", text(&d["message"])));
    out
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}
