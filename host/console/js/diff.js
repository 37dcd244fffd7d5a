// Draws a file's diff from the server's unified text (`?format=unified`):
// as it is, or side by side, pairing each run of removed lines with the added
// run after it. The server computes the diff; nothing is diffed here.

import { el } from "./dom.js";

/** The lines of a unified diff, each with its kind and line numbers. */
function parse(text) {
  const lines = [];
  let [old, now, inHunk] = [0, 0, false];
  for (const line of text.replace(/\n$/, "").split("\n")) {
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (hunk) {
      [old, now, inHunk] = [Number(hunk[1]), Number(hunk[2]), true];
      lines.push({ kind: "hunk", text: line });
    } else if (!inHunk) {
      // `--- a/…` and `+++ b/…`, or "Binary files … differ".
      lines.push({ kind: "file", text: line });
    } else if (line.startsWith("+")) {
      lines.push({ kind: "add", text: line, now: now++ });
    } else if (line.startsWith("-")) {
      lines.push({ kind: "del", text: line, old: old++ });
    } else if (line.startsWith("\\")) {
      lines.push({ kind: "note", text: line });
    } else {
      lines.push({ kind: "ctx", text: line, old: old++, now: now++ });
    }
  }
  return lines;
}

function unified(lines) {
  return el("pre", { class: "diff-unified" }, ...lines.map((line) => el("div", { class: `diff-${line.kind}`, text: line.text || " " })));
}

function cells(line, side) {
  if (!line) return [el("td", { class: "diff-num" }), el("td", { class: "diff-empty" })];
  const number = side === "old" ? line.old : line.now;
  return [el("td", { class: "diff-num", text: number ?? "" }), el("td", { class: `diff-${line.kind}`, text: line.text.slice(1) })];
}

function split(lines) {
  const rows = [];
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    if (line.kind === "del" || line.kind === "add") {
      const dels = [];
      const adds = [];
      while (lines[i]?.kind === "del") dels.push(lines[i++]);
      while (lines[i]?.kind === "add") adds.push(lines[i++]);
      for (let k = 0; k < Math.max(dels.length, adds.length); k++) {
        rows.push(el("tr", {}, ...cells(dels[k], "old"), ...cells(adds[k], "now")));
      }
      continue;
    }
    if (line.kind === "ctx") {
      rows.push(el("tr", {}, ...cells(line, "old"), ...cells(line, "now")));
    } else {
      rows.push(el("tr", {}, el("td", { class: `diff-${line.kind}`, colspan: 4, text: line.text })));
    }
    i += 1;
  }
  return el(
    "table",
    { class: "diff-split" },
    el("thead", {}, el("tr", {}, el("th", { colspan: 2, text: "before" }), el("th", { colspan: 2, text: "after" }))),
    el("tbody", {}, ...rows),
  );
}

/** Shows `diff` (the API's file diff) in `container`, `mode` "unified" or "split". */
export function render(container, diff, mode) {
  const title = el("p", { class: "diff-title", text: `${diff.status} ${diff.path}` });
  if (diff.truncated) title.append(" (cut at the server's read cap)");
  if (diff.encoding === "base64") {
    container.replaceChildren(title, el("p", { text: `binary file: ${diff.unified || "the sides differ"}` }));
    return;
  }
  const lines = parse(diff.unified || "");
  container.replaceChildren(title, mode === "split" ? split(lines) : unified(lines));
}
