//! End-to-end tests of the real `sightline` binary: each test starts it on free
//! loopback ports with its own data directory (see [`server::TestServer`]) and talks to
//! it the way users do: remote_write, OTLP (HTTP protobuf, HTTP JSON, gRPC), the
//! Prometheus HTTP API, `/metrics`, signals and the CLI.
//!
//! One test binary for the whole crate keeps link time down. Nothing here sleeps in
//! place of waiting: every wait polls a condition under a deadline.

mod bad_input;
mod cli;
mod client;
mod durability;
mod otlp;
mod query_api;
mod remote_write;
mod review_fixes;
mod scrape;
mod server;
mod tenancy;
