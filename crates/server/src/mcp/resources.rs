//! The knowledge base as MCP resources: the documentation pages shipped with the server
//! (`integrator://docs/<file>.md`, Markdown) and the template catalog
//! (`integrator://templates/<id>`, JSON), listed a page at a time.

use std::sync::OnceLock;

use agent::ShippedDoc;
use rmcp::model::{ErrorData, ListResourcesResult, ReadResourceResult, Resource, ResourceContents};
use workspace::TemplateCatalog;

/// Resources per page of `resources/list`.
const PAGE: usize = 50;
const DOCS: &str = "integrator://docs/";
const TEMPLATES: &str = "integrator://templates/";

fn shipped_docs() -> &'static [ShippedDoc] {
    static DOCS: OnceLock<Vec<ShippedDoc>> = OnceLock::new();
    DOCS.get_or_init(crate::corpus::shipped_docs)
}

/// A page's file name under `docs/` (`connection-http.md`).
fn doc_name(doc: &ShippedDoc) -> &str {
    doc.path.strip_prefix("docs/").unwrap_or(&doc.path)
}

/// The page's title: its first heading, or its file name.
fn doc_title(doc: &ShippedDoc) -> String {
    doc.markdown
        .lines()
        .find_map(|line| line.strip_prefix("# "))
        .map(|title| title.trim().to_string())
        .unwrap_or_else(|| doc_name(doc).to_string())
}

/// Every resource, docs first, in a stable order.
fn all(catalog: &TemplateCatalog) -> Vec<Resource> {
    let docs = shipped_docs().iter().map(|doc| {
        Resource::new(format!("{DOCS}{}", doc_name(doc)), doc_name(doc))
            .with_title(doc_title(doc))
            .with_mime_type("text/markdown")
            .with_size(doc.markdown.len() as u64)
    });
    let templates = catalog.all().iter().map(|template| {
        Resource::new(format!("{TEMPLATES}{}", template.id), template.name.clone())
            .with_title(template.name.clone())
            .with_description(template.description.clone())
            .with_mime_type("application/json")
    });
    docs.chain(templates).collect()
}

/// One page of `resources/list`; the cursor is where the page starts.
pub fn list(
    catalog: &TemplateCatalog,
    cursor: Option<&str>,
) -> Result<ListResourcesResult, ErrorData> {
    let start = match cursor {
        None => 0,
        Some(text) => text.parse::<usize>().map_err(|_| {
            ErrorData::invalid_params(
                format!("Unknown cursor '{text}': pass the nextCursor of the last page"),
                None,
            )
        })?,
    };
    let resources = all(catalog);
    let end = (start + PAGE).min(resources.len());
    let page = resources
        .get(start..end)
        .map(<[Resource]>::to_vec)
        .unwrap_or_default();
    let mut result = ListResourcesResult::with_all_items(page);
    if end < resources.len() {
        result.next_cursor = Some(end.to_string());
    }
    Ok(result)
}

/// The contents of one resource, or `resource_not_found` naming the URI.
pub fn read(catalog: &TemplateCatalog, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let missing = || {
        ErrorData::resource_not_found(
            format!("No resource {uri}: resources/list gives the documents and templates"),
            Some(serde_json::json!({ "uri": uri })),
        )
    };
    if let Some(name) = uri.strip_prefix(DOCS) {
        let doc = shipped_docs()
            .iter()
            .find(|doc| doc_name(doc) == name)
            .ok_or_else(missing)?;
        return Ok(ReadResourceResult::new(vec![ResourceContents::text(
            doc.markdown.clone(),
            uri,
        )
        .with_mime_type("text/markdown")]));
    }
    if let Some(id) = uri.strip_prefix(TEMPLATES) {
        let template = id
            .parse::<u32>()
            .ok()
            .and_then(|id| catalog.get(id))
            .ok_or_else(missing)?;
        let json = serde_json::to_string_pretty(template)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        return Ok(ReadResourceResult::new(vec![ResourceContents::text(
            json, uri,
        )
        .with_mime_type("application/json")]));
    }
    Err(missing())
}
