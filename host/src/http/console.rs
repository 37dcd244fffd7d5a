//! The web console (`docs/console.md`): static files embedded in the binary and
//! served without a token at `GET /` (the page) and `GET /console/{path}` (the
//! rest); the page's scripts then call the public API with the token the user
//! gives. A path is looked up in the embedded table and nowhere else, so no path,
//! however encoded, reaches the disk.

use super::body::{Body, empty, full};
use super::error::{ApiError, ApiResult};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// One embedded file: its path under `/console/`, its type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $content_type:expr,)*) => {
        /// Every file the console serves (`host/console/`, embedded at build time).
        const ASSETS: &[Asset] = &[$(Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../console/", $path)),
        },)*];
    };
}

assets! {
    "index.html" => HTML,
    "console.css" => CSS,
    "js/api.js" => JS,
    "js/dom.js" => JS,
    "js/main.js" => JS,
    "js/sessions.js" => JS,
    "js/files.js" => JS,
    "js/environment.js" => JS,
    "js/diff.js" => JS,
    "js/terminals.js" => JS,
    "js/operator.js" => JS,
    "js/paged.js" => JS,
    "vendor/xterm/xterm.mjs" => JS,
    "vendor/xterm/xterm.css" => CSS,
    "vendor/xterm/LICENSE" => TEXT,
    "vendor/addon-fit/addon-fit.mjs" => JS,
    "vendor/addon-fit/LICENSE" => TEXT,
}

/// Only the server's own scripts and styles, API calls and WebSockets to the same
/// origin (CSP3 `'self'` covers `ws:`/`wss:` of the same host), no framing.
/// xterm.js's DOM renderer injects `<style>` elements (its cell sizes, the theme),
/// hence `'unsafe-inline'` for styles; scripts stay `'self'` only.
const CSP: &str = "default-src 'self'; script-src 'self'; \
                   style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// Each asset's strong ETag (its sha256), computed on first use.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| format!("\"{}\"", hex::encode(Sha256::digest(asset.bytes))))
        .collect()
});

/// `GET /`: the console's page.
pub fn index(request: &HeaderMap) -> ApiResult<Response<Body>> {
    asset("index.html", request)
}

/// `GET /console/{path}`: one embedded file, `304` when `If-None-Match` names it.
pub fn asset(path: &str, request: &HeaderMap) -> ApiResult<Response<Body>> {
    let found = ASSETS.iter().position(|asset| asset.path == path);
    let at = found.ok_or_else(|| ApiError::not_found("no such console file"))?;
    let (asset, etag) = (&ASSETS[at], &ETAGS[at]);
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*")
        });
    let mut response = if unchanged {
        let mut response = Response::new(empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(full(asset.bytes));
        let content_type = HeaderValue::from_static(asset.content_type);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        response
    };
    let headers = response.headers_mut();
    let etag =
        HeaderValue::from_str(etag).map_err(|e| ApiError::internal("composing a header", e))?;
    headers.insert(header::ETAG, etag);
    // Revalidated on every load (the ETag makes that a 304), so a new binary's
    // console is never mixed with a cached one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_its_own_path_and_the_page_is_one_of_them() {
        let mut paths: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
        assert!(paths.contains(&"index.html"));
    }
}
