// The one way to the server: same-origin requests to the public API with the
// signed-in token, and the one place where failures become an ApiError.

const TOKEN_KEY = "reshost.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) {
    sessionStorage.setItem(TOKEN_KEY, value);
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
  }
}

/** A failed request: the HTTP status and the API's error body, as sent. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** "409 conflict: <the server's message>", or what the network said. */
  describe() {
    if (!this.status) return this.message;
    const code = this.code ? ` ${this.code}` : "";
    return `${this.status}${code}: ${this.message}`;
  }
}

/** Any thrown value as the text to show. */
export function describe(error) {
  return error instanceof ApiError ? error.describe() : String(error && error.message || error);
}

/** The ApiError of a non-2xx answer whose body is `text`. */
function failure(status, statusText, text) {
  try {
    const body = JSON.parse(text);
    if (body && body.error) return new ApiError(status, body.error.code, body.error.message);
  } catch {
    // Not the API's JSON error: show the raw text below.
  }
  return new ApiError(status, "", text || statusText);
}

/**
 * Sends a request and answers its parsed JSON (null for an empty body).
 * `body` is JSON-encoded unless it is a Blob (a file, sent raw) or FormData.
 */
export async function request(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "", `network error: ${e.message}`);
  }
  const text = await response.text();
  if (!response.ok) {
    throw failure(response.status, response.statusText, text);
  }
  return text ? JSON.parse(text) : null;
}

export const get = (path) => request("GET", path);

/** A download's bytes as a Blob (the token cannot ride on a plain link). */
export async function blob(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  } catch (e) {
    throw new ApiError(0, "", `network error: ${e.message}`);
  }
  if (!response.ok) {
    throw failure(response.status, response.statusText, await response.text());
  }
  return response.blob();
}

/**
 * POSTs `form` with XMLHttpRequest, whose upload events give the progress that
 * fetch does not; `progress` gets the percentage sent.
 */
export function upload(path, form, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) progress(Math.floor((e.loaded / e.total) * 100));
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(xhr.responseText ? JSON.parse(xhr.responseText) : null);
      } else {
        reject(failure(xhr.status, xhr.statusText, xhr.responseText));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "", "network error: the upload did not complete"));
    xhr.send(form);
  });
}

/** A path segment, percent-encoded. */
export const seg = encodeURIComponent;

/** An environment path (`/`-separated), each segment percent-encoded. */
export const pathUrl = (path) => path.split("/").map(encodeURIComponent).join("/");

/** A WebSocket URL on this server (browsers cannot send the header: `?token=`). */
export function socketUrl(path, query) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams({ ...query, token: token() });
  return `${scheme}//${location.host}${path}?${params}`;
}
