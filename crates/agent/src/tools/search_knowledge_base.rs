//! `search_knowledge_base`: ranked search over docs, articles, the tenant's tickets and templates.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{limit_argument, str_argument, Tool, ToolContext, ToolError};
use crate::KnowledgeService;

/// The knowledge-search tool.
pub struct SearchKnowledgeBase {
    knowledge: Arc<KnowledgeService>,
}

impl SearchKnowledgeBase {
    pub fn new(knowledge: Arc<KnowledgeService>) -> SearchKnowledgeBase {
        SearchKnowledgeBase { knowledge }
    }
}

#[async_trait]
impl Tool for SearchKnowledgeBase {
    fn name(&self) -> &'static str {
        "search_knowledge_base"
    }

    fn description(&self) -> &'static str {
        "Search the knowledge base for articles, documentation, and support tickets related to the user's question."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "The search query", "minLength": 1, "maxLength": 1000},
                "limit": {"type": "integer", "description": "How many results to return (default 5)", "minimum": 1, "maximum": 20}
            },
            "required": ["query"]
        })
    }

    fn agentic(&self) -> bool {
        false
    }

    fn progress_message(&self) -> &'static str {
        "Searching the knowledge base..."
    }

    async fn execute(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        let query = str_argument(&arguments, "query");
        let limit = limit_argument(&arguments, 5);
        let hits = self
            .knowledge
            .search(query, &context.principal.tenant_id, &[], limit)
            .await
            .map_err(|e| ToolError::Failed(format!("The knowledge base search failed: {e}")))?;
        if hits.is_empty() {
            return Ok(format!(
                "No documentation, articles, tickets or templates match \"{query}\". \
                 Try other words, or create a support ticket with create_support_ticket."
            ));
        }
        let mut out = String::from("Based on the knowledge base:\n");
        for hit in hits {
            out.push_str(&format!(
                "\n## {}\n*{}* · {}\n\n{}\n",
                hit.title,
                hit.kind.as_str(),
                hit.link,
                hit.snippet
            ));
        }
        Ok(out)
    }
}
