//! Integration tests for the whole system: HTTP over loopback against a real SQLite
//! file (`TestApp`), and the real `portcullis` executable for the CLI, crash
//! durability, logging and shutdown.

mod admin_api;
mod browser;
mod cli;
mod cluster;
mod crash;
mod discovery;
mod gatekeeper;
mod introspect;
mod limits;
mod nginx;
mod ops;
mod process;
mod revoke;
mod signin;
mod token;
mod util;
mod webhooks;
