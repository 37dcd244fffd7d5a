// The sessions page (list, "more", create, delete) and the session page's
// tabs, which hand the open session to the files, environment and terminals
// panels.

import * as api from "./api.js";
import { $, attempt, clear, el, optionalJson, when } from "./dom.js";
import * as files from "./files.js";
import * as environment from "./environment.js";
import * as terminals from "./terminals.js";
import { PagedList } from "./paged.js";

const TABS = ["files", "environment", "terminals"];
/** The tenant's sessions, newest first. */
let sessions;
/** The id of the session the session page shows, or "". */
let current = "";

export function init() {
  sessions = new PagedList({
    list: "sessions-list",
    more: "sessions-more",
    error: "sessions-error",
    url: () => "/v1/sessions",
    row,
    empty: "No sessions yet.",
    limit: 20,
  });
  $("session-create").addEventListener("submit", create);
  const tablist = $("tab-files").parentElement;
  for (const tab of TABS) {
    $(`tab-${tab}`).addEventListener("click", () => {
      location.hash = `#/sessions/${encodeURIComponent(current)}/${tab}`;
    });
  }
  // Arrow keys, Home and End move between tabs (the WAI-ARIA tabs pattern).
  tablist.addEventListener("keydown", (event) => {
    const at = TABS.findIndex((tab) => $(`tab-${tab}`) === document.activeElement);
    const moves = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: TABS.length - 1 };
    if (at < 0 || !(event.key in moves)) return;
    event.preventDefault();
    const tab = TABS[(moves[event.key] + TABS.length) % TABS.length];
    $(`tab-${tab}`).focus();
    $(`tab-${tab}`).click();
  });
  files.init();
  environment.init();
  terminals.init();
}

/** Shows the sessions page: its first page of sessions. */
export function show() {
  sessions.load();
}

function row(session) {
  const metadata = JSON.stringify(session.metadata || {});
  const item = el(
    "li",
    { data: { sessionId: session.id } },
    el("code", { class: "id", text: session.id }),
    el("span", { class: "muted", text: when(session.created_at) }),
    metadata === "{}" ? null : el("code", { class: "meta", text: metadata }),
  );
  item.append(
    el(
      "span",
      { class: "actions" },
      el("button", {
        type: "button",
        class: "session-open",
        text: "Open",
        "aria-label": `Open session ${session.id}`,
        on: { click: () => (location.hash = `#/sessions/${encodeURIComponent(session.id)}/files`) },
      }),
      el("button", {
        type: "button",
        class: "session-delete danger",
        text: "Delete",
        "aria-label": `Delete session ${session.id}`,
        on: { click: () => remove(session.id) },
      }),
    ),
  );
  return item;
}

async function create(event) {
  event.preventDefault();
  clear("sessions-status");
  $("session-create-submit").disabled = true;
  await attempt("sessions-error", async () => {
    const body = {};
    const metadata = optionalJson($("session-metadata").value, "Metadata");
    if (metadata !== undefined) body.metadata = metadata;
    const template = $("session-template").value.trim();
    if (template) body.environment = { template };
    const declared = optionalJson($("session-terminals").value, "Terminals");
    if (declared !== undefined) body.agent = { terminals: declared };
    const session = await api.request("POST", "/v1/sessions", body);
    $("session-create").reset();
    await sessions.load();
    $("sessions-status").textContent = `Created ${session.id}`;
  });
  $("session-create-submit").disabled = false;
}

async function remove(id) {
  clear("sessions-status");
  await attempt("sessions-error", async () => {
    await api.request("DELETE", `/v1/sessions/${api.seg(id)}`);
    await sessions.load();
    $("sessions-status").textContent = `Deleted ${id}`;
  });
}

/** Shows session `id` on its tab `tab` (loading the session when it is another). */
/** The tab last asked for: it wins over one asked for before the session loaded. */
let wanted = "files";

export async function open(id, tab) {
  wanted = TABS.includes(tab) ? tab : "files";
  if (id !== current) {
    leave();
    current = id;
    $("session-id").textContent = id;
    const session = await attempt("session-error", () => api.get(`/v1/sessions/${api.seg(id)}`));
    if (!session || current !== id) return;
    files.open(id);
    environment.open(id);
    terminals.open(session);
  }
  select(wanted);
}

function select(chosen) {
  for (const tab of TABS) {
    const selected = tab === chosen;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    $(`tab-${tab}`).tabIndex = selected ? 0 : -1;
    $(`panel-${tab}`).hidden = !selected;
  }
  if (chosen === "terminals") terminals.shown();
}

/** Leaves the session page: its terminal connection is closed. */
export function leave() {
  if (!current) return;
  current = "";
  terminals.close();
}
