//! The agent: the turn loop (one message in, one stream of typed events out), the language
//! models (OpenAI-compatible and the builtin responder), the tools (a registry of typed,
//! schema-checked tools) and the services behind them (knowledge search with index sync,
//! support tickets with Zendesk).
//!
//! Architecture invariant: nothing here knows about HTTP requests or responses; callers hand
//! in a [`Principal`] and JSON arguments and get text or a typed error back.

pub mod codes;
mod events;
mod follow;
pub mod journal;
mod knowledge;
pub mod llm;
mod models;
mod principal;
mod search_pool;
pub mod tools;
mod turn;
mod zendesk;

pub use codes::{Code, CodeKind};
pub use events::{AgentEvent, Phase};
pub use follow::{Follow, FollowError};
pub use journal::Cursor;
pub use knowledge::{KnowledgeError, KnowledgeService, ShippedDoc};
pub use models::{ModelResolver, ProviderSettings};
pub use principal::Principal;
pub use tools::{ToolContext, ToolError, ToolInfo, ToolRegistry};
pub use turn::{Agent, AgentSettings, TurnEvent, TurnHandle, TurnRequest, DEFAULT_SYSTEM_PROMPT};
pub use zendesk::{ZendeskClient, ZendeskConfig, ZendeskError};
