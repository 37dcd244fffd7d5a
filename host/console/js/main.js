// The console's entry: sign-in (which kind of token), the pages, and the
// hash routes between them (#/sessions, #/sessions/<id>/<tab>, #/operator).

import * as api from "./api.js";
import { $, clear } from "./dom.js";
import * as sessions from "./sessions.js";
import * as operator from "./operator.js";

const PAGES = ["signin-page", "sessions-page", "session-page", "operator-page"];
let role = "";

/** "tenant" or "admin": the kind of token, found by what it may call. */
async function detect() {
  let refused;
  try {
    await api.get("/v1/sessions?limit=1");
    return "tenant";
  } catch (e) {
    if (e.status !== 401) throw e;
    refused = e;
  }
  try {
    await api.get("/admin/v1/slots");
    return "admin";
  } catch (e) {
    // Not an admin's either (or no admin API): the tenant API's refusal says why.
    if (e.status === 401 || e.status === 404) throw refused;
    throw e;
  }
}

function showPage(id) {
  for (const page of PAGES) $(page).hidden = page !== id;
}

function signedIn(kind) {
  role = kind;
  $("whoami").textContent = kind;
  $("who").hidden = false;
  $("nav").hidden = false;
  // Admin tokens are no tenant's (401 on /v1): they get the operator pages only.
  $("nav-sessions").hidden = kind !== "tenant";
  $("nav-operator").hidden = kind !== "admin";
}

function signOut() {
  api.setToken("");
  role = "";
  sessions.leave();
  $("who").hidden = true;
  $("nav").hidden = true;
  $("token").value = "";
  clear("signin-error");
  history.replaceState(null, "", location.pathname);
  showPage("signin-page");
  $("token").focus();
}

/** Goes to `hash`, showing its page even when the hash is already that. */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** Shows the page the hash names (or the role's home page). */
function route() {
  if (!role) {
    showPage("signin-page");
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (role === "admin") {
    sessions.leave();
    showPage("operator-page");
    operator.show();
  } else if (parts[0] === "sessions" && parts[1]) {
    showPage("session-page");
    sessions.open(parts[1], parts[2]);
  } else {
    sessions.leave();
    showPage("sessions-page");
    sessions.show();
  }
}

async function signIn(event) {
  event.preventDefault();
  clear("signin-error");
  const value = $("token").value.trim();
  if (!value) {
    $("signin-error").textContent = "Enter a token.";
    return;
  }
  api.setToken(value);
  $("signin-submit").disabled = true;
  try {
    signedIn(await detect());
    $("token").value = "";
    go(role === "admin" ? "#/operator" : "#/sessions");
  } catch (e) {
    api.setToken("");
    $("signin-error").textContent =
      e.status === 401 ? `Token refused: ${e.describe()}` : `Could not sign in: ${api.describe(e)}`;
  } finally {
    $("signin-submit").disabled = false;
  }
}

async function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("nav-sessions").addEventListener("click", () => go("#/sessions"));
  $("nav-operator").addEventListener("click", () => go("#/operator"));
  window.addEventListener("hashchange", route);
  sessions.init();
  operator.init();
  if (api.token()) {
    // A reload: the tab still holds the token.
    try {
      signedIn(await detect());
    } catch (e) {
      api.setToken("");
      $("signin-error").textContent = `Signed out: ${api.describe(e)}`;
    }
  }
  route();
}

start();
