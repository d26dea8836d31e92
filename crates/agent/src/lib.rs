//! The agent: its tools (a registry of typed, schema-checked tools) and the services behind
//! them (knowledge search with index sync, support tickets with Zendesk).
//!
//! Architecture invariant: nothing here knows about HTTP requests or responses; callers hand
//! in a [`Principal`] and JSON arguments and get text or a typed error back.

mod knowledge;
mod principal;
pub mod tools;
mod zendesk;

pub use knowledge::{KnowledgeError, KnowledgeService, ShippedDoc};
pub use principal::Principal;
pub use tools::{ToolContext, ToolError, ToolInfo, ToolRegistry};
pub use zendesk::{ZendeskClient, ZendeskConfig, ZendeskError};
