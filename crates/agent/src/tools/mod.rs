//! Tools: the `Tool` trait, the registry that lists them and checks their arguments against
//! each tool's JSON Schema, and the tools themselves.

mod create_support_ticket;
mod search_knowledge_base;
mod search_templates;
mod workspace_tools;

use crate::Code;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument;

use async_trait::async_trait;
use billing::{Billing, BillingError, Charge, Payer, Reservation};
use serde_json::Value;

use crate::Principal;

pub use create_support_ticket::CreateSupportTicket;
pub use search_knowledge_base::SearchKnowledgeBase;
pub use search_templates::SearchTemplates;
pub use workspace_tools::{HostCli, HostListCommands, ImportTemplate};

/// What a tool knows about the call it serves.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub principal: Principal,
    /// The chat session the call belongs to, if any (for the usage ledger).
    pub session_id: Option<String>,
}

/// Why a tool call did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool has this name.
    #[error("Tool not found: {0}")]
    NotFound(String),
    /// The arguments do not match the tool's schema.
    #[error("{message}")]
    InvalidArguments {
        /// `MissingField`, `InvalidField` or `InvalidRequest` (not an object).
        code: Code,
        field: Option<String>,
        message: String,
    },
    /// The caller's role may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(String),
    /// A workspace command that cannot be parsed (the message shows where and the valid ones).
    #[error("{0}")]
    InvalidCommand(String),
    /// A billed tool was refused: allowance and wallet are spent.
    #[error("AI usage cap exceeded")]
    CapExceeded,
}

impl ToolError {
    /// The machine-readable code of this error.
    pub fn code(&self) -> Code {
        match self {
            ToolError::NotFound(_) => Code::ToolNotFound,
            ToolError::InvalidArguments { code, .. } => *code,
            ToolError::PermissionDenied(_) => Code::PermissionDenied,
            ToolError::Failed(_) => Code::ToolFailed,
            ToolError::CapExceeded => Code::CapExceeded,
            ToolError::InvalidCommand(_) => Code::InvalidCommand,
        }
    }
}

/// One capability the agent (and API clients) can call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name clients call it by.
    fn name(&self) -> &'static str;
    /// What it does, for humans and the LLM.
    fn description(&self) -> &'static str;
    /// The JSON Schema of its arguments.
    fn parameters(&self) -> Value;
    /// Whether calls are billed and count toward usage caps.
    fn agentic(&self) -> bool;
    /// What a client shows while it runs, e.g. "Searching the knowledge base...".
    fn progress_message(&self) -> &'static str;
    /// Runs the tool on arguments already checked against [`Tool::parameters`].
    async fn execute(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError>;
}

/// The description of a tool as `GET /tools` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: Value,
    pub agentic: bool,
}

struct Registered {
    tool: Arc<dyn Tool>,
    validator: jsonschema::Validator,
}

/// The tools available to a server, in a stable order.
#[derive(Default)]
pub struct ToolRegistry {
    tools: Vec<Registered>,
    by_name: HashMap<&'static str, usize>,
    billing: Option<Arc<Billing>>,
}

impl ToolRegistry {
    /// An empty registry whose billed tools are charged through `billing`.
    pub fn new(billing: Arc<Billing>) -> ToolRegistry {
        ToolRegistry {
            billing: Some(billing),
            ..ToolRegistry::default()
        }
    }

    /// Adds a tool; its schema must itself be a valid JSON Schema.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), String> {
        let validator = jsonschema::validator_for(&tool.parameters())
            .map_err(|e| format!("tool {} has an invalid schema: {e}", tool.name()))?;
        self.by_name.insert(tool.name(), self.tools.len());
        self.tools.push(Registered { tool, validator });
        Ok(())
    }

    /// Every tool's public description.
    pub fn list(&self) -> Vec<ToolInfo> {
        self.tools
            .iter()
            .map(|r| ToolInfo {
                name: r.tool.name(),
                description: r.tool.description(),
                parameters: r.tool.parameters(),
                agentic: r.tool.agentic(),
            })
            .collect()
    }

    /// The names of all tools, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.tools.iter().map(|r| r.tool.name()).collect()
    }

    /// The tool with this name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.by_name.get(name).map(|&i| self.tools[i].tool.clone())
    }

    /// Checks arguments against the tool's schema; the error names the first field at fault.
    pub fn validate(&self, name: &str, arguments: &Value) -> Result<(), ToolError> {
        let registered = self
            .by_name
            .get(name)
            .map(|&i| &self.tools[i])
            .ok_or_else(|| ToolError::NotFound(name.to_string()))?;
        if !arguments.is_object() {
            return Err(ToolError::InvalidArguments {
                code: Code::InvalidRequest,
                field: None,
                message: format!(
                    "The arguments of {name} must be a JSON object, not {}",
                    json_type(arguments)
                ),
            });
        }
        let Some(error) = registered.validator.iter_errors(arguments).next() else {
            return Ok(());
        };
        let (code, field, problem) = match &error.kind {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                let field = property.as_str().unwrap_or_default().to_string();
                let problem = format!("missing required field '{field}'");
                (Code::MissingField, field, problem)
            }
            _ => {
                let field = error
                    .instance_path
                    .as_str()
                    .trim_start_matches('/')
                    .replace('/', ".");
                let problem = format!("field '{field}': {error}");
                (Code::InvalidField, field, problem)
            }
        };
        Err(ToolError::InvalidArguments {
            code,
            field: Some(field),
            message: format!("Invalid arguments for {name}: {problem}"),
        })
    }

    /// Validates and runs one tool call, counting it in the metrics. A billed tool first
    /// reserves its price (refused with `CapExceeded` when the budget is spent) and is charged
    /// when it succeeds.
    pub async fn execute(
        &self,
        context: &ToolContext,
        name: &str,
        arguments: Value,
    ) -> Result<String, ToolError> {
        self.validate(name, &arguments)?;
        let tool = self
            .get(name)
            .ok_or_else(|| ToolError::NotFound(name.to_string()))?;
        let billed = match (&self.billing, tool.agentic()) {
            (Some(billing), true) => Some((billing, self.reserve(billing, context, name).await?)),
            _ => None,
        };
        let started = std::time::Instant::now();
        let outcome = tool
            .execute(context, arguments)
            .instrument(tracing::info_span!("tool call", tool = name))
            .await;
        if let Some((billing, (reservation, payer))) = billed {
            if outcome.is_ok() {
                let charge = Charge::Tool {
                    name: name.to_string(),
                };
                if let Err(e) = billing.settle(reservation, &payer, &charge).await {
                    tracing::error!(error = %e, tool = name, "could not record a billed tool call");
                }
            } else {
                billing.release(reservation).await;
            }
        }
        let status = if outcome.is_ok() { "ok" } else { "error" };
        metrics::counter!("tool_executions_total", "tool" => tool.name(), "status" => status)
            .increment(1);
        metrics::histogram!("tool_execution_duration_seconds", "tool" => tool.name())
            .record(started.elapsed().as_secs_f64());
        outcome
    }
}

impl ToolRegistry {
    async fn reserve(
        &self,
        billing: &Billing,
        context: &ToolContext,
        name: &str,
    ) -> Result<(Reservation, Payer), ToolError> {
        let principal = &context.principal;
        let payer = Payer {
            tenant_id: principal.tenant_id.clone(),
            user_id: principal.user_id.clone(),
            key_id: Some(principal.key_id.clone()),
            session_id: context.session_id.clone(),
        };
        let unavailable = |e: BillingError| {
            tracing::error!(error = %e, "could not check the budget for a billed tool");
            ToolError::Failed("The usage budget could not be checked; please retry".into())
        };
        let own_key = billing
            .own_key_for(&principal.tenant_id)
            .await
            .map_err(unavailable)?
            .is_some();
        let charge = Charge::Tool {
            name: name.to_string(),
        };
        match billing.reserve(&payer, &charge, own_key).await {
            Ok(reservation) => Ok((reservation, payer)),
            Err(BillingError::CapExceeded) => {
                metrics::counter!("billing_refusals_total", "what" => "tool_call").increment(1);
                Err(ToolError::CapExceeded)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads an optional `limit` argument already checked by the schema.
pub(crate) fn limit_argument(arguments: &Value, default: usize) -> usize {
    arguments
        .get("limit")
        .and_then(Value::as_u64)
        .map(|l| l as usize)
        .unwrap_or(default)
}

/// Reads a string argument already checked by the schema.
pub(crate) fn str_argument<'a>(arguments: &'a Value, name: &str) -> &'a str {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use billing::{Allowances, BillingClock, PriceTable};
    use serde_json::json;
    use store::{MasterKey, NewTenant, NewUser, Role, Store, Tier};

    /// A billed tool that only echoes: the registry's billing is what is under test.
    struct Echo;

    #[async_trait]
    impl Tool for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn description(&self) -> &'static str {
            "Echoes its text"
        }
        fn parameters(&self) -> Value {
            json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
        }
        fn agentic(&self) -> bool {
            true
        }
        fn progress_message(&self) -> &'static str {
            "Echoing..."
        }
        async fn execute(&self, _: &ToolContext, arguments: Value) -> Result<String, ToolError> {
            Ok(arguments["text"].as_str().unwrap_or_default().to_string())
        }
    }

    #[tokio::test]
    async fn billed_tools_are_charged_per_call_and_refused_when_the_budget_is_spent() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::connect(&store::DatabaseTarget::Sqlite(dir.path().join("t.db")))
            .await
            .expect("store");
        let tenant = store
            .create_tenant(&NewTenant {
                name: "t".into(),
                tier: Tier::Free,
                allowance_micros: Some(0),
                ai_enabled: true,
            })
            .await
            .expect("tenant");
        let user = store
            .create_user(
                &NewUser {
                    tenant_name: "t".into(),
                    email: "u@t.test".into(),
                    role: Role::User,
                    api_access: true,
                },
                "operator",
            )
            .await
            .expect("user");
        store
            .top_up_wallet("t", 4_000, "operator")
            .await
            .expect("top up");
        let billing = Arc::new(Billing::new(
            store.clone(),
            PriceTable::default(),
            Allowances::default(),
            BillingClock::default(),
            MasterKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").expect("key"),
        ));
        let mut registry = ToolRegistry::new(billing.clone());
        registry.register(Arc::new(Echo)).expect("register");
        let context = ToolContext {
            principal: Principal {
                key_id: "k".into(),
                user_id: user.id.clone(),
                email: user.email.clone(),
                role: Role::User,
                tenant_id: tenant.id.clone(),
                tenant_name: "t".into(),
            },
            session_id: None,
        };
        for _ in 0..2 {
            let out = registry
                .execute(&context, "echo", json!({"text": "hi"}))
                .await;
            assert_eq!(out, Ok("hi".to_string()));
        }
        let refused = registry
            .execute(&context, "echo", json!({"text": "hi"}))
            .await;
        assert_eq!(refused, Err(ToolError::CapExceeded));
        assert_eq!(refused.err().map(|e| e.code()), Some(Code::CapExceeded));
        let report = billing
            .report(&tenant.id, "u@t.test", false)
            .await
            .expect("report");
        assert_eq!(report.tenant.by_tool["echo"].calls, 2);
        assert_eq!(report.wallet_usd, 0.0);
    }
}
