//! The Integrator Agent server: HTTP routes over the domain crates, the admin command line,
//! configuration and composition. `main.rs` is the `integrator-agent` binary over this
//! library; the end-to-end tests build the same [`startup::Application`] in their process.
// The OpenAPI document's schemas are one large `json!` literal.
#![recursion_limit = "256"]

pub mod admin;
mod auth;
mod body;
pub mod cli;
pub mod config;
pub mod console;
mod corpus;
mod data_lock;
mod error;
mod listener;
mod mcp;
mod metrics;
mod openapi;
mod params;
mod reference;
mod request_limits;
mod request_log;
mod routes;
pub mod serve;
pub mod startup;
mod state;
mod unread_body;
