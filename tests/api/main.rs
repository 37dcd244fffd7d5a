//! Black-box tests of the HTTP API against a spawned `reshost`, over real sockets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on anything it does not expect"
)]

mod admin;
mod admission;
mod archives;
mod caps;
mod changes;
mod cluster;
mod common;
mod console;
mod contract;
mod durability;
mod embedding;
mod escapes;
mod fairness;
mod file_events;
mod files;
mod filesystem;
mod fuzz;
mod grep;
mod isolation;
mod pagination;
mod plugins;
mod policy;
mod processes;
mod quotas;
mod request_ids;
mod sandbox;
mod search;
mod sessions;
mod shell;
mod shell_stream;
mod snapshots;
mod startup;
mod terminals;
