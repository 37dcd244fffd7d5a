// The environment panel: the workspace's tree, a viewer and an editor (saved
// with PUT), new files, changes with their diffs, filename search and a shell.

import * as api from "./api.js";
import { $, attempt, clear, el, size } from "./dom.js";
import * as diff from "./diff.js";

let sid = "";
/** The path in the editor, or "". */
let opened = "";
/** The diff on show (re-drawn when the mode changes), or null. */
let shown = null;

const envBase = () => `/v1/sessions/${api.seg(sid)}/resources/environments/default`;
const fsUrl = (path) => (path ? `${envBase()}/filesystem/${api.pathUrl(path)}` : `${envBase()}/filesystem`);

export function init() {
  $("tree-refresh").addEventListener("click", refreshTree);
  $("editor-save").addEventListener("click", save);
  $("new-file-create").addEventListener("click", createFile);
  $("changes-refresh").addEventListener("click", refreshChanges);
  $("diff-mode").addEventListener("change", () => shown && diff.render($("diff-view"), shown, $("diff-mode").value));
  $("search-form").addEventListener("submit", search);
  $("shell-form").addEventListener("submit", shell);
}

/** Shows session `id`'s environment. */
export function open(id) {
  sid = id;
  opened = "";
  shown = null;
  clear("env-error", "editor-status", "editor-path", "shell-stdout", "shell-stderr", "shell-exit");
  $("viewer").replaceChildren(el("p", { class: "muted", text: "Open a file from the tree." }));
  $("editor").value = "";
  $("editor").disabled = true;
  $("editor-save").disabled = true;
  for (const id of ["changes-list", "diff-view", "search-results"]) $(id).replaceChildren();
  $("tree").replaceChildren();
  refreshTree();
}

// ---------------------------------------------------------------------------
// The tree.

/** Every entry of a directory, following its pages. */
async function listDir(path) {
  const entries = [];
  let after = "";
  do {
    const query = new URLSearchParams({ order: "asc", limit: "1000" });
    if (after) query.set("after", after);
    const page = await api.get(`${fsUrl(path)}?${query}`);
    entries.push(...page.data);
    after = page.has_more ? page.last_id : "";
  } while (after);
  // Directories first, each group by name.
  return entries.sort((a, b) => (b.type === "directory") - (a.type === "directory"));
}

function entryNode(entry) {
  const kind = entry.type === "directory" ? "directory" : "file";
  const label = entry.type === "symlink" ? `${entry.name} (link)` : entry.name;
  const button = el("button", {
    type: "button",
    class: `entry ${kind}`,
    data: { path: entry.path, kind },
    "aria-expanded": kind === "directory" ? "false" : null,
    title: kind === "file" ? `${entry.path}, ${size(entry.bytes)}` : entry.path,
    text: label,
  });
  const item = el("li", {}, button);
  button.addEventListener("click", () => (kind === "directory" ? toggle(item, button) : openFile(entry.path)));
  return item;
}

function fill(list, entries) {
  list.replaceChildren(...entries.map(entryNode));
  if (!entries.length) list.append(el("li", { class: "muted", text: "(empty)" }));
}

async function toggle(item, button) {
  if (button.getAttribute("aria-expanded") === "true") {
    item.querySelector("ul")?.remove();
    button.setAttribute("aria-expanded", "false");
    return;
  }
  const entries = await attempt("env-error", () => listDir(button.dataset.path));
  if (!entries) return;
  const list = el("ul");
  fill(list, entries);
  item.querySelector("ul")?.remove();
  item.append(list);
  button.setAttribute("aria-expanded", "true");
}

/** Lists the root again, re-opening the directories that were open. */
async function refreshTree() {
  const tree = $("tree");
  const expanded = [...tree.querySelectorAll('[aria-expanded="true"]')].map((b) => b.dataset.path);
  const entries = await attempt("env-error", () => listDir(""));
  if (!entries) return;
  fill(tree, entries);
  for (const path of expanded) {
    const button = [...tree.querySelectorAll("[data-kind=directory]")].find((b) => b.dataset.path === path);
    if (button) await toggle(button.parentElement, button);
  }
  markOpened();
}

function markOpened() {
  for (const button of $("tree").querySelectorAll("[data-path]")) {
    if (button.dataset.path === opened) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

// ---------------------------------------------------------------------------
// The viewer and the editor.

async function openFile(path) {
  clear("editor-status");
  const file = await attempt("env-error", () => api.get(fsUrl(path)));
  if (!file) return;
  const viewer = $("viewer");
  const editor = $("editor");
  if (file.object === "list") {
    // A symlink to a directory reads as its listing.
    viewer.replaceChildren(el("p", { text: `${path} is a directory` }));
    return;
  }
  opened = file.path;
  $("editor-path").textContent = file.path;
  markOpened();
  if (file.encoding === "base64") {
    viewer.replaceChildren(el("p", { text: `${file.path}: binary file, ${file.bytes} bytes (${file.content_type})` }));
    editor.value = "";
    editor.disabled = true;
    $("editor-save").disabled = true;
    return;
  }
  const info = el("p", { text: `${file.path}: ${file.content_type}, ${file.bytes} bytes` });
  viewer.replaceChildren(info, el("pre", { text: file.content }));
  editor.value = file.content;
  // Saving a cut-off text would cut the file: only whole files are editable.
  editor.disabled = file.truncated;
  $("editor-save").disabled = file.truncated;
  if (file.truncated) {
    info.append(` (only the first ${file.content.length} characters are shown; too large to edit here)`);
  }
}

async function save() {
  clear("editor-status");
  const path = opened;
  const content = $("editor").value;
  $("editor-save").disabled = true;
  try {
    const result = await api.request("PUT", fsUrl(path), { content });
    $("viewer").replaceChildren(
      el("p", { text: `${path}: ${result.bytes_written} bytes` }),
      el("pre", { text: content }),
    );
    $("editor-status").textContent = "Saved";
    if (result.created) refreshTree();
  } catch (error) {
    // The server's refusal as sent (e.g. 409 conflict: writing over a directory).
    $("editor-status").textContent = api.describe(error);
  } finally {
    $("editor-save").disabled = false;
  }
}

async function createFile() {
  const path = $("new-file-path").value.trim();
  clear("env-error");
  if (!path) {
    $("env-error").textContent = "Give the new file's path.";
    return;
  }
  // A PUT would replace an existing file with nothing: look first.
  try {
    await api.get(fsUrl(path));
    await openFile(path);
    $("env-error").textContent = `${path} already exists: not replaced.`;
    return;
  } catch (error) {
    if (error.code !== "path_not_found") {
      $("env-error").textContent = api.describe(error);
      return;
    }
  }
  const created = await attempt("env-error", () => api.request("PUT", fsUrl(path), { content: "" }));
  if (!created) return;
  $("new-file-path").value = "";
  await refreshTree();
  await openFile(path);
  $("editor").focus();
}

// ---------------------------------------------------------------------------
// Changes and diffs.

async function refreshChanges() {
  const changes = await attempt("env-error", () => api.get(`${envBase()}/changes`));
  if (!changes) return;
  const list = $("changes-list");
  list.replaceChildren(
    ...changes.data.map((change) =>
      el(
        "li",
        {},
        el("button", {
          type: "button",
          class: `change ${change.status}`,
          data: { path: change.path, status: change.status },
          text: `${change.status} ${change.path}`,
          on: { click: () => showDiff(change.path) },
        }),
      ),
    ),
  );
  if (!changes.data.length) list.append(el("li", { class: "muted", text: "No changes." }));
}

async function showDiff(path) {
  const found = await attempt("env-error", () => api.get(`${envBase()}/diff/${api.pathUrl(path)}?format=unified`));
  if (!found) return;
  shown = found;
  diff.render($("diff-view"), shown, $("diff-mode").value);
}

// ---------------------------------------------------------------------------
// Search and the shell.

async function search(event) {
  event.preventDefault();
  const q = $("search-input").value;
  const found = await attempt("env-error", () => api.get(`${envBase()}/search?${new URLSearchParams({ q })}`));
  if (!found) return;
  const list = $("search-results");
  list.replaceChildren(
    ...found.data.map((entry) =>
      el(
        "li",
        {},
        el("button", {
          type: "button",
          class: "entry file",
          data: { path: entry.path },
          text: entry.path,
          on: { click: () => openFile(entry.path) },
        }),
      ),
    ),
  );
  if (!found.data.length) list.append(el("li", { class: "muted", text: "No file matches." }));
  if (found.has_more || found.truncated) list.append(el("li", { class: "muted", text: "More files match than shown." }));
}

async function shell(event) {
  event.preventDefault();
  const command = $("shell-command").value;
  clear("env-error", "shell-stdout", "shell-stderr");
  $("shell-exit").textContent = "running";
  $("shell-run").disabled = true;
  try {
    const result = await api.request("POST", `${envBase()}/shell`, { command });
    $("shell-stdout").textContent = result.stdout + (result.stdout_truncated ? "\n[truncated]" : "");
    $("shell-stderr").textContent = result.stderr + (result.stderr_truncated ? "\n[truncated]" : "");
    $("shell-exit").textContent = result.timed_out ? "timed out" : `exit ${result.exit_code}`;
    // The command may have changed the workspace.
    refreshTree();
  } catch (error) {
    $("shell-exit").textContent = "";
    $("env-error").textContent = api.describe(error);
  } finally {
    $("shell-run").disabled = false;
  }
}
