//! `create_support_ticket`: stores a ticket for the caller's tenant, makes it searchable at
//! once, and opens it in Zendesk when Zendesk is configured.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use store::{NewTicket, Store, TicketPriority};

use super::{str_argument, Tool, ToolContext, ToolError};
use crate::zendesk::{ZendeskClient, ZendeskTicket};
use crate::KnowledgeService;

/// The support-ticket tool.
pub struct CreateSupportTicket {
    store: Store,
    knowledge: Arc<KnowledgeService>,
    zendesk: Option<ZendeskClient>,
}

impl CreateSupportTicket {
    pub fn new(
        store: Store,
        knowledge: Arc<KnowledgeService>,
        zendesk: Option<ZendeskClient>,
    ) -> CreateSupportTicket {
        CreateSupportTicket {
            store,
            knowledge,
            zendesk,
        }
    }
}

#[async_trait]
impl Tool for CreateSupportTicket {
    fn name(&self) -> &'static str {
        "create_support_ticket"
    }

    fn description(&self) -> &'static str {
        "Create a support ticket (also in Zendesk when configured) for a problem the knowledge base does not solve."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "subject": {"type": "string", "description": "One-line summary of the problem", "minLength": 1, "maxLength": 200},
                "description": {"type": "string", "description": "What happened, what was expected, error messages", "minLength": 1, "maxLength": 20000},
                "user_email": {"type": "string", "description": "Who to answer (default: the caller's email)", "maxLength": 254, "pattern": "^[^@\\s]+@[^@\\s]+$"},
                "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"], "description": "Default normal"}
            },
            "required": ["subject", "description"]
        })
    }

    fn agentic(&self) -> bool {
        false
    }

    fn progress_message(&self) -> &'static str {
        "Creating a support ticket..."
    }

    async fn execute(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        let principal = &context.principal;
        let requester = match str_argument(&arguments, "user_email") {
            "" => principal.email.clone(),
            email => email.to_string(),
        };
        let priority: TicketPriority = match str_argument(&arguments, "priority") {
            "" => TicketPriority::Normal,
            other => other
                .parse()
                .map_err(|message| ToolError::InvalidArguments {
                    code: crate::Code::InvalidField,
                    field: Some("priority".into()),
                    message,
                })?,
        };
        let new = NewTicket {
            tenant_id: principal.tenant_id.clone(),
            user_id: principal.user_id.clone(),
            subject: str_argument(&arguments, "subject").trim().to_string(),
            description: str_argument(&arguments, "description").trim().to_string(),
            requester_email: requester,
            priority,
        };
        let mut ticket = self
            .store
            .create_ticket(&new)
            .await
            .map_err(|e| ToolError::Failed(format!("The ticket could not be stored: {e}")))?;

        let zendesk_line = match &self.zendesk {
            None => String::new(),
            Some(zendesk) => {
                let request = ZendeskTicket {
                    subject: &ticket.subject,
                    description: &ticket.description,
                    requester_email: &ticket.requester_email,
                    priority: ticket.priority.as_str(),
                };
                match zendesk.create_ticket(&request).await {
                    Ok(zendesk_id) => {
                        self.store
                            .set_ticket_zendesk_id(&ticket.id, zendesk_id)
                            .await
                            .map_err(|e| {
                                ToolError::Failed(format!("The ticket could not be updated: {e}"))
                            })?;
                        ticket.zendesk_id = Some(zendesk_id);
                        format!("- Zendesk ticket: #{zendesk_id}\n")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, ticket = %ticket.id, "Zendesk ticket creation failed");
                        format!("- Zendesk: not created ({e}); the ticket is kept here and support can still see it\n")
                    }
                }
            }
        };
        if let Err(e) = self.knowledge.index_ticket(&ticket).await {
            tracing::warn!(error = %e, "ticket stored but not yet indexed; the next sync will index it");
        }
        Ok(format!(
            "Support ticket created.\n\n- Ticket id: {}\n- Subject: {}\n- Priority: {}\n- Requester: {}\n{zendesk_line}",
            ticket.id,
            ticket.subject,
            ticket.priority.as_str(),
            ticket.requester_email
        ))
    }
}
