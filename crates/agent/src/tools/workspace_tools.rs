//! The workspace tools: `host_list_commands`, `host_cli` and `import_template` — billed, and
//! acting only on the caller's tenant with the caller's role.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use workspace::command::COMMAND_REFERENCE;
use workspace::{Actor, ImportMode, Workspace, WorkspaceError};

use super::{str_argument, Tool, ToolContext, ToolError};

fn actor(context: &ToolContext) -> Actor {
    context.principal.actor()
}

fn tool_error(error: WorkspaceError) -> ToolError {
    match error {
        WorkspaceError::Parse(e) => ToolError::InvalidCommand(e.to_string()),
        WorkspaceError::PermissionDenied(message) => ToolError::PermissionDenied(message),
        WorkspaceError::Rejected(message) | WorkspaceError::NotFound(message) => {
            ToolError::Failed(message)
        }
        WorkspaceError::Connector(e) => ToolError::Failed(e.to_string()),
        WorkspaceError::Store(e) => {
            tracing::error!(error = %e, "workspace storage failed");
            ToolError::Failed("The workspace could not be read or written; please retry".into())
        }
    }
}

/// `host_list_commands`: the command reference.
pub struct HostListCommands;

#[async_trait]
impl Tool for HostListCommands {
    fn name(&self) -> &'static str {
        "host_list_commands"
    }
    fn description(&self) -> &'static str {
        "List all available workspace CLI commands (connections, flows, runs, schedules, templates) with their syntax."
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {}})
    }
    fn agentic(&self) -> bool {
        true
    }
    fn progress_message(&self) -> &'static str {
        "Listing the available commands..."
    }
    async fn execute(
        &self,
        _context: &ToolContext,
        _arguments: Value,
    ) -> Result<String, ToolError> {
        Ok(COMMAND_REFERENCE.to_string())
    }
}

/// `host_cli`: runs one workspace command.
pub struct HostCli {
    workspace: Arc<Workspace>,
}

impl HostCli {
    pub fn new(workspace: Arc<Workspace>) -> HostCli {
        HostCli { workspace }
    }
}

#[async_trait]
impl Tool for HostCli {
    fn name(&self) -> &'static str {
        "host_cli"
    }
    fn description(&self) -> &'static str {
        "Execute a CLI command on the Integrator host's workspace, e.g. 'list connections', 'create flow …', 'run flow NAME'. Never a shell; see host_list_commands for the syntax."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"command": {"type": "string", "description": "One workspace command, e.g. \"list connections\"", "minLength": 1, "maxLength": 8192}},
            "required": ["command"]
        })
    }
    fn agentic(&self) -> bool {
        true
    }
    fn progress_message(&self) -> &'static str {
        "Running a workspace command..."
    }
    async fn execute(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        self.workspace
            .execute(&actor(context), str_argument(&arguments, "command"))
            .await
            .map_err(tool_error)
    }
}

/// `import_template`: imports (or previews) a template into the caller's workspace.
pub struct ImportTemplate {
    workspace: Arc<Workspace>,
}

impl ImportTemplate {
    pub fn new(workspace: Arc<Workspace>) -> ImportTemplate {
        ImportTemplate { workspace }
    }
}

#[async_trait]
impl Tool for ImportTemplate {
    fn name(&self) -> &'static str {
        "import_template"
    }
    fn description(&self) -> &'static str {
        "Import a flow or connection template (template_id from search_templates) into the workspace; mode standard or composer (visual canvas); preview: true shows what would be created without creating it."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "template_id": {"type": "integer", "minimum": 1, "description": "The template's id from search_templates or 'list templates'"},
                "mode": {"type": "string", "enum": ["standard", "composer"], "description": "standard (default) or composer (visual canvas)"},
                "preview": {"type": "boolean", "description": "Only show what would be created (default false)"}
            },
            "required": ["template_id"]
        })
    }
    fn agentic(&self) -> bool {
        true
    }
    fn progress_message(&self) -> &'static str {
        "Importing the template..."
    }
    async fn execute(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        let template_id = arguments
            .get("template_id")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| ToolError::InvalidArguments {
                code: crate::Code::InvalidField,
                field: Some("template_id".into()),
                message: "Invalid arguments for import_template: field 'template_id' must be a positive integer".into(),
            })?;
        let mode = match str_argument(&arguments, "mode") {
            "composer" => ImportMode::Composer,
            _ => ImportMode::Standard,
        };
        let preview = arguments
            .get("preview")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        self.workspace
            .import_template(&actor(context), template_id, mode, preview)
            .await
            .map_err(tool_error)
    }
}
