// The operator page (admin token): the slots with their components and
// history, swapping a slot's component and rolling it back, and tenants'
// policies. The admin API lists no tenants, so a tenant is shown once named;
// the names are remembered for this tab.

import * as api from "./api.js";
import { $, attempt, clear, el, optionalJson, size, when } from "./dom.js";

const TENANTS_KEY = "reshost.tenants";

const remembered = () => JSON.parse(sessionStorage.getItem(TENANTS_KEY) || "[]");

export function init() {
  $("slots-refresh").addEventListener("click", load);
  $("slot-swap-form").addEventListener("submit", swap);
  $("slot-rollback").addEventListener("click", rollback);
  $("policy-form").addEventListener("submit", showPolicy);
  $("policy-submit").addEventListener("click", setPolicy);
}

/** Shows the operator page: the slots, and the tenants named before. */
export async function show() {
  await load();
  for (const tenant of remembered()) {
    const policy = await attempt("operator-error", () => api.get(policyUrl(tenant)));
    if (policy) policyRow(policy);
  }
}

async function load() {
  await attempt("operator-error", async () => {
    const slots = await api.get("/admin/v1/slots");
    $("slots-list").replaceChildren(...slots.data.map(slotRow));
    const select = $("slot-name");
    const chosen = select.value;
    select.replaceChildren(...slots.data.map((slot) => el("option", { value: slot.slot, text: slot.slot })));
    if (chosen) select.value = chosen;
  });
}

function slotRow(slot) {
  const c = slot.component;
  const field = (name, value, cls) => [el("dt", { text: name }), el("dd", { class: cls, text: value })];
  return el(
    "li",
    { data: { slot: slot.slot } },
    el("h4", { text: slot.slot }),
    el(
      "dl",
      {},
      ...field("sha256", c.sha256, "slot-sha256 hash"),
      ...field("source", c.source, "slot-source"),
      ...field("loaded at", when(c.loaded_at), "slot-loaded-at"),
      ...field("world", `${c.world} ${c.version}, ${size(c.bytes)}`),
      ...field("limits", `${size(slot.limits.memory_bytes)} memory, ${slot.limits.timeout_ms} ms per call`),
    ),
    el("p", { text: slot.previous.length ? "History, oldest first:" : "History: none to roll back to." }),
    el(
      "ol",
      { class: "slot-history" },
      ...slot.previous.map((p) => el("li", {}, el("code", { class: "hash", text: p.sha256 }), ` ${p.source}, ${when(p.loaded_at)}`)),
    ),
  );
}

/** The server's verdict on a change to a slot, shown in the status or the alert. */
async function change(work, done) {
  clear("operator-error", "operator-status");
  try {
    const view = await work();
    await load();
    $("operator-status").textContent = `${done} ${view.slot}: sha256 ${view.component.sha256}`;
  } catch (error) {
    $("operator-error").textContent = api.describe(error);
  }
}

async function swap(event) {
  event.preventDefault();
  const slot = $("slot-name").value;
  const file = $("slot-file").files[0];
  if (!file) {
    clear("operator-status");
    $("operator-error").textContent = "Choose a .wasm component to swap in.";
    return;
  }
  await change(() => api.request("PUT", `/admin/v1/slots/${api.seg(slot)}`, file), "swapped");
  $("slot-file").value = "";
}

async function rollback() {
  const slot = $("slot-name").value;
  await change(() => api.request("POST", `/admin/v1/slots/${api.seg(slot)}/rollback`), "rolled back");
}

const policyUrl = (tenant) => `/admin/v1/tenants/${api.seg(tenant)}/policy`;

/** Adds or replaces tenant `policy.tenant`'s row, and remembers the name. */
function policyRow(policy) {
  const c = policy.component;
  const component = c
    ? el("span", {}, "own component ", el("code", { class: "hash", text: c.sha256 }), ` (${c.source}, ${when(c.loaded_at)})`)
    : el("span", { text: "no own component: the policy slot decides" });
  const row = el(
    "li",
    { data: { tenant: policy.tenant } },
    el("h4", { text: policy.tenant }),
    el("p", {}, component),
    el("p", {}, "policy_config ", el("code", { text: JSON.stringify(policy.policy_config) })),
  );
  const old = [...$("policies-list").children].find((li) => li.dataset.tenant === policy.tenant);
  if (old) old.replaceWith(row);
  else $("policies-list").append(row);
  const names = remembered();
  if (!names.includes(policy.tenant)) sessionStorage.setItem(TENANTS_KEY, JSON.stringify([...names, policy.tenant]));
}

async function showPolicy(event) {
  event.preventDefault();
  clear("operator-status");
  const tenant = $("policy-tenant").value.trim();
  const policy = await attempt("operator-error", () => api.get(policyUrl(tenant)));
  if (policy) policyRow(policy);
}

async function setPolicy() {
  clear("operator-status");
  await attempt("operator-error", async () => {
    const tenant = $("policy-tenant").value.trim();
    if (!tenant) throw new Error("Name the tenant.");
    const form = new FormData();
    const component = $("policy-component").files[0];
    if (component) form.append("component", component, component.name);
    const text = $("policy-config").value;
    // Checked here only to say so early; the server's check is the one that counts.
    if (optionalJson(text, "policy_config") !== undefined) form.append("policy_config", text);
    if (!component && !text.trim()) throw new Error("Choose a component, give a policy_config, or both.");
    const policy = await api.request("PUT", policyUrl(tenant), form);
    policyRow(policy);
    $("policy-component").value = "";
    $("operator-status").textContent = `policy set for ${policy.tenant}`;
  });
}
