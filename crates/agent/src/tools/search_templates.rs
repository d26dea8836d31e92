//! `search_templates`: finds flow and connection templates of the catalog.

use std::sync::Arc;

use async_trait::async_trait;
use kb::DocKind;
use serde_json::{json, Value};
use workspace::{Template, TemplateCatalog, TemplateKind};

use super::{limit_argument, str_argument, Tool, ToolContext, ToolError};
use crate::KnowledgeService;

/// The template-search tool.
pub struct SearchTemplates {
    knowledge: Arc<KnowledgeService>,
    catalog: Arc<TemplateCatalog>,
}

impl SearchTemplates {
    pub fn new(knowledge: Arc<KnowledgeService>, catalog: Arc<TemplateCatalog>) -> SearchTemplates {
        SearchTemplates { knowledge, catalog }
    }
}

fn describe(template: &Template) -> String {
    let kind = match template.kind {
        TemplateKind::Flow => "flow template",
        TemplateKind::Connection => "connection template",
    };
    format!(
        "\n## {}\n*{kind}* · template_id: {} · tags: {}\n\n{}\n",
        template.name,
        template.id,
        template.tags.join(", "),
        template.description
    )
}

#[async_trait]
impl Tool for SearchTemplates {
    fn name(&self) -> &'static str {
        "search_templates"
    }

    fn description(&self) -> &'static str {
        "Search flow and connection templates by topic or integration name (e.g. 'REST API to PostgreSQL'). Each result has the template_id that import_template takes."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Topic or integration to find templates for; empty lists the whole catalog", "maxLength": 1000},
                "limit": {"type": "integer", "description": "How many templates to return (default 5)", "minimum": 1, "maximum": 50}
            },
            "required": ["query"]
        })
    }

    fn agentic(&self) -> bool {
        false
    }

    fn progress_message(&self) -> &'static str {
        "Searching templates..."
    }

    async fn execute(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        let query = str_argument(&arguments, "query").trim();
        let limit = limit_argument(&arguments, 5);
        let found: Vec<&Template> = if query.is_empty() {
            self.catalog.all().iter().take(limit).collect()
        } else {
            let hits = self
                .knowledge
                .search(
                    query,
                    &context.principal.tenant_id,
                    &[DocKind::Template],
                    limit,
                )
                .await
                .map_err(|e| ToolError::Failed(format!("The template search failed: {e}")))?;
            hits.iter()
                .filter_map(|hit| hit.id.strip_prefix("template:")?.parse().ok())
                .filter_map(|id| self.catalog.get(id))
                .collect()
        };
        if found.is_empty() {
            let names: Vec<String> = self
                .catalog
                .all()
                .iter()
                .map(|t| format!("{} ({})", t.name, t.id))
                .collect();
            return Ok(format!(
                "No template matches \"{query}\". The catalog has: {}.",
                names.join("; ")
            ));
        }
        let mut out = format!("Found {} template(s):\n", found.len());
        for template in found {
            out.push_str(&describe(template));
        }
        out.push_str(
            "\nImport one with import_template {\"template_id\": ID, \"mode\": \"standard\"} (add \"preview\": true to see what it creates first).\n",
        );
        Ok(out)
    }
}
