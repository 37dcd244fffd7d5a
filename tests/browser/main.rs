//! End-to-end tests of the web console: headless Chromium, driven over the DevTools
//! protocol, against a real `reshost` per test (see README.md here).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on anything it does not expect"
)]

mod browser;
mod cdp;
#[path = "../api/common.rs"]
#[allow(dead_code)]
mod common;
mod console;
mod harness;
