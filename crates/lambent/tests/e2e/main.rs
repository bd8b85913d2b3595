//! End-to-end tests: each starts the real `lambent serve` on a free loopback port with a fresh
//! data directory, deploys the real example guests, and talks to it over HTTP and through the CLI.

mod harness;

mod auth;
mod aws;
mod bad_input;
mod cli;
mod cli_events;
mod events;
mod functions;
mod hostile;
mod lifecycle;
mod metering;
mod sandbox;
mod scaling;
