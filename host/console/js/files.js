// The files panel: uploads (drag and drop or the file input, with progress),
// the list with "more", downloads and deletes.

import * as api from "./api.js";
import { $, attempt, el, showError, size, when } from "./dom.js";
import { PagedList } from "./paged.js";

let sid = "";
/** The open session's files. */
let files;

const base = () => `/v1/sessions/${api.seg(sid)}/resources/files`;

export function init() {
  const input = $("upload-input");
  input.addEventListener("change", () => {
    uploadAll([...input.files]);
    input.value = "";
  });
  const drop = $("upload-drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    uploadAll([...event.dataTransfer.files]);
  });
  // A file dropped beside the zone must not navigate away from the console.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => event.preventDefault());
  }
  files = new PagedList({
    list: "files-list",
    more: "files-more",
    error: "files-error",
    url: base,
    row,
    empty: "No files yet.",
    limit: 50,
  });
}

/** Shows session `id`'s files. */
export function open(id) {
  sid = id;
  $("upload-progress").value = 0;
  $("upload-status").textContent = "";
  files.clear();
  files.load();
}

async function uploadAll(chosen) {
  if (!chosen.length) return;
  const progress = $("upload-progress");
  const status = $("upload-status");
  $("files-error").textContent = "";
  for (const file of chosen) {
    const form = new FormData();
    form.append("file", file, file.name);
    progress.value = 0;
    status.textContent = `${file.name}: uploading`;
    try {
      await api.upload(base(), form, (percent) => {
        progress.value = percent;
        status.textContent = `${file.name}: ${percent}%`;
      });
    } catch (error) {
      showError("files-error", error);
      status.textContent = `${file.name}: not uploaded`;
      return;
    }
    progress.value = 100;
    status.textContent = `${file.name} uploaded`;
  }
  if (chosen.length > 1) status.textContent = `${chosen.length} files uploaded`;
  await files.load();
}

function row(file) {
  const meta = file.metadata || {};
  const content = `${base()}/${api.seg(file.id)}/content`;
  const item = el("li", { data: { fileId: file.id } });
  item.append(
    el("span", { class: "file-name", text: file.name }),
    el("span", { class: "muted", text: `${size(meta.bytes)} · ${meta.content_type} · ${when(meta.created_at)}` }),
    el("code", { class: "muted", title: "sha256", text: (meta.sha256 || "").slice(0, 12) }),
    el(
      "span",
      { class: "actions" },
      el("a", {
        class: "file-download",
        href: content,
        download: file.name,
        text: "Download",
        "aria-label": `Download ${file.name}`,
        on: { click: (event) => download(event, content, file.name) },
      }),
      el("button", {
        type: "button",
        class: "file-delete danger",
        text: "Delete",
        "aria-label": `Delete ${file.name}`,
        on: { click: () => remove(file.id) },
      }),
    ),
  );
  return item;
}

/** Fetches the bytes with the token (a plain link cannot carry it) and saves them. */
async function download(event, url, name) {
  event.preventDefault();
  await attempt("files-error", async () => {
    const href = URL.createObjectURL(await api.blob(url));
    const link = el("a", { href, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    // The download has its own copy by the time the page goes on.
    setTimeout(() => URL.revokeObjectURL(href), 10000);
  });
}

async function remove(id) {
  await attempt("files-error", async () => {
    await api.request("DELETE", `${base()}/${api.seg(id)}`);
    await files.load();
  });
}
