//! A real headless Chromium, driven over WebDriver (chromedriver + fantoccini), for testing the
//! web dashboard as a browser runs it. Each [`Browser`] has a chromedriver, a Chromium and a
//! temporary directory of its own, so tests can run them in parallel. The chromedriver HTTP
//! calls use awc, so tests need an actix runtime (`#[actix_web::test]`).
#![allow(dead_code)] // each user (test binaries, the web_page bench) needs a different part

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs chromedriver with the script's arguments and kills the process group when chromedriver
/// exits or stdin closes.
const WATCHDOG: &str = r#"(chromedriver "$@"; kill -KILL 0) & read -r _; kill -KILL 0"#;

/// A headless Chromium with its own chromedriver; both are killed when it is dropped.
pub struct Browser {
    client: Client,
    session: String,
    /// The browser's SEVERE console entries seen so far: chromedriver hands each out only once.
    console_errors: Mutex<Vec<String>>,
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session with a fresh profile.
    pub async fn start() -> Browser {
        let driver = Driver::start().await;
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,900",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.push(format!(
            "--user-data-dir={}",
            driver.dir.join("profile").display()
        ));
        let mut options = json!({ "args": args });
        if Path::new(CHROMIUM).exists() {
            options["binary"] = json!(CHROMIUM);
        }
        let capabilities = json!({
            "goog:chromeOptions": options,
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url(""))
            .await
            .unwrap_or_else(|e| panic!("a WebDriver session from chromedriver: {e}"));
        let session = client
            .session_id()
            .await
            .expect("the session id")
            .expect("a session id");
        Browser {
            client,
            session,
            console_errors: Mutex::new(Vec::new()),
            driver,
        }
    }

    /// The underlying WebDriver client, for anything the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Loads `url` and waits for its `load` event.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// The rendered text of the first element matching `css` (hidden elements have none).
    pub async fn text_of(&self, css: &str) -> String {
        for _ in 0..5 {
            match self.try_text_of(css).await {
                Ok(text) => return text,
                // Redrawn between finding and reading (see `click`).
                Err(e) if e.to_string().contains("stale element") => continue,
                Err(e) => panic!("text of {css:?}: {e}"),
            }
        }
        panic!("text of {css:?}: the element was replaced five times over");
    }

    /// Polls the text of `css` every 100 ms until `pred` accepts it; on timeout, saves a
    /// screenshot and panics with the last text seen.
    pub async fn wait_for_text(
        &self,
        css: &str,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.try_text_of(css).await;
            if let Ok(text) = &seen {
                if pred(text) {
                    return text.clone();
                }
            }
            if Instant::now() >= deadline {
                let name = format!("{}-timeout-{css}", test_name());
                let shot = self.screenshot(&name).await;
                let seen = match seen {
                    Ok(text) => format!("last text {text:?}"),
                    Err(e) => format!("no text ({e})"),
                };
                panic!(
                    "{css:?}: the text was not as expected within {within:?}; {seen}; screenshot {}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css:?}: {e}"))
            .len()
    }

    /// Clicks the first element matching `css`, as a user would (it must be visible). A page
    /// that redraws (the node table every 2 s) can replace the element between finding and
    /// clicking it: then it is found again.
    pub async fn click(&self, css: &str) {
        for _ in 0..5 {
            match self.find(css).await.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") => continue,
                Err(e) => panic!("click {css:?}: {e}"),
            }
        }
        panic!("click {css:?}: the element was replaced five times over");
    }

    /// Replaces the value of the input matching `css` by typing `text`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css:?}: {e}"));
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css:?}: {e}"));
    }

    /// Runs `script` in the page (it gives its result with `return ...`).
    pub async fn js<T: DeserializeOwned>(&self, script: &str) -> T {
        let value = self
            .client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {script:?}: {e}"));
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("script {script:?} returned {value}: {e}"))
    }

    /// Saves the viewport as `<target dir>/screenshots/<name>.png`, to look at after a run.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join(format!("{}.png", file_name(name)));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// The page's own error log (`window.__tartErrors`, if it defines one), then every SEVERE
    /// browser console entry so far (uncaught errors, `console.error`, failed loads).
    pub async fn page_errors(&self) -> Vec<String> {
        let mut errors: Vec<String> = self
            .js("return Array.isArray(window.__tartErrors) ? window.__tartErrors.map(String) : [];")
            .await;
        let url = self
            .driver
            .url(&format!("/session/{}/se/log", self.session));
        let mut response = awc::Client::new()
            .post(&url)
            .timeout(Duration::from_secs(30))
            .send_json(&json!({ "type": "browser" }))
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let body: Value = response
            .json()
            .limit(64 << 20)
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let entries = match &body["value"] {
            Value::Array(entries) if response.status().is_success() => entries,
            _ => panic!("POST {url}: {} {body}", response.status()),
        };
        let mut console = self.console_errors.lock().unwrap();
        console.extend(
            entries
                .iter()
                .filter(|entry| entry["level"] == "SEVERE")
                .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned()),
        );
        errors.extend(console.iter().cloned());
        errors
    }

    /// Ends the WebDriver session (Chromium quits), then stops chromedriver.
    pub async fn close(self) {
        self.client
            .close()
            .await
            .unwrap_or_else(|e| panic!("closing the WebDriver session: {e}"));
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css:?}: {e}"))
    }

    async fn try_text_of(&self, css: &str) -> Result<String, fantoccini::error::CmdError> {
        self.client.find(Locator::Css(css)).await?.text().await
    }
}

/// A chromedriver in a process group of its own that its Chromium joins, and the directory for
/// the profile and temporary files of both.
struct Driver {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// Installs Debian's Chromium and chromedriver once per test process when they are missing, so
/// `cargo test` runs the browser tests on a fresh machine too (as root, like `.ci/run`).
fn install_browser_once() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let found = |tool: &str| Path::new("/usr/bin").join(tool).exists();
        if found("chromium") && found("chromedriver") {
            return;
        }
        eprintln!("installing chromium and chromium-driver for the browser tests (apt-get)");
        let installed = Command::new("sh")
            .args([
                "-c",
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                 apt-get install -y -qq chromium chromium-driver",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "could not install chromium and chromium-driver: run `apt-get install -y chromium \
             chromium-driver` as root"
        );
    });
}

impl Driver {
    async fn start() -> Driver {
        install_browser_once();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tart-browser-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        ));
        let tmp = dir.join("tmp");
        // The port is free when picked but may be taken before chromedriver binds it; then
        // chromedriver exits and another port is tried.
        for _ in 0..5 {
            std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            // A shell leads the process group: when chromedriver exits, or when its stdin closes
            // (on Drop, or when the test process dies however it dies), it kills the group.
            let child = Command::new("sh")
                .args(["-c", WATCHDOG, "sh", &format!("--port={port}")])
                // Chromium's scratch files and crash reports go to the directory removed on Drop.
                .env("TMPDIR", &tmp)
                .env("XDG_CONFIG_HOME", &dir)
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("sh");
            let mut driver = Driver {
                child,
                port,
                dir: dir.clone(),
            };
            if driver.ready(Duration::from_secs(10)).await {
                return driver;
            }
        }
        panic!("chromedriver did not start (apt-get install chromium chromium-driver)");
    }

    /// Polls `/status` until chromedriver is ready; false if it exits or takes too long.
    async fn ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let url = self.url("/status");
        while Instant::now() < deadline {
            if self
                .child
                .try_wait()
                .expect("chromedriver's status")
                .is_some()
            {
                return false;
            }
            if let Ok(mut response) = awc::Client::new()
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
            {
                if let Ok(status) = response.json::<Value>().await {
                    if status["value"]["ready"] == true {
                        return true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Driver {
    /// Closing the shell's stdin kills the process group (chromedriver and Chromium, whose crash
    /// handlers, in sessions of their own, exit with it).
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        // Killed processes may still be going away: give the removal a few tries.
        for attempt in 0..10 {
            match std::fs::remove_dir_all(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) if attempt == 9 => eprintln!("could not remove {}: {e}", self.dir.display()),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

/// `CARGO_TARGET_DIR` if set (a relative one from the package), else the package's `target`.
fn target_dir() -> PathBuf {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => package.join(dir),
        None => package.join("target"),
    }
}

/// The running test's name: libtest names each test's thread after it.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => "test".to_owned(),
    }
}

fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
