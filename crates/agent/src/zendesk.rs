//! Creating tickets through Zendesk's Tickets API (`POST /api/v2/tickets.json`).

use std::time::Duration;

use serde_json::json;

/// Where and as whom to create Zendesk tickets.
#[derive(Clone)]
pub struct ZendeskConfig {
    /// `https://{subdomain}.zendesk.com`, or another base URL (a proxy, a test server).
    pub base_url: String,
    /// The agent email the API token belongs to.
    pub email: String,
    pub api_token: String,
}

impl std::fmt::Debug for ZendeskConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZendeskConfig")
            .field("base_url", &self.base_url)
            .field("email", &self.email)
            .field("api_token", &"***")
            .finish()
    }
}

/// Why Zendesk did not create the ticket.
#[derive(Debug, thiserror::Error)]
pub enum ZendeskError {
    #[error("Zendesk could not be reached: {0}")]
    Unreachable(String),
    #[error("Zendesk answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("Zendesk's answer had no ticket id")]
    NoTicketId,
}

/// A Zendesk API client.
#[derive(Debug, Clone)]
pub struct ZendeskClient {
    config: ZendeskConfig,
    http: reqwest::Client,
}

/// The fields of a ticket to open in Zendesk.
#[derive(Debug)]
pub struct ZendeskTicket<'a> {
    pub subject: &'a str,
    pub description: &'a str,
    pub requester_email: &'a str,
    pub priority: &'a str,
}

impl ZendeskClient {
    /// A client with a 15-second timeout for each call.
    pub fn new(config: ZendeskConfig) -> ZendeskClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        ZendeskClient { config, http }
    }

    /// Creates the ticket and returns Zendesk's ticket id.
    pub async fn create_ticket(&self, ticket: &ZendeskTicket<'_>) -> Result<i64, ZendeskError> {
        let url = format!(
            "{}/api/v2/tickets.json",
            self.config.base_url.trim_end_matches('/')
        );
        let body = json!({
            "ticket": {
                "subject": ticket.subject,
                "comment": { "body": ticket.description },
                "priority": ticket.priority,
                "requester": { "email": ticket.requester_email },
                "tags": ["integrator-agent"],
            }
        });
        let response = self
            .http
            .post(url)
            .basic_auth(
                format!("{}/token", self.config.email),
                Some(&self.config.api_token),
            )
            .json(&body)
            .send()
            .await
            .map_err(|e| ZendeskError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ZendeskError::Unreachable(e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(ZendeskError::Refused {
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.pointer("/ticket/id").and_then(|id| id.as_i64()))
            .ok_or(ZendeskError::NoTicketId)
    }
}
