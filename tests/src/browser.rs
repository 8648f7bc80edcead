//! Real-browser testing: a `chromedriver` process per test (on a port it picks itself), headless
//! Chromium sessions driven over W3C WebDriver (plain JSON over HTTP with reqwest), and a TCP
//! `Proxy` that puts a browser behind a connection the test can cut, to drop its sockets for real.
//!
//! Every wait polls a condition in the page with the harness `DEADLINE`; nothing sleeps blindly.
//! A missing chromedriver fails the test with the install command, it never skips. Screenshots go
//! to `artifacts_dir()`: `$CARGO_TARGET_DIR/browser-artifacts` (or `target/browser-artifacts`).

use crate::DEADLINE;
use base64::Engine;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::AbortHandle;

/// Chromium's fake media devices: a microphone (and camera) that exists, gives a test tone, and
/// is allowed without asking (`Driver::browser_with`).
pub const FAKE_MEDIA: [&str; 2] = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"];

/// Where chromedriver is looked for (`CHROMEDRIVER` overrides).
pub fn chromedriver_path() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

/// Where tests save screenshots.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("create the artifacts dir");
    dir
}

/// A running chromedriver; killed (with the browsers it started) when dropped.
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Driver {
    /// Starts chromedriver; panics with the install command when it is missing.
    pub async fn start() -> Driver {
        let path = chromedriver_path();
        assert!(
            std::path::Path::new(&path).exists(),
            "chromedriver is missing at {path}: the browser tests need Debian's `chromium` and \
             `chromium-driver` (apt-get install chromium chromium-driver; .ci/run does it), or set CHROMEDRIVER"
        );
        // chromedriver's own `--port=0` sometimes picks a port in use and exits: choose a free
        // port here and try again with another when it still loses a race.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
            let mut child = Command::new(&path)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .expect("spawn chromedriver");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            let started = tokio::time::timeout(DEADLINE, async {
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains("started successfully") {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or(false);
            if started {
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Driver { child, url: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() };
            }
            let _ = child.start_kill();
        }
        panic!("chromedriver did not start");
    }

    /// A new headless Chromium with its own profile (cookies, storage), at `width`×`height`.
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
        self.browser_with(width, height, &[]).await
    }

    /// `browser`, with more Chromium switches (e.g. `FAKE_MEDIA`: a microphone that plays a tone).
    pub async fn browser_with(&self, width: u32, height: u32, extra_args: &[&str]) -> Browser {
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
        ]
        .map(String::from)
        .into();
        args.push(format!("--window-size={width},{height}"));
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": args,
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = wd(&self.http, reqwest::Method::POST, &format!("{}/session", self.url), Some(caps)).await;
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        let browser = Browser { http: self.http.clone(), url: format!("{}/session/{id}", self.url) };
        // The viewport itself is `width`×`height` (the window size includes the browser's frame).
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        browser.cdp("Emulation.setDeviceMetricsOverride", metrics).await;
        browser
    }
}

impl Drop for Driver {
    /// Kills chromedriver's whole process group: the Chromium processes it started go with it.
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
    }
}

async fn wd(http: &reqwest::Client, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
    let mut req = http.request(method.clone(), url);
    if let Some(b) = body {
        req = req.json(&b);
    } else if method == reqwest::Method::POST {
        req = req.json(&json!({}));
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("webdriver {url}: {e}"));
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "webdriver {method} {url} answered {status}: {v}");
    v["value"].clone()
}

/// One browser session (a separate profile: its own cookies and storage).
pub struct Browser {
    http: reqwest::Client,
    url: String,
}

impl Browser {
    async fn post(&self, path: &str, body: Value) -> Value {
        wd(&self.http, reqwest::Method::POST, &format!("{}{path}", self.url), Some(body)).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn refresh(&self) {
        self.post("/refresh", json!({})).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its value.
    pub async fn exec(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args})).await
    }

    /// Waits until `script` returns something other than null/false/undefined, and returns it.
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let v = self.exec(script, args.clone()).await;
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let logs = self.console().await;
                panic!("timed out waiting for {what} (last value {v}); browser console: {logs}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an element matching `css` that is displayed.
    pub async fn wait_visible(&self, css: &str) {
        let script = "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0;";
        self.wait_for(&format!("{css} to be visible"), script, json!([css])).await;
    }

    async fn element(&self, css: &str) -> String {
        self.wait_visible(css).await;
        let v = self.post("/element", json!({"using": "css selector", "value": css})).await;
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element id").to_owned()
    }

    /// Clicks the element as a user would (WebDriver's pointer click). When the page replaced
    /// the element between finding and clicking it (a list drawn again as results come in), the
    /// one shown now is found and clicked, as a user clicks what is on the screen.
    pub async fn click(&self, css: &str) {
        for _ in 0..20 {
            let id = self.element(css).await;
            let url = format!("{}/element/{id}/click", self.url);
            let resp =
                self.http.post(&url).json(&json!({})).send().await.unwrap_or_else(|e| panic!("webdriver {url}: {e}"));
            let status = resp.status();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return;
            }
            assert_eq!(v["value"]["error"], "stale element reference", "webdriver POST {url} answered {status}: {v}");
        }
        panic!("{css} was replaced 20 times in a row before it could be clicked");
    }

    /// Types `text` into the element as key presses (`\u{E007}` is Enter, `\u{E008}` Shift).
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/value"), json!({"text": text})).await;
    }

    /// Chooses the files `paths` in the file input `css` (shown or not), as the file dialog would.
    pub async fn choose_files(&self, css: &str, paths: &[&std::path::Path]) {
        let v = self.post("/element", json!({"using": "css selector", "value": css})).await;
        let id = v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element id").to_owned();
        let text: Vec<String> = paths.iter().map(|p| p.to_str().expect("a UTF-8 path").to_owned()).collect();
        self.post(&format!("/element/{id}/value"), json!({"text": text.join("\n")})).await;
    }

    /// Presses `key` (a WebDriver key: `\u{E00C}` is Escape) in the focused element.
    pub async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "kb", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        self.post("/actions", actions).await;
        wd(&self.http, reqwest::Method::DELETE, &format!("{}/actions", self.url), None).await;
    }

    /// Empties an input or textarea (WebDriver's element clear).
    pub async fn clear(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
    }

    /// Presses Shift+Enter in the focused element.
    pub async fn shift_enter(&self) {
        let down = |k: &str| json!({"type": "keyDown", "value": k});
        let up = |k: &str| json!({"type": "keyUp", "value": k});
        let actions = json!({"actions": [{"type": "key", "id": "kb", "actions": [
            down("\u{E008}"), down("\u{E007}"), up("\u{E007}"), up("\u{E008}")]}]});
        self.post("/actions", actions).await;
        wd(&self.http, reqwest::Method::DELETE, &format!("{}/actions", self.url), None).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let v = self
            .exec("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([css]))
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// A Chrome DevTools command (e.g. device emulation), through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({"cmd": cmd, "params": params})).await
    }

    /// Emulates a phone: `width`×`height` CSS pixels, touch, device scale 3.
    pub async fn emulate_phone(&self, width: u32, height: u32) {
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 3, "mobile": true});
        self.cdp("Emulation.setDeviceMetricsOverride", metrics).await;
        self.cdp("Emulation.setTouchEmulationEnabled", json!({"enabled": true, "maxTouchPoints": 5})).await;
    }

    /// Emulates the browser's locale (`en-US`, `de-DE`): its language, date and number formats.
    /// Call it before `goto`: the app reads the locale when it loads.
    pub async fn locale(&self, locale: &str) {
        self.cdp("Emulation.setLocaleOverride", json!({"locale": locale})).await;
    }

    /// Emulates the system's colour scheme (`light` or `dark`).
    pub async fn color_scheme(&self, scheme: &str) {
        let media = json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]});
        self.cdp("Emulation.setEmulatedMedia", media).await;
    }

    /// Puts a recorder in place of the page's `Notification` (permission granted) in every page
    /// this browser loads from now on: call it before `goto`. Headless Chromium shows no
    /// notifications, so the test reads what the app asked for with `notifications`.
    pub async fn record_notifications(&self) {
        let source = "(() => { const shown = []; \
            class RecordedNotification extends EventTarget { \
              constructor(title, options = {}) { super(); this.title = title; this.body = options.body ?? ''; \
                this.tag = options.tag ?? ''; shown.push({ title: this.title, body: this.body, tag: this.tag }); } \
              close() {} \
              static get permission() { return 'granted'; } \
              static requestPermission() { return Promise.resolve('granted'); } } \
            Object.defineProperty(window, 'Notification', { value: RecordedNotification, configurable: true, writable: true }); \
            Object.defineProperty(window, '__notifications', { value: shown }); })();";
        self.cdp("Page.addScriptToEvaluateOnNewDocument", json!({"source": source})).await;
    }

    /// The notifications the page made since it loaded (`record_notifications`): `{title, body, tag}`.
    pub async fn notifications(&self) -> Vec<Value> {
        let v = self.exec("return window.__notifications ?? null;", json!([])).await;
        v.as_array().cloned().expect("record_notifications was called before the page loaded")
    }

    /// Saves a PNG of the viewport under `artifacts_dir()` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = wd(&self.http, reqwest::Method::GET, &format!("{}/screenshot", self.url), None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("base64 png")).expect("png");
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// The browser console so far (shown when a wait fails).
    pub async fn console(&self) -> Value {
        let r = self.http.post(format!("{}/se/log", self.url)).json(&json!({"type": "browser"})).send().await.ok();
        match r {
            Some(r) => r.json::<Value>().await.map(|v| v["value"].clone()).unwrap_or(Value::Null),
            None => Value::Null,
        }
    }

    /// Panics on any console error or warning since the last look (a CSP violation is one), except
    /// those containing one of `allowed` (e.g. a socket the test itself cut).
    pub async fn assert_clean_console(&self, allowed: &[&str]) {
        let logs = self.console().await;
        let bad: Vec<&Value> = logs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["level"] == "SEVERE" || l["level"] == "WARNING")
            .filter(|l| !allowed.iter().any(|a| l["message"].as_str().unwrap_or_default().contains(a)))
            .collect();
        assert!(bad.is_empty(), "the console shows errors: {bad:?}");
    }

    /// Ends the session and closes its browser.
    pub async fn quit(self) {
        wd(&self.http, reqwest::Method::DELETE, &self.url, None).await;
    }
}

/// A TCP forwarder in front of a node. `cut` drops every open connection and refuses new ones
/// (accepts and closes them at once) until `restore`, which is what a browser sees of a network
/// that goes away and comes back.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        Proxy::start_on(TcpListener::bind("127.0.0.1:0").await.expect("bind port 0"), target)
    }

    /// `start`, on a listener bound beforehand (so the node can be told the proxy's origin).
    pub fn start_on(listener: TcpListener, target: std::net::SocketAddr) -> Proxy {
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut list = conns2.lock().expect("lock");
                list.retain(|h| !h.is_finished());
                list.push(task.abort_handle());
            }
        })
        .abort_handle();
        Proxy { addr, up, conns, accept }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for h in self.conns.lock().expect("lock").drain(..) {
            h.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
