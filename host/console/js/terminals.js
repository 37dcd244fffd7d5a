// The terminals panel: launch a declared terminal, list the session's terminals,
// attach to one with xterm.js (typing, resizing with the window) or watch it
// read-only. The attach WebSocket protocol is docs/api.md's: binary frames are
// the terminal's bytes both ways, text frames JSON (`resize` out, `exit` in).

import * as api from "./api.js";
import { $, attempt, el, when } from "./dom.js";

let sid = "";
/** xterm.js and its fit addon, loaded on first use. */
let term = null;
let fit = null;
/** The open WebSocket and whether it may type ("attach") or only watch. */
let socket = null;
let mode = "";

const base = () => `/v1/sessions/${api.seg(sid)}/resources/terminals`;
const status = (text) => ($("terminal-status").textContent = text);

export function init() {
  $("terminals-refresh").addEventListener("click", list);
  // The window's size and the panel's layout both change the container's.
  let pending = false;
  new ResizeObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      refit();
    });
  }).observe($("terminal"));
}

/** Shows `session`'s declared and running terminals. */
export function open(session) {
  close();
  sid = session.id;
  status("");
  term?.reset();
  const declared = Object.entries((session.agent && session.agent.terminals) || {});
  $("terminals-declared").replaceChildren(
    ...declared.map(([name, spec]) =>
      el(
        "li",
        {},
        el("button", {
          type: "button",
          class: "terminal-launch",
          data: { terminal: name },
          text: `Launch ${name}`,
          on: { click: () => launch(name) },
        }),
        el("code", { class: "muted", text: JSON.stringify(spec) }),
      ),
    ),
  );
  if (!declared.length) {
    $("terminals-declared").append(el("li", { class: "muted", text: "This session declares no terminals." }));
  }
  $("terminals-list").replaceChildren();
  list();
}

/** The panel became visible: xterm can measure its container now. */
export function shown() {
  refit();
}

async function ensureTerminal() {
  if (term) return;
  const [{ Terminal }, { FitAddon }] = await Promise.all([
    import("../vendor/xterm/xterm.mjs"),
    import("../vendor/addon-fit/addon-fit.mjs"),
  ]);
  if (term) return;
  term = new Terminal({ cursorBlink: true, scrollback: 10000 });
  fit = new FitAddon();
  term.loadAddon(fit);
  term.open($("terminal"));
  const encoder = new TextEncoder();
  term.onData((data) => send(encoder.encode(data)));
  // Mouse reports in the X10 encoding come as binary strings.
  term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
  term.onResize(({ cols, rows }) => {
    if (mode === "attach") send(JSON.stringify({ type: "resize", cols, rows }));
  });
}

/** Sends to an attached (not watching) terminal. */
function send(data) {
  if (socket && mode === "attach" && socket.readyState === WebSocket.OPEN) socket.send(data);
}

/** Fits xterm to its container while attached (a watcher keeps the PTY's size). */
function refit() {
  if (term && mode === "attach" && !$("panel-terminals").hidden) fit.fit();
}

async function launch(name) {
  await attempt("terminals-error", async () => {
    await ensureTerminal();
    const proposed = $("panel-terminals").hidden ? null : fit.proposeDimensions();
    const body = { terminal: name, session_key: $("terminal-key").value.trim() || "default" };
    if (proposed) Object.assign(body, { cols: proposed.cols, rows: proposed.rows });
    const terminal = await api.request("POST", base(), body);
    await list();
    attach(terminal, false);
  });
}

async function list() {
  await attempt("terminals-error", async () => {
    const page = await api.get(`${base()}?order=asc&limit=1000`);
    $("terminals-list").replaceChildren(...page.data.map(row));
    if (!page.data.length) $("terminals-list").append(el("li", { class: "muted", text: "No terminals yet." }));
  });
}

function row(terminal) {
  const meta = terminal.metadata || {};
  const state = meta.running ? `running, ${meta.cols}×${meta.rows}` : `ended (exit ${meta.exit_code ?? "unknown"})`;
  return el(
    "li",
    { data: { terminalId: terminal.id } },
    el("code", { class: "id", text: terminal.id }),
    el("span", { class: "muted", text: `${state} · launched ${when(meta.created_at)}` }),
    el(
      "span",
      { class: "actions" },
      el("button", {
        type: "button",
        class: "terminal-attach",
        text: "Attach",
        "aria-label": `Attach to ${terminal.id}`,
        on: { click: () => attach(terminal, false) },
      }),
      el("button", {
        type: "button",
        class: "terminal-watch",
        text: "Watch",
        "aria-label": `Watch ${terminal.id} read-only`,
        on: { click: () => attach(terminal, true) },
      }),
      el("button", {
        type: "button",
        class: "terminal-close danger",
        text: "Close",
        "aria-label": `Close ${terminal.id}`,
        on: { click: () => remove(terminal.id) },
      }),
    ),
  );
}

/** Why a socket closed, from its close code (docs/api.md's table). */
function reason(event) {
  const said = event.reason ? `: ${event.reason}` : "";
  if (event.code === 4404) return `the terminal has ended or is gone (4404${said})`;
  if (event.code === 1008) return `refused (1008${said})`;
  if (event.code === 1000 || event.code === 1005) return `disconnected (${event.code}${said})`;
  return `connection lost (${event.code}${said})`;
}

/** Attaches to `terminal` (or watches it, `readOnly`), replacing any other connection. */
async function attach(terminal, readOnly) {
  $("terminals-error").textContent = "";
  await ensureTerminal();
  // After the wait, so that of two attaches in a row only the last stays open.
  close();
  term.reset();
  term.options.disableStdin = readOnly;
  mode = readOnly ? "watch" : "attach";
  if (readOnly) {
    const meta = terminal.metadata || {};
    if (meta.cols && meta.rows) term.resize(meta.cols, meta.rows);
  }
  const query = readOnly ? { read_only: "true" } : {};
  const ws = new WebSocket(api.socketUrl(`${base()}/${api.seg(terminal.id)}/attach`, query));
  ws.binaryType = "arraybuffer";
  socket = ws;
  status("connecting");
  let exit = null;
  ws.onopen = () => {
    if (socket !== ws) return;
    status(readOnly ? "watching (read-only)" : "attached");
    if (!readOnly) {
      // The PTY takes this window's size (the scrollback replays at its own).
      fit.fit();
      send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
    }
    term.focus();
  };
  ws.onmessage = (event) => {
    if (socket !== ws) return;
    if (typeof event.data !== "string") {
      term.write(new Uint8Array(event.data));
      return;
    }
    try {
      const message = JSON.parse(event.data);
      if (message.type === "exit") exit = message.exit_code;
    } catch {
      // Not an event of this protocol: nothing to show.
    }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    mode = "";
    term.options.disableStdin = true;
    status(`closed: ${exit === null ? reason(event) : `exited with code ${exit}`}`);
    list();
  };
}

async function remove(id) {
  await attempt("terminals-error", async () => {
    await api.request("DELETE", `${base()}/${api.seg(id)}`);
    await list();
  });
}

/** Closes the connection, if any (the terminal runs on). */
export function close() {
  if (!socket) return;
  const ws = socket;
  socket = null;
  mode = "";
  ws.close(1000);
}
