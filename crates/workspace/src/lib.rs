//! The integration workspace: connections, flows, runs and schedules per tenant, the command
//! language that acts on them, the connectors that move the data, and the template catalog.
//!
//! Architecture invariant: `workspace` knows nothing about HTTP or the agent, and no command
//! ever reaches a shell.

pub mod command;
mod connections;
pub mod connectors;
pub mod egress;
pub mod flatten;
mod flows;
mod import;
pub mod redaction;
mod runner;
pub mod schedule;
mod scheduler;
mod service;
mod table;
mod templates;
pub mod views;

pub use egress::{EgressError, EgressPolicy};
pub use flows::{Canvas, CanvasEdge, CanvasNode};
pub use import::ImportMode;
pub use service::{format_duration, tenant_folder, Actor, Workspace, WorkspaceError};
pub use templates::{
    Template, TemplateCatalog, TemplateConnection, TemplateError, TemplateFlow, TemplateKind,
    TemplatePlaceholder, TemplateSchedule,
};
