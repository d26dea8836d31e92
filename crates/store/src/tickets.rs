//! Support tickets, stored per tenant.

use std::str::FromStr;

use sqlx::Row;

use crate::write::args;
use crate::{new_id, now_millis, Store, StoreError};

/// How urgent a ticket is (Zendesk's priorities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketPriority {
    Low,
    Normal,
    High,
    Urgent,
}

impl TicketPriority {
    /// The stored name, also Zendesk's.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketPriority::Low => "low",
            TicketPriority::Normal => "normal",
            TicketPriority::High => "high",
            TicketPriority::Urgent => "urgent",
        }
    }
}

impl FromStr for TicketPriority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(TicketPriority::Low),
            "normal" => Ok(TicketPriority::Normal),
            "high" => Ok(TicketPriority::High),
            "urgent" => Ok(TicketPriority::Urgent),
            other => Err(format!(
                "unknown priority '{other}' (expected low, normal, high or urgent)"
            )),
        }
    }
}

/// A stored support ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub subject: String,
    pub description: String,
    pub requester_email: String,
    pub priority: TicketPriority,
    pub status: String,
    pub zendesk_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A ticket to open.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub tenant_id: String,
    pub user_id: String,
    pub subject: String,
    pub description: String,
    pub requester_email: String,
    pub priority: TicketPriority,
}

const TICKET_COLUMNS: &str = "id, tenant_id, user_id, subject, description, requester_email, priority, status, zendesk_id, created_at, updated_at";

fn ticket_from_row(row: &sqlx::any::AnyRow) -> Result<Ticket, StoreError> {
    let priority: String = row.try_get("priority")?;
    Ok(Ticket {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        user_id: row.try_get("user_id")?,
        subject: row.try_get("subject")?,
        description: row.try_get("description")?,
        requester_email: row.try_get("requester_email")?,
        priority: priority.parse().map_err(StoreError::Invalid)?,
        status: row.try_get("status")?,
        zendesk_id: row.try_get("zendesk_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Stores a new open ticket.
    pub async fn create_ticket(&self, new: &NewTicket) -> Result<Ticket, StoreError> {
        let now = now_millis();
        let ticket = Ticket {
            id: new_id(),
            tenant_id: new.tenant_id.clone(),
            user_id: new.user_id.clone(),
            subject: new.subject.clone(),
            description: new.description.clone(),
            requester_email: new.requester_email.clone(),
            priority: new.priority,
            status: "open".to_string(),
            zendesk_id: None,
            created_at: now,
            updated_at: now,
        };
        let sql = format!(
            "INSERT INTO tickets ({TICKET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $9)"
        );
        let values = args![
            &ticket.id,
            &ticket.tenant_id,
            &ticket.user_id,
            &ticket.subject,
            &ticket.description,
            &ticket.requester_email,
            ticket.priority.as_str(),
            &ticket.status,
            now
        ];
        self.execute(&sql, values).await?;
        Ok(ticket)
    }

    /// A tenant's tickets, newest first, at most `limit`.
    pub async fn tenant_tickets(
        &self,
        tenant_id: &str,
        limit: i64,
    ) -> Result<Vec<Ticket>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE tenant_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ticket_from_row).collect()
    }

    /// Records the id Zendesk gave the ticket.
    pub async fn set_ticket_zendesk_id(
        &self,
        ticket_id: &str,
        zendesk_id: i64,
    ) -> Result<(), StoreError> {
        let values = args![zendesk_id, now_millis(), ticket_id];
        self.execute(
            "UPDATE tickets SET zendesk_id = $1, updated_at = $2 WHERE id = $3",
            values,
        )
        .await?;
        Ok(())
    }

    /// Tickets changed after the position `(updated_at, id)`, in that order, at most `limit`:
    /// page through changes by passing the last row's position.
    pub async fn tickets_changed_after(
        &self,
        updated_at: i64,
        id: &str,
        limit: i64,
    ) -> Result<Vec<Ticket>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE updated_at > $1 OR (updated_at = $1 AND id > $2) \
             ORDER BY updated_at, id LIMIT $3"
        ))
        .bind(updated_at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ticket_from_row).collect()
    }
}
