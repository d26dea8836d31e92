//! MCP sessions kept in the database, so that a session begun on one replica goes on on
//! another: the SDK asks this store for a session it does not hold in memory and replays the
//! client's `initialize` from it.

use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};
use store::Store;

/// The SDK's session store over the server's database (`mcp_sessions`).
pub struct DatabaseSessions {
    pub store: Store,
}

#[async_trait::async_trait]
impl SessionStore for DatabaseSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        match self.store.mcp_session_state(session_id).await? {
            Some(json) => Ok(Some(serde_json::from_str(&json)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let json = serde_json::to_string(state)?;
        self.store
            .store_mcp_session_state(session_id, &json)
            .await?;
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.store.delete_mcp_session(session_id).await?;
        Ok(())
    }
}
