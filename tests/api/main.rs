//! Black-box tests of the HTTP API against a spawned `reshost`, over real sockets.

mod common;
mod durability;
mod files;
mod isolation;
mod pagination;
mod policy;
mod sessions;
mod shell;
mod startup;
