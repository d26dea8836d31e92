//! The integration workspace: what the agent's workspace tools act on. For now it holds the
//! template catalog shipped in `templates/`.
//!
//! Architecture invariant: `workspace` knows nothing about HTTP or the agent.

mod templates;

pub use templates::{
    Template, TemplateCatalog, TemplateConnection, TemplateError, TemplateFlow, TemplateKind,
    TemplatePlaceholder, TemplateSchedule,
};
