//! A real headless Chromium (Debian's `chromium`) driven over WebDriver: `chromedriver` speaks plain HTTP and
//! JSON, so `reqwest` and `serde_json` are the whole client. For tests of pages as people see them: rendered
//! colours, sizes and layout, read with `getComputedStyle` and `getBoundingClientRect` in the page itself.
//!
//! [`Browser::start`] returns `None` (and says why) when Chromium or its driver is missing, so a developer
//! without them can still run the suite; with `CI=true` a missing browser is a failure, never a skip. The
//! driver and every browser process it starts share one process group, killed when the `Browser` drops.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

/// How long the driver may take to come up, and a page or a condition to settle.
const DEADLINE: Duration = Duration::from_secs(30);
/// WebDriver's key for an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    /// Dropped last: the session's processes die with it.
    _driver: Driver,
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`
    session: String,
    _profile: tempfile::TempDir,
}

/// A page element, as the driver names it.
pub struct Element(String);

/// The driver process (leader of its own process group), killed with its browsers when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `name` from `$ENV_VAR` or `PATH`.
fn find(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

impl Browser {
    /// A fresh headless browser with an empty profile, or `None` outside CI when Chromium is not installed.
    pub async fn start() -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (
            find("CHROMIUM", "chromium"),
            find("CHROMEDRIVER", "chromedriver"),
        ) else {
            let hint =
                "`apt-get install chromium chromium-driver` (or set $CHROMIUM and $CHROMEDRIVER)";
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("this test needs a real browser and CI=true: {hint}");
            }
            eprintln!("SKIPPED: no chromium/chromedriver on PATH; {hint}");
            return None;
        };
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let driver = Driver(
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display())),
        );
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(DEADLINE)
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + DEADLINE;
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(response) => response.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if ready.is_some_and(|s| s["value"]["ready"] == true) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not come up on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    // Root (as in CI containers) cannot use Chromium's sandbox.
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-proxy-server",
                    "--disable-crash-reporter",
                    "--disable-breakpad",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let created = post(&http, &format!("{base}/session"), &capabilities).await;
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver started no session: {created}"));
        Some(Browser {
            session: format!("{base}/session/{id}"),
            _driver: driver,
            http,
            _profile: profile,
        })
    }

    /// Ends the session: Chromium exits and the driver reaps it (dropping kills them instead).
    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }

    /// Loads `url` and waits until the page (and its stylesheets) have loaded.
    pub async fn goto(&self, url: &str) {
        self.command("url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns what it returns.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.command("execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Polls `script` until it returns something other than `null` or `false`, and returns that.
    pub async fn wait_for(&self, script: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let value = self.execute(script, json!([])).await;
            if !value.is_null() && value != false {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for `{script}`"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` (with `args`) until `check` makes something of what it returns, and returns that; at the
    /// deadline, fails naming `what` and what the page showed last.
    pub async fn wait_until<T>(
        &self,
        what: &str,
        script: &str,
        args: Value,
        check: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let value = self.execute(script, args.clone()).await;
            if let Some(done) = check(&value) {
                return done;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the page shows {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching a CSS selector.
    pub async fn find(&self, selector: &str) -> Element {
        let found = self
            .command(
                "element",
                json!({ "using": "css selector", "value": selector }),
            )
            .await;
        match found[ELEMENT].as_str() {
            Some(id) => Element(id.to_owned()),
            None => panic!("no element matches `{selector}`: {found}"),
        }
    }

    pub async fn click(&self, element: &Element) {
        self.command(&format!("element/{}/click", element.0), json!({}))
            .await;
    }

    pub async fn type_into(&self, element: &Element, text: &str) {
        self.command(
            &format!("element/{}/value", element.0),
            json!({ "text": text }),
        )
        .await;
    }

    /// A PNG of the window as it is now, written to `path` (and returned).
    pub async fn screenshot(&self, path: &std::path::Path) -> Vec<u8> {
        use base64::Engine;
        let url = format!("{}/screenshot", self.session);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {url}: {e}"));
        let answer: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {url}: unreadable answer: {e}"));
        let encoded = answer["value"]
            .as_str()
            .unwrap_or_else(|| panic!("WebDriver {url} gave no screenshot: {answer}"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_else(|e| panic!("WebDriver {url}: the screenshot is not base64: {e}"));
        std::fs::write(path, &png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        png
    }

    /// A WebDriver command of this session; panics with the driver's message when it fails.
    async fn command(&self, path: &str, body: Value) -> Value {
        post(&self.http, &format!("{}/{path}", self.session), &body).await
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("WebDriver {url}: {e}"));
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("WebDriver {url}: unreadable answer: {e}"));
    assert!(status.is_success(), "WebDriver {url} failed: {answer}");
    answer["value"].clone()
}
