// Small DOM helpers: the console builds its rows with these, never from HTML
// strings, so no server text is ever parsed as markup.

import { describe } from "./api.js";

export const $ = (id) => document.getElementById(id);

/**
 * A new element. `props`: `class`, `text`, `data` (an object of data-* values),
 * `on` (an object of event listeners), anything else as an attribute.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else if (key === "on") for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** Shows the error (an ApiError's status, code and message as sent) in an alert. */
export function showError(id, error) {
  $(id).textContent = describe(error);
}

/** Empties the messages given by id. */
export function clear(...ids) {
  for (const id of ids) $(id).textContent = "";
}

/** Runs `work`; a failure goes to the alert `errorId` (cleared first). */
export async function attempt(errorId, work) {
  clear(errorId);
  try {
    return await work();
  } catch (error) {
    showError(errorId, error);
    return undefined;
  }
}

/** Unix seconds as an ISO date and time (UTC). */
export function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(".000Z", "Z");
}

/** A byte count for people. */
export function size(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Parses an optional JSON textarea: undefined when blank; `what` names it in errors. */
export function optionalJson(text, what) {
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not JSON: ${e.message}`);
  }
}
