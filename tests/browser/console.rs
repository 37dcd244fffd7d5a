//! The console's flows, each in headless Chromium against its own server: sign-in,
//! uploads, editing with diffs, the shell, a terminal, the operator's slot swap, and
//! that nothing the page loads comes from anywhere but the server.

use crate::browser::{BrowserTest, WAIT, js};
use crate::common::*;
use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use reshost::testing::SlotName;
use serde_json::json;
use std::path::Path;

const ADMIN: &str = "admin-token";

/// A server with the admin API on, and a template `starter` holding `notes.txt`.
async fn server_with(template: Option<&Path>) -> Server {
    let mut extra = format!("[admin]\ntokens = [{ADMIN:?}]\n");
    if let Some(dir) = template {
        extra.push_str(&format!("[templates]\nstarter = {dir:?}\n"));
    }
    Server::with_config(&extra).await
}

/// `document.querySelector(selector)` in JS.
fn q(selector: &str) -> String {
    format!("document.querySelector({})", js(selector))
}

/// `[attr="value"]`, quoted for CSS.
fn attr(name: &str, value: &str) -> String {
    format!("[{name}={}]", js(value))
}

/// Polls `check` (a condition outside the page, e.g. on disk) until it holds.
async fn eventually(what: &str, check: impl Fn() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {WAIT:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

impl BrowserTest {
    /// Opens the console and waits for its sign-in form.
    async fn open_console(&self, server: &Server) {
        self.step("open the console", async {
            self.page.navigate(&format!("{}/", server.base)).await?;
            self.page.wait_usable("#signin-form #token").await?;
            Ok(())
        })
        .await;
    }

    /// Signs in with `token` and waits until the console names the `role`.
    async fn sign_in(&self, token: &str, role: &str) {
        self.step(&format!("sign in as {role}"), async {
            self.page.fill("#token", token).await?;
            self.page.click("#signin-submit").await?;
            self.page
                .wait_text(
                    "#whoami",
                    &format!("to say {role}"),
                    &format!("t === {}", js(role)),
                )
                .await?;
            Ok(())
        })
        .await;
    }

    /// Creates a session with the form (fields left empty when `None`); its id.
    async fn create_session(&self, template: Option<&str>, terminals: Option<&str>) -> String {
        self.step("create a session", async {
            self.page.wait_usable("#sessions-page").await?;
            self.page
                .fill("#session-metadata", r#"{"user": "ada"}"#)
                .await?;
            self.page
                .fill("#session-template", template.unwrap_or_default())
                .await?;
            self.page
                .fill("#session-terminals", terminals.unwrap_or_default())
                .await?;
            self.page.click("#session-create-submit").await?;
            // The new session is the one row of this server's list.
            let id = self
                .page
                .wait_for(
                    "the new session listed",
                    &format!(
                        "{}?.dataset.sessionId",
                        q("#sessions-list [data-session-id]")
                    ),
                )
                .await?;
            let error = self.page.text("#sessions-error").await?.unwrap_or_default();
            ensure!(error.is_empty(), "#sessions-error says {error:?}");
            Ok(id.as_str().context("session id")?.to_owned())
        })
        .await
    }

    /// Opens session `sid` from its row and shows the tab `tab`.
    async fn open_session(&self, sid: &str, tab: &str) {
        self.step("open the session", async {
            let row = format!("#sessions-list {}", attr("data-session-id", sid));
            self.page.click(&format!("{row} .session-open")).await?;
            self.page
                .wait_text(
                    "#session-id",
                    "to name the session",
                    &format!("t === {}", js(sid)),
                )
                .await?;
            // Loaded: the panels are filled once the session is read (a tab chosen
            // before that is overridden by the one the page opened on).
            self.page
                .wait_for(
                    "the session loaded",
                    &format!("{}.children.length > 0", q("#terminals-declared")),
                )
                .await?;
            Ok(())
        })
        .await;
        self.show_tab(tab).await;
    }

    /// Shows the session page's tab `tab`.
    async fn show_tab(&self, tab: &str) {
        self.step(&format!("show the {tab} tab"), async {
            self.page.click(&format!("#tab-{tab}")).await?;
            self.page
                .wait_for(
                    &format!("the {tab} tab selected"),
                    &format!(
                        "{}.getAttribute('aria-selected') === 'true'",
                        q(&format!("#tab-{tab}"))
                    ),
                )
                .await?;
            self.page.wait_usable(&format!("#panel-{tab}")).await?;
            Ok(())
        })
        .await;
    }
}

#[tokio::test]
async fn a_tenant_token_signs_in_to_its_sessions_and_a_wrong_token_shows_the_401() {
    let server = server_with(None).await;
    let mine = server.session(ACME).await;
    let theirs = server.session(GLOBEX).await;
    let (status, refused) = server.get("/v1/sessions", "not-a-token").await;
    assert_eq!(status, 401, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap().to_owned();

    let t = BrowserTest::start("sign_in").await;
    t.open_console(&server).await;
    t.step("a wrong token is refused with the 401", async {
        t.page.fill("#token", "not-a-token").await?;
        t.page.click("#signin-submit").await?;
        let shown = t
            .page
            .wait_text(
                "#signin-error",
                "to show the refusal",
                &format!("t.includes('401') && t.includes({})", js(&message)),
            )
            .await?;
        ensure!(
            t.page
                .eval(&format!("{}.getAttribute('role')", q("#signin-error")))
                .await?
                == "alert",
            "#signin-error is not role=alert"
        );
        ensure!(
            t.page
                .eval(&format!("{}.hidden", q("#signin-page")))
                .await?
                == false,
            "left the sign-in page after {shown:?}"
        );
        Ok(())
    })
    .await;
    t.sign_in(ACME, "tenant").await;
    t.step("the tenant sees its own sessions only", async {
        let row = |sid: &str| format!("#sessions-list {}", attr("data-session-id", sid));
        t.page.wait_usable(&row(&mine)).await?;
        ensure!(
            t.page.eval(&format!("!{}", q(&row(&theirs)))).await? == true,
            "another tenant's session is listed"
        );
        ensure!(
            t.page
                .eval(&format!("{}.hidden", q("#nav-operator")))
                .await?
                == true,
            "a tenant is offered the operator page"
        );
        ensure!(
            t.page
                .text("#signin-error")
                .await?
                .unwrap_or_default()
                .is_empty()
        );
        Ok(())
    })
    .await;
    t.step("signing out returns to the sign-in form", async {
        t.page.click("#signout").await?;
        t.page.wait_usable("#signin-form #token").await?;
        t.page
            .wait_for(
                "the sessions page hidden",
                &format!("{}.hidden", q("#sessions-page")),
            )
            .await?;
        Ok(())
    })
    .await;
    t.assert_all_requests_on(&server.base).await;
}

#[tokio::test]
async fn an_upload_shows_progress_reaching_100_and_lists_the_file_with_a_download_link_to_the_api()
{
    let server = server_with(None).await;
    let dir = tempfile::tempdir().unwrap();
    // Big enough that the upload reports progress along the way.
    let bytes: Vec<u8> = (0..2_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let path = dir.path().join("report.txt");
    std::fs::write(&path, &bytes).unwrap();
    let downloads = dir.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();

    let t = BrowserTest::start("upload").await;
    t.open_console(&server).await;
    t.sign_in(ACME, "tenant").await;
    let sid = t.create_session(None, None).await;
    t.open_session(&sid, "files").await;
    t.step("upload through the file input", async {
        t.page.set_files("#upload-input", &[&path]).await?;
        t.page
            .wait_text(
                "#upload-status",
                "to end with uploaded",
                "t.endsWith('uploaded')",
            )
            .await?;
        t.page
            .wait_for(
                "the progress at 100",
                &format!("{}.value === 100", q("#upload-progress")),
            )
            .await?;
        let error = t.page.text("#files-error").await?.unwrap_or_default();
        ensure!(error.is_empty(), "#files-error says {error:?}");
        Ok(())
    })
    .await;
    let (status, listed) = server.get(&files_path(&sid), ACME).await;
    assert_eq!(status, 200, "{listed}");
    let fid = listed["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["data"][0]["metadata"]["sha256"], sha256_hex(&bytes));
    t.step(
        "the file is listed with a download link to the API",
        async {
            let row = format!("#files-list {}", attr("data-file-id", &fid));
            t.page
                .wait_text(
                    &format!("{row} .file-name"),
                    "to be report.txt",
                    "t === 'report.txt'",
                )
                .await?;
            let link = format!("{row} a.file-download");
            let href = t.page.eval(&format!("{}.href", q(&link))).await?;
            let want = server.url(&format!("{}/{fid}/content", files_path(&sid)));
            ensure!(href == want.as_str(), "download link {href}, want {want}");
            ensure!(
                t.page
                    .eval(&format!("!!{}", q(&format!("{row} button.file-delete"))))
                    .await?
                    == true,
                "no delete button in the row"
            );
            Ok(())
        },
    )
    .await;
    t.step("the download link saves the uploaded bytes", async {
        t.page.allow_downloads(&downloads).await?;
        t.page
            .click(&format!(
                "#files-list {} a.file-download",
                attr("data-file-id", &fid)
            ))
            .await?;
        let saved = downloads.join("report.txt");
        eventually("report.txt downloaded", || {
            std::fs::read(&saved).ok().as_ref() == Some(&bytes)
        })
        .await
    })
    .await;
    t.step("a file dropped on the zone is uploaded and listed", async {
        t.page
            .eval(&format!(
                "(() => {{ const data = new DataTransfer(); \
                 data.items.add(new File(['dropped bytes'], 'dropped.txt', {{type: 'text/plain'}})); \
                 {}.dispatchEvent(new DragEvent('drop', {{dataTransfer: data, bubbles: true, cancelable: true}})); }})()",
                q("#upload-drop")
            ))
            .await?;
        t.page
            .wait_for(
                "dropped.txt listed",
                "[...document.querySelectorAll('#files-list .file-name')]\
                 .some(n => n.textContent === 'dropped.txt')",
            )
            .await?;
        Ok(())
    })
    .await;
    let (_, listed) = server.get(&files_path(&sid), ACME).await;
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"dropped.txt"), "{listed}");
    t.step("delete removes the file from the list and the API", async {
        let row = format!("#files-list {}", attr("data-file-id", &fid));
        t.page.click(&format!("{row} button.file-delete")).await?;
        t.page
            .wait_for("the row gone", &format!("!{}", q(&row)))
            .await?;
        Ok(())
    })
    .await;
    let (status, _) = server
        .get(&format!("{}/{fid}", files_path(&sid)), ACME)
        .await;
    assert_eq!(status, 404, "the deleted file is still there");
    t.assert_all_requests_on(&server.base).await;
}

#[tokio::test]
async fn editing_and_saving_a_file_lists_it_as_modified_with_its_diff() {
    let template = tempfile::tempdir().unwrap();
    plant(
        template.path(),
        "notes.txt",
        "first line\nsecond line\nthird line\n",
    );
    let server = server_with(Some(template.path())).await;

    let t = BrowserTest::start("edit").await;
    t.open_console(&server).await;
    t.sign_in(ACME, "tenant").await;
    let sid = t.create_session(Some("starter"), None).await;
    t.open_session(&sid, "environment").await;
    let edited = "first line\nsecond line, edited in the browser\nthird line\n";
    t.step("open notes.txt from the tree and edit it", async {
        t.page
            .click(&format!(
                "#tree {}[data-kind=file]",
                attr("data-path", "notes.txt")
            ))
            .await?;
        t.page
            .wait_text("#editor-path", "to be notes.txt", "t === 'notes.txt'")
            .await?;
        t.page
            .wait_for(
                "the file in the editor",
                &format!(
                    "{}.value === {}",
                    q("#editor"),
                    js("first line\nsecond line\nthird line\n")
                ),
            )
            .await?;
        t.page.fill("#editor", edited).await?;
        t.page.click("#editor-save").await?;
        t.page
            .wait_text("#editor-status", "to say Saved", "t === 'Saved'")
            .await?;
        Ok(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(workspace(&server, &sid).join("notes.txt")).unwrap(),
        edited
    );
    t.step("the changes list it as modified", async {
        t.page.click("#changes-refresh").await?;
        let change = format!("#changes-list {}", attr("data-path", "notes.txt"));
        t.page
            .wait_for(
                "notes.txt modified",
                &format!("{}?.dataset.status === 'modified'", q(&change)),
            )
            .await?;
        t.page.click(&change).await
    })
    .await;
    for mode in ["unified", "split"] {
        t.step(&format!("the {mode} diff shows the edit"), async {
            t.page.select("#diff-mode", mode).await?;
            let lines = |class: &str| {
                format!(
                    "[...document.querySelectorAll('#diff-view .{class}')].map(e => e.textContent)"
                )
            };
            t.page
                .wait_for(
                    "the added line",
                    &format!(
                        "{}.some(t => t.includes('second line, edited in the browser'))",
                        lines("diff-add")
                    ),
                )
                .await?;
            t.page
                .wait_for(
                    "the removed line",
                    &format!(
                        "{}.some(t => t.trim().replace(/^-/, '') === 'second line')",
                        lines("diff-del")
                    ),
                )
                .await?;
            Ok(())
        })
        .await;
    }
    t.assert_all_requests_on(&server.base).await;
}

#[tokio::test]
async fn search_finds_by_name_a_binary_file_shows_as_binary_a_refused_save_shows_the_server_s_words_and_a_session_is_deleted()
 {
    let template = tempfile::tempdir().unwrap();
    plant(template.path(), "notes.txt", "notes\n");
    plant(template.path(), "src/deep/find-me.rs", "fn main() {}\n");
    plant(template.path(), "logo.bin", [0u8, 159, 146, 150, 255, 0]);
    let server = server_with(Some(template.path())).await;
    let t = BrowserTest::start("environment").await;
    t.open_console(&server).await;
    t.sign_in(ACME, "tenant").await;
    let sid = t.create_session(Some("starter"), None).await;
    t.open_session(&sid, "environment").await;
    t.step("search by name", async {
        t.page.fill("#search-input", "find-me").await?;
        t.page.click("#search-submit").await?;
        t.page
            .wait_usable(&format!(
                "#search-results {}",
                attr("data-path", "src/deep/find-me.rs")
            ))
            .await
    })
    .await;
    t.step("a binary file is shown as binary", async {
        t.page
            .click(&format!("#tree {}", attr("data-path", "logo.bin")))
            .await?;
        t.page
            .wait_text(
                "#viewer",
                "to say binary",
                "t.includes('binary file, 6 bytes')",
            )
            .await?;
        Ok(())
    })
    .await;
    t.step("open notes.txt", async {
        t.page
            .click(&format!("#tree {}", attr("data-path", "notes.txt")))
            .await?;
        t.page
            .wait_text("#editor-path", "to be notes.txt", "t === 'notes.txt'")
            .await?;
        Ok(())
    })
    .await;
    // notes.txt becomes a directory behind the editor's back: a save is refused.
    let root = workspace(&server, &sid);
    std::fs::remove_file(root.join("notes.txt")).unwrap();
    std::fs::create_dir(root.join("notes.txt")).unwrap();
    let refused = server
        .request(Method::PUT, &fs_url(&sid, "notes.txt"), Some(ACME))
        .json(&json!({"content": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(refused).await;
    assert!(status.is_client_error(), "{status} {body}");
    let words = body["error"]["message"].as_str().unwrap().to_owned();
    t.step("the refused save shows the server's words", async {
        t.page.fill("#editor", "edited\n").await?;
        t.page.click("#editor-save").await?;
        t.page
            .wait_text(
                "#editor-status",
                "to hold the server's message",
                &format!(
                    "t.includes({}) && t.includes({})",
                    js(&words),
                    js(status.as_str())
                ),
            )
            .await?;
        Ok(())
    })
    .await;
    t.step("delete the session from the list", async {
        t.page.click("#nav-sessions").await?;
        let row = format!("#sessions-list {}", attr("data-session-id", &sid));
        t.page.click(&format!("{row} .session-delete")).await?;
        t.page
            .wait_for("the row gone", &format!("!{}", q(&row)))
            .await?;
        Ok(())
    })
    .await;
    let (status, _) = server.get(&format!("/v1/sessions/{sid}"), ACME).await;
    assert_eq!(status, 404, "the deleted session is still there");
    t.assert_all_requests_on(&server.base).await;
}

#[tokio::test]
async fn echo_hi_in_the_shell_runner_shows_hi_and_exit_0() {
    let server = server_with(None).await;
    let t = BrowserTest::start("shell").await;
    t.open_console(&server).await;
    t.sign_in(ACME, "tenant").await;
    let sid = t.create_session(None, None).await;
    t.open_session(&sid, "environment").await;
    t.step("run echo hi", async {
        t.page.fill("#shell-command", "echo hi").await?;
        t.page.click("#shell-run").await?;
        t.page
            .wait_text("#shell-exit", "to say exit 0", "t === 'exit 0'")
            .await?;
        let stdout = t.page.text("#shell-stdout").await?;
        ensure!(stdout.as_deref() == Some("hi\n"), "stdout {stdout:?}");
        let stderr = t.page.text("#shell-stderr").await?;
        ensure!(stderr.as_deref() == Some(""), "stderr {stderr:?}");
        Ok(())
    })
    .await;
    t.assert_all_requests_on(&server.base).await;
}

/// The terminal's screen, one string per row (xterm's DOM renderer pads with
/// no-break spaces).
const SCREEN: &str = "[...document.querySelectorAll('#terminal .xterm-rows > div')]\
                      .map(r => r.textContent.replace(/\\u00a0/g, ' ').trimEnd())";

/// The declared terminal every terminal test launches, and its id.
const SHELL: &str = r#"{"shell": {"command": "bash"}}"#;
const SHELL_ID: &str = "terminal_shell_default";

impl BrowserTest {
    /// Launches the declared terminal `shell` and waits for it to be listed.
    async fn launch_shell(&self) {
        self.step("launch the declared terminal", async {
            self.page
                .click(&format!(
                    "#terminals-declared .terminal-launch{}",
                    attr("data-terminal", "shell")
                ))
                .await?;
            self.page
                .wait_usable(&format!(
                    "#terminals-list {}",
                    attr("data-terminal-id", SHELL_ID)
                ))
                .await?;
            Ok(())
        })
        .await;
    }

    /// Attaches to the shell (or watches it) and waits for its status, and for
    /// a row of the screen satisfying the JS predicate `row` (on `r`).
    async fn connect_shell(&self, how: &str, status: &str, row: &str) {
        self.step(&format!("{how} the terminal"), async {
            self.page
                .click(&format!(
                    "#terminals-list {} .terminal-{how}",
                    attr("data-terminal-id", SHELL_ID)
                ))
                .await?;
            self.page
                .wait_text(
                    "#terminal-status",
                    &format!("to say {status}"),
                    &format!("t === {}", js(status)),
                )
                .await?;
            self.page
                .wait_for(
                    &format!("a row where {row}"),
                    &format!("{SCREEN}.some(r => {row})"),
                )
                .await?;
            Ok(())
        })
        .await;
    }

    /// Types `command` into the terminal and presses Enter; with `echoed`,
    /// waits for the command to show first.
    async fn type_command(&self, command: &str, echoed: bool) {
        self.step(&format!("type {command}"), async {
            self.page.focus("#terminal .xterm-helper-textarea").await?;
            self.page.insert_text(command).await?;
            if echoed {
                self.page
                    .wait_for(
                        "the typed command echoed",
                        &format!("{SCREEN}.some(r => r.endsWith({}))", js(command)),
                    )
                    .await?;
            }
            self.page.press_enter().await?;
            Ok(())
        })
        .await;
    }

    /// Waits for a row that is exactly `line` after the row ending in `command`.
    async fn see_after(&self, command: &str, line: &str) {
        self.step(&format!("see {line} after {command}"), async {
            self.page
                .wait_for(
                    &format!("a row that is exactly {line}, after {command}"),
                    &format!(
                        "(() => {{ const rows = {SCREEN}; \
                         const at = rows.findIndex(r => r.endsWith({c})); \
                         return at >= 0 && rows.slice(at + 1).includes({l}); }})()",
                        c = js(command),
                        l = js(line)
                    ),
                )
                .await?;
            Ok(())
        })
        .await;
    }
}

/// The shell's screen size as the API tells it.
async fn shell_size(server: &Server, sid: &str) -> (u64, u64) {
    let path = format!("/v1/sessions/{sid}/resources/terminals/{SHELL_ID}");
    let (status, terminal) = server.get(&path, ACME).await;
    assert_eq!(status, 200, "{terminal}");
    let size = |k: &str| terminal["metadata"][k].as_u64().unwrap();
    (size("cols"), size("rows"))
}

/// Signs in as ACME, makes a session declaring the shell, launches it on the
/// terminals tab and attaches at its prompt; the session's id.
async fn attached_shell(t: &BrowserTest, server: &Server) -> String {
    t.open_console(server).await;
    t.sign_in(ACME, "tenant").await;
    let sid = t.create_session(None, Some(SHELL)).await;
    t.open_session(&sid, "terminals").await;
    t.launch_shell().await;
    t.connect_shell("attach", "attached", "/[$#]$/.test(r.trim())")
        .await;
    sid
}

#[tokio::test]
async fn echo_hi_typed_into_the_terminal_renders_hi() {
    let server = server_with(None).await;
    let t = BrowserTest::start("terminal").await;
    attached_shell(&t, &server).await;
    t.type_command("echo hi", true).await;
    t.see_after("echo hi", "hi").await;
    t.assert_all_requests_on(&server.base).await;
}

#[tokio::test]
async fn a_terminal_follows_the_window_size_replays_its_scrollback_and_a_watcher_cannot_type() {
    let server = server_with(None).await;
    let t = BrowserTest::start("terminal_modes").await;
    let sid = attached_shell(&t, &server).await;
    t.type_command("echo before", true).await;
    t.see_after("echo before", "before").await;
    let wide = shell_size(&server, &sid).await;
    t.step("narrow the window and see the terminal resized", async {
        // Tall enough that the terminal stays in view: xterm pauses drawing a
        // terminal scrolled out of sight.
        let narrow = json!({"width": 640, "height": 900, "deviceScaleFactor": 1, "mobile": false});
        t.page
            .call("Emulation.setDeviceMetricsOverride", narrow)
            .await?;
        let deadline = tokio::time::Instant::now() + WAIT;
        while shell_size(&server, &sid).await.0 >= wide.0 {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "the terminal stayed {wide:?} after the window narrowed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(())
    })
    .await;
    // A fresh page: what was on the screen comes back from the server.
    t.step("reload the console", async {
        t.page.reload().await?;
        t.page.wait_usable("#terminals-list").await?;
        Ok(())
    })
    .await;
    t.connect_shell("watch", "watching (read-only)", "r === 'before'")
        .await;
    let watched = shell_size(&server, &sid).await;
    t.type_command("echo typed-while-watching", false).await;
    // Attached again, a command typed now runs; the watcher's never reached it.
    t.connect_shell("attach", "attached", "r === 'before'")
        .await;
    t.type_command("echo after", true).await;
    t.see_after("echo after", "after").await;
    t.step("what the watcher typed never reached the shell", async {
        let screen = t.page.eval(SCREEN).await?;
        ensure!(
            !screen.to_string().contains("typed-while-watching"),
            "the watcher's keys reached the shell: {screen}"
        );
        Ok(())
    })
    .await;
    assert!(
        watched.0 < wide.0,
        "watching kept the size: {watched:?} vs {wide:?}"
    );
    t.assert_all_requests_on(&server.base).await;
}

#[tokio::test]
async fn swapping_a_slot_on_the_operator_page_shows_the_new_sha256_and_a_refusal_verbatim() {
    let server = server_with(None).await;
    let embedded = sha256_hex(SlotName::Files.embedded().1);
    let component = reshost_test_artifacts::FILES_NO_EXECUTABLES.wasm;
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("files-no-executables.wasm");
    std::fs::write(&wasm, component).unwrap();
    let bogus = dir.path().join("not-a-component.wasm");
    std::fs::write(&bogus, b"this is not wasm\n").unwrap();
    // A refusal changes nothing, so the API can be asked for its words first.
    let (status, refused) = json_of(
        server
            .request(Method::PUT, "/admin/v1/slots/files", Some(ADMIN))
            .body(std::fs::read(&bogus).unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    let refusal = refused["error"]["message"].as_str().unwrap().to_owned();

    let t = BrowserTest::start("operator").await;
    t.open_console(&server).await;
    t.sign_in(ADMIN, "admin").await;
    let sha = |slot: &str| format!("#slots-list {} .slot-sha256", attr("data-slot", slot));
    t.step("the slots show their components", async {
        t.page.wait_usable("#operator-page").await?;
        for slot in ["files", "environments", "terminals", "policy"] {
            t.page
                .wait_usable(&format!("#slots-list {}", attr("data-slot", slot)))
                .await?;
        }
        t.page
            .wait_text(
                &sha("files"),
                "to be the embedded component's",
                &format!("t === {}", js(&embedded)),
            )
            .await?;
        t.page
            .wait_text(
                &format!("#slots-list {} .slot-source", attr("data-slot", "files")),
                "to be embedded:files",
                "t === 'embedded:files'",
            )
            .await?;
        Ok(())
    })
    .await;
    t.step("swap the files slot", async {
        t.page.select("#slot-name", "files").await?;
        t.page.set_files("#slot-file", &[&wasm]).await?;
        t.page.click("#slot-swap-submit").await?;
        t.page
            .wait_text(
                &sha("files"),
                "to be the uploaded bytes' sha256",
                &format!("t === {}", js(&sha256_hex(component))),
            )
            .await?;
        let error = t.page.text("#operator-error").await?.unwrap_or_default();
        ensure!(error.is_empty(), "#operator-error says {error:?}");
        Ok(())
    })
    .await;
    let (_, slot) = server.get("/admin/v1/slots/files", ADMIN).await;
    assert_eq!(slot["component"]["sha256"], sha256_hex(component), "{slot}");
    assert_eq!(slot["component"]["source"], "admin", "{slot}");
    t.step("a file that is no component is refused verbatim", async {
        t.page.set_files("#slot-file", &[&bogus]).await?;
        t.page.click("#slot-swap-submit").await?;
        t.page
            .wait_text(
                "#operator-error",
                "to show the refusal",
                &format!("t.includes({})", js(&refusal)),
            )
            .await?;
        t.page
            .wait_text(
                &sha("files"),
                "to be unchanged",
                &format!("t === {}", js(&sha256_hex(component))),
            )
            .await?;
        Ok(())
    })
    .await;
    t.step("roll back to the embedded component", async {
        t.page.select("#slot-name", "files").await?;
        t.page.click("#slot-rollback").await?;
        t.page
            .wait_text(
                &sha("files"),
                "to be the embedded one again",
                &format!("t === {}", js(&embedded)),
            )
            .await?;
        Ok(())
    })
    .await;
    t.assert_all_requests_on(&server.base).await;
}

/// Every page and panel (the terminal's xterm and WebSocket included), then the
/// request log: each URL is the server's own.
#[tokio::test]
async fn no_console_asset_or_request_leaves_the_server() {
    let server = server_with(None).await;
    let t = BrowserTest::start("same_origin").await;
    t.open_console(&server).await;
    t.sign_in(ACME, "tenant").await;
    let sid = t
        .create_session(None, Some(r#"{"shell": {"command": "bash"}}"#))
        .await;
    t.open_session(&sid, "environment").await;
    t.show_tab("terminals").await;
    t.step("attach a terminal", async {
        let launch = format!(
            "#terminals-declared .terminal-launch{}",
            attr("data-terminal", "shell")
        );
        t.page.click(&launch).await?;
        let attach = format!(
            "#terminals-list {} .terminal-attach",
            attr("data-terminal-id", "terminal_shell_default")
        );
        t.page.click(&attach).await?;
        t.page
            .wait_text("#terminal-status", "to say attached", "t === 'attached'")
            .await?;
        t.page
            .wait_for(
                "xterm on the page",
                &format!("!!{}", q("#terminal .xterm-rows")),
            )
            .await?;
        Ok(())
    })
    .await;
    t.step("sign out", async {
        t.page.click("#signout").await?;
        t.page.wait_usable("#signin-form #token").await
    })
    .await;
    t.sign_in(ADMIN, "admin").await;
    t.step("the operator page", async {
        t.page
            .wait_usable(&format!("#slots-list {}", attr("data-slot", "files")))
            .await
    })
    .await;
    t.step(
        "the log holds the page, its assets, the API and the WebSocket",
        async {
            let requests = t.page.requests();
            let base = &server.base;
            let ws = base.replacen("http://", "ws://", 1);
            for (what, prefix) in [
                ("the page", format!("{base}/")),
                ("xterm", format!("{base}/console/vendor/xterm/")),
                ("the API", format!("{base}/v1/sessions")),
                ("the admin API", format!("{base}/admin/v1/slots")),
                (
                    "the terminal's WebSocket",
                    format!("{ws}/v1/sessions/{sid}/resources/terminals/"),
                ),
            ] {
                ensure!(
                    requests.iter().any(|u| u.starts_with(&prefix)),
                    "no request for {what} ({prefix}…) in {requests:#?}"
                );
            }
            Ok(())
        },
    )
    .await;
    t.assert_all_requests_on(&server.base).await;
}
