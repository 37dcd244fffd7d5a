//! Headless Chromium for a test: launched with a throw-away profile, one page
//! driven over the DevTools protocol (navigate, evaluate, wait for a predicate,
//! click, type, set files, screenshot), the page's request log and uncaught
//! exceptions, and steps that leave a screenshot behind when they fail.

use crate::cdp::{Cdp, Event};
use anyhow::{Context, Result, bail};
use futures_util::FutureExt;
use serde_json::{Value, json};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a wait for the page may take: generous, for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(100);

const MISSING: &str = "headless Chromium is needed for the console tests: \
    apt-get install chromium (or set RESHOST_CHROMIUM)";

/// A running headless Chromium; killed (its whole process group) on drop, also
/// when the test panics.
pub struct Browser {
    child: Child,
    cdp: Cdp,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn launch() -> Result<Browser> {
        let program =
            std::env::var("RESHOST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        if !Path::new(&program).exists() {
            bail!("{MISSING}: {program} does not exist");
        }
        let profile = tempfile::tempdir()?;
        let mut child = Command::new(&program)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            // Its own group, so Drop can kill the renderers and helpers along with it.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("{MISSING}: could not start {program}"))?;
        let stderr = child.stderr.take().context("chromium's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut said = Vec::new();
        let listening = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_owned());
                }
                said.push(line);
            }
            None
        })
        .await;
        let endpoint = match listening {
            Ok(Some(url)) => url,
            Ok(None) => bail!(
                "{program} exited before listening; it said:\n{}",
                said.join("\n")
            ),
            Err(_) => bail!(
                "{program} did not listen within {WAIT:?}; it said:\n{}",
                said.join("\n")
            ),
        };
        // Keep draining its stderr so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let cdp = Cdp::connect(&endpoint).await?;
        Ok(Browser {
            child,
            cdp,
            _profile: profile,
        })
    }

    /// A new page (tab) at about:blank, with the page, runtime, network and log
    /// domains on, so its requests and exceptions are recorded from the start.
    pub async fn page(&self) -> Result<Page> {
        let target = self
            .cdp
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let attached = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .context("no sessionId")?
            .to_owned();
        let page = Page {
            cdp: self.cdp.clone(),
            session,
        };
        for domain in ["Page", "Runtime", "Network", "Log", "DOM"] {
            page.call(&format!("{domain}.enable"), json!({})).await?;
        }
        Ok(page)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on the process group this browser leads.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
        let _ = self.child.start_kill();
    }
}

/// One page of the browser; cheap to clone.
#[derive(Clone)]
pub struct Page {
    cdp: Cdp,
    session: String,
}

/// `s` as a JavaScript string literal.
pub fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

impl Page {
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.cdp.call(Some(&self.session), method, params).await
    }

    fn mine(&self, event: &Event) -> bool {
        event.session.as_deref() == Some(self.session.as_str())
    }

    /// Navigates and waits for the new document's load event.
    pub async fn navigate(&self, url: &str) -> Result<()> {
        let mark = self.cdp.event_count();
        let answer = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(error) = answer["errorText"].as_str() {
            bail!("navigating to {url}: {error}");
        }
        self.loaded(mark, url).await
    }

    /// Loads the page again (a new document, as the reload button does) and
    /// waits for its load event.
    pub async fn reload(&self) -> Result<()> {
        let mark = self.cdp.event_count();
        self.call("Page.reload", json!({})).await?;
        self.loaded(mark, "the reloaded page").await
    }

    /// Waits for a load event after event `mark`.
    async fn loaded(&self, mark: usize, what: &str) -> Result<()> {
        self.cdp
            .wait_event(mark, WAIT, &format!("load of {what}"), |e| {
                self.mine(e) && e.method == "Page.loadEventFired"
            })
            .await?;
        Ok(())
    }

    /// Evaluates `expression` (promises awaited) and returns its value as JSON; a
    /// thrown exception is an `Err` with its description.
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true,
                       "returnByValue": true, "userGesture": true}),
            )
            .await?;
        if let Some(details) = answer.get("exceptionDetails") {
            let why = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("exception");
            bail!("{why}\n  in: {expression}");
        }
        Ok(answer["result"]["value"].clone())
    }

    /// Polls `expression` until it is truthy (returning its value), for up to
    /// `WAIT`; the failure names `what` and shows the last value and the page.
    pub async fn wait_for(&self, what: &str, expression: &str) -> Result<Value> {
        self.wait_for_within(WAIT, what, expression).await
    }

    pub async fn wait_for_within(
        &self,
        within: Duration,
        what: &str,
        expression: &str,
    ) -> Result<Value> {
        let probe =
            format!("(async () => {{ const v = await ({expression}); return [!!v, v]; }})()");
        let deadline = Instant::now() + within;
        loop {
            let last = match self.eval(&probe).await {
                Ok(Value::Array(pair)) if pair[0] == true => return Ok(pair[1].clone()),
                Ok(value) => format!("value {}", value.get(1).unwrap_or(&value)),
                // A navigation in progress destroys the context: look again.
                Err(e) => format!("error {e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {within:?} waiting for {what}\n  predicate: {expression}\n  \
                     last: {last}\n  page: {}",
                    self.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The page's URL and the start of its visible text, for failure messages.
    pub async fn describe(&self) -> String {
        let expression = "location.href + '\\n' + (document.body ? document.body.innerText : '')";
        match self.eval(expression).await {
            Ok(Value::String(s)) => s.chars().take(2000).collect(),
            Ok(other) => other.to_string(),
            Err(e) => format!("(not readable: {e:#})"),
        }
    }

    /// Waits for an element matching `selector` that is visible and enabled, as a
    /// user would before acting on it.
    pub async fn wait_usable(&self, selector: &str) -> Result<()> {
        let expression = format!(
            "(() => {{ const el = document.querySelector({}); \
             return !!el && el.getClientRects().length > 0 && !el.disabled; }})()",
            js(selector)
        );
        self.wait_for(
            &format!("{selector} to be visible and enabled"),
            &expression,
        )
        .await
        .map(drop)
    }

    /// Clicks the element (once it is usable).
    pub async fn click(&self, selector: &str) -> Result<()> {
        self.wait_usable(selector).await?;
        self.eval(&format!("document.querySelector({}).click()", js(selector)))
            .await
            .map(drop)
    }

    /// Focuses the element and selects what it holds.
    pub async fn focus(&self, selector: &str) -> Result<()> {
        self.wait_usable(selector).await?;
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({}); el.focus(); \
             if (el.select) el.select(); }})()",
            js(selector)
        ))
        .await
        .map(drop)
    }

    /// Replaces an input's or textarea's content by typing `text` into it (real
    /// input events), then tells it `change` as leaving the field would.
    pub async fn fill(&self, selector: &str, text: &str) -> Result<()> {
        self.focus(selector).await?;
        if text.is_empty() {
            self.call(
                "Input.dispatchKeyEvent",
                key_event("keyDown", "Delete", 46, None),
            )
            .await?;
            self.call(
                "Input.dispatchKeyEvent",
                key_event("keyUp", "Delete", 46, None),
            )
            .await?;
        } else {
            self.insert_text(text).await?;
        }
        let value = self
            .eval(&format!(
                "(() => {{ const el = document.querySelector({}); \
                 el.dispatchEvent(new Event('change', {{bubbles: true}})); return el.value; }})()",
                js(selector)
            ))
            .await?;
        if value != text {
            bail!("{selector} holds {value} after typing {text:?}");
        }
        Ok(())
    }

    /// Chooses `value` in a `<select>`, as a user picking the option would.
    pub async fn select(&self, selector: &str, value: &str) -> Result<()> {
        self.wait_usable(selector).await?;
        let option = format!("{selector} option[value={}]", js(value));
        self.wait_for(
            &format!("option {value:?} in {selector}"),
            &format!("document.querySelector({})", js(&option)),
        )
        .await?;
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({}); el.value = {}; \
             el.dispatchEvent(new Event('input', {{bubbles: true}})); \
             el.dispatchEvent(new Event('change', {{bubbles: true}})); }})()",
            js(selector),
            js(value)
        ))
        .await
        .map(drop)
    }

    /// Types `text` into whatever has the focus, as an input method would.
    pub async fn insert_text(&self, text: &str) -> Result<()> {
        self.call("Input.insertText", json!({"text": text}))
            .await
            .map(drop)
    }

    /// Presses and releases Enter on whatever has the focus.
    pub async fn press_enter(&self) -> Result<()> {
        self.call(
            "Input.dispatchKeyEvent",
            key_event("keyDown", "Enter", 13, Some("\r")),
        )
        .await?;
        self.call(
            "Input.dispatchKeyEvent",
            key_event("keyUp", "Enter", 13, None),
        )
        .await
        .map(drop)
    }

    /// Gives a file input these files (as choosing them in the dialog would: the
    /// input gets `input` and `change`).
    pub async fn set_files(&self, selector: &str, files: &[&Path]) -> Result<()> {
        self.wait_for(
            &format!("{selector} to exist"),
            &format!("document.querySelector({})", js(selector)),
        )
        .await?;
        let document = self.call("DOM.getDocument", json!({"depth": 0})).await?;
        let found = self
            .call(
                "DOM.querySelector",
                json!({"nodeId": document["root"]["nodeId"], "selector": selector}),
            )
            .await?;
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.call(
            "DOM.setFileInputFiles",
            json!({"nodeId": found["nodeId"], "files": files}),
        )
        .await
        .map(drop)
    }

    /// The element's `textContent` (`None` when there is no such element).
    pub async fn text(&self, selector: &str) -> Result<Option<String>> {
        let value = self
            .eval(&format!(
                "document.querySelector({})?.textContent ?? null",
                js(selector)
            ))
            .await?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// Waits until the element's trimmed text satisfies the JS predicate `test`
    /// (an expression over `t`); returns that text.
    pub async fn wait_text(&self, selector: &str, what: &str, test: &str) -> Result<String> {
        let expression = format!(
            "(() => {{ const el = document.querySelector({}); if (!el) return null; \
             const t = el.textContent.trim(); return ({test}) ? t : null; }})()",
            js(selector)
        );
        let value = self
            .wait_for(&format!("{selector} {what}"), &expression)
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Lets downloads through, saved into `dir` under their own names (headless
    /// Chromium denies them by default).
    pub async fn allow_downloads(&self, dir: &Path) -> Result<()> {
        let params = json!({"behavior": "allow", "downloadPath": dir.display().to_string()});
        self.cdp
            .call(None, "Browser.setDownloadBehavior", params)
            .await
            .map(drop)
    }

    /// Writes a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let data = shot["data"].as_str().context("no screenshot data")?;
        let bytes = crate::common::b64_decode(data).context("screenshot is not base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)?;
        Ok(())
    }

    /// Every URL the page requested (documents, scripts, styles, fonts, fetches,
    /// event streams) or opened a WebSocket to, in order.
    pub fn requests(&self) -> Vec<String> {
        self.cdp
            .events_since(0)
            .iter()
            .filter(|e| self.mine(e))
            .filter_map(|e| match e.method.as_str() {
                "Network.requestWillBeSent" => e.params["request"]["url"].as_str(),
                "Network.webSocketCreated" => e.params["url"].as_str(),
                _ => None,
            })
            .map(str::to_owned)
            .collect()
    }

    /// The page's uncaught exceptions (unhandled rejections included), from event
    /// index `from` on.
    pub fn exceptions_since(&self, from: usize) -> Vec<String> {
        self.cdp
            .events_since(from)
            .iter()
            .filter(|e| self.mine(e) && e.method == "Runtime.exceptionThrown")
            .map(|e| {
                let details = &e.params["exceptionDetails"];
                let text = details["exception"]["description"]
                    .as_str()
                    .or(details["text"].as_str())
                    .unwrap_or("exception");
                format!("{text} (at {}:{})", details["url"], details["lineNumber"])
            })
            .collect()
    }

    /// `console.error` calls and error log entries (failed loads included).
    pub fn console_errors(&self) -> Vec<String> {
        self.cdp
            .events_since(0)
            .iter()
            .filter(|e| self.mine(e))
            .filter_map(|e| match e.method.as_str() {
                "Runtime.consoleAPICalled" if e.params["type"] == "error" => Some(
                    e.params["args"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            a["value"]
                                .as_str()
                                .map(str::to_owned)
                                .or_else(|| a["description"].as_str().map(str::to_owned))
                                .unwrap_or_else(|| a["value"].to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                "Log.entryAdded" if e.params["entry"]["level"] == "error" => Some(format!(
                    "{} {}",
                    e.params["entry"]["text"].as_str().unwrap_or_default(),
                    e.params["entry"]["url"].as_str().unwrap_or_default()
                )),
                _ => None,
            })
            .collect()
    }

    pub fn event_count(&self) -> usize {
        self.cdp.event_count()
    }
}

fn key_event(kind: &str, key: &str, code: u32, text: Option<&str>) -> Value {
    let mut event = json!({"type": kind, "key": key, "code": key,
                           "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code});
    if let Some(text) = text {
        event["text"] = json!(text);
        event["unmodifiedText"] = json!(text);
    }
    event
}

/// Where failing steps leave their screenshots: `<target dir>/browser-screenshots`.
pub fn screenshot_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser-screenshots")
}

/// A test in the browser: its page, and its steps, each of which leaves a
/// screenshot when it fails (or, with `RESHOST_BROWSER_SCREENSHOTS=all`, always).
pub struct BrowserTest {
    pub page: Page,
    name: &'static str,
    steps: AtomicUsize,
    /// Exceptions before this event index were already reported.
    checked: AtomicUsize,
    _browser: Browser,
}

impl BrowserTest {
    pub async fn start(name: &'static str) -> BrowserTest {
        let dir = screenshot_root().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let browser = match Browser::launch().await {
            Ok(browser) => browser,
            Err(e) => panic!("{e:#}"),
        };
        let page = browser.page().await.unwrap();
        BrowserTest {
            page,
            name,
            steps: AtomicUsize::new(0),
            checked: AtomicUsize::new(0),
            _browser: browser,
        }
    }

    /// Runs one step; on an error, a panic, a time-out or an uncaught exception in
    /// the page, screenshots the page and fails the test naming the screenshot.
    pub async fn step<T>(&self, name: &str, body: impl Future<Output = Result<T>>) -> T {
        let n = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let shot = screenshot_root()
            .join(self.name)
            .join(format!("{n:02}-{file}.png"));
        let outcome = tokio::time::timeout(
            Duration::from_secs(180),
            AssertUnwindSafe(body).catch_unwind(),
        )
        .await;
        let error = match outcome {
            Err(_) => "the step did not finish within 180 s".to_owned(),
            Ok(Err(panic)) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panicked".to_owned()),
            Ok(Ok(Err(e))) => format!("{e:#}"),
            Ok(Ok(Ok(value))) => {
                let exceptions = self.new_exceptions();
                if exceptions.is_empty() {
                    if std::env::var("RESHOST_BROWSER_SCREENSHOTS").as_deref() == Ok("all") {
                        let _ = self.page.screenshot(&shot).await;
                    }
                    return value;
                }
                format!(
                    "uncaught exceptions in the page:\n  {}",
                    exceptions.join("\n  ")
                )
            }
        };
        let saved = match self.page.screenshot(&shot).await {
            Ok(()) => format!("screenshot: {}", shot.display()),
            Err(e) => format!("no screenshot ({e:#})"),
        };
        let exceptions = self.page.exceptions_since(0);
        let console = self.page.console_errors();
        panic!(
            "{}: step {n} \"{name}\" failed: {error}\n{saved}\nuncaught exceptions: {exceptions:#?}\n\
             console errors: {console:#?}",
            self.name
        );
    }

    /// Uncaught exceptions since the last look.
    fn new_exceptions(&self) -> Vec<String> {
        let now = self.page.event_count();
        let from = self.checked.swap(now, Ordering::Relaxed);
        self.page.exceptions_since(from)
    }

    /// The last step: nothing the page requested came from anywhere but `base`
    /// (the server, `http://127.0.0.1:PORT`) or from itself (`data:`, `blob:`).
    pub async fn assert_all_requests_on(&self, base: &str) {
        let ws = base.replacen("http://", "ws://", 1);
        let requests = self.page.requests();
        self.step("requests stay on the server", async {
            let strays: Vec<&String> = requests
                .iter()
                .filter(|url| {
                    !(url.starts_with(&format!("{base}/"))
                        || url.starts_with(&format!("{ws}/"))
                        || url.starts_with("data:")
                        || url.starts_with("blob:")
                        || url.as_str() == "about:blank")
                })
                .collect();
            if !strays.is_empty() {
                bail!("requests off the server's origin {base}: {strays:#?}");
            }
            if requests.is_empty() {
                bail!("no request was recorded at all");
            }
            Ok(())
        })
        .await;
    }
}
