//! The integration workspace: connections, flows, runs and schedules per tenant, the command
//! language that acts on them, the connectors that move the data, and the template catalog.
//!
//! Architecture invariant: `workspace` knows nothing about HTTP or the agent, and no command
//! ever reaches a shell.

pub mod command;
mod connections;
pub mod connectors;
pub mod flatten;
mod flows;
mod import;
mod runner;
pub mod schedule;
mod scheduler;
mod service;
mod table;
mod templates;

pub use flows::{Canvas, CanvasEdge, CanvasNode};
pub use import::ImportMode;
pub use service::{Actor, Workspace, WorkspaceError};
pub use templates::{
    Template, TemplateCatalog, TemplateConnection, TemplateError, TemplateFlow, TemplateKind,
    TemplatePlaceholder, TemplateSchedule,
};
