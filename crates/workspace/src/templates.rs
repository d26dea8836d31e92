//! The shipped template catalog: numbered flow and connection templates, compiled into the
//! binary from the repository's `templates/` folder and checked when loaded.

use std::collections::BTreeSet;

use include_dir::{include_dir, Dir};
use serde::{Deserialize, Serialize};

static TEMPLATE_FILES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../templates");

/// Why the catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template file {file} is invalid: {reason}")]
    Invalid { file: String, reason: String },
}

/// Whether a template creates a whole pipeline or only connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateKind {
    Flow,
    Connection,
}

/// A value the user fills in after importing (`{{NAME}}` in the template).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatePlaceholder {
    pub name: String,
    pub description: String,
}

/// A connection the template creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateConnection {
    pub name: String,
    #[serde(rename = "type")]
    pub connection_type: String,
    pub params: std::collections::BTreeMap<String, String>,
}

/// A flow the template creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateFlow {
    pub name: String,
    pub from: String,
    #[serde(default)]
    pub query: Option<String>,
    pub to: String,
    pub mode: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub map: Option<String>,
}

/// A schedule the template sets on one of its flows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSchedule {
    pub flow: String,
    #[serde(default)]
    pub every: Option<String>,
    #[serde(default)]
    pub cron: Option<String>,
}

/// One template of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub id: u32,
    pub name: String,
    pub kind: TemplateKind,
    pub tags: Vec<String>,
    pub description: String,
    pub placeholders: Vec<TemplatePlaceholder>,
    pub connections: Vec<TemplateConnection>,
    pub flows: Vec<TemplateFlow>,
    #[serde(default)]
    pub schedule: Option<TemplateSchedule>,
}

impl Template {
    /// The searchable text of the template: description, tags, what it creates.
    pub fn search_text(&self) -> String {
        let mut text = format!("{}\nTags: {}\n", self.description, self.tags.join(", "));
        for connection in &self.connections {
            text.push_str(&format!(
                "Connection {} ({})\n",
                connection.name, connection.connection_type
            ));
        }
        for flow in &self.flows {
            text.push_str(&format!(
                "Flow {}: from {} to {} ({})\n",
                flow.name, flow.from, flow.to, flow.mode
            ));
        }
        text
    }

    fn check(&self, file: &str) -> Result<(), TemplateError> {
        let invalid = |reason: String| TemplateError::Invalid {
            file: file.to_string(),
            reason,
        };
        let declared: BTreeSet<&str> = self.placeholders.iter().map(|p| p.name.as_str()).collect();
        let body = serde_json::to_string(&(&self.connections, &self.flows, &self.schedule))
            .map_err(|e| invalid(e.to_string()))?;
        let used = placeholders_in(&body);
        if let Some(missing) = used.iter().find(|p| !declared.contains(p.as_str())) {
            return Err(invalid(format!(
                "placeholder {{{{{missing}}}}} is not declared"
            )));
        }
        let names: BTreeSet<&str> = self.connections.iter().map(|c| c.name.as_str()).collect();
        for flow in &self.flows {
            for end in [&flow.from, &flow.to] {
                let connection = end.split(':').next().unwrap_or_default();
                if !names.contains(connection) {
                    return Err(invalid(format!(
                        "flow {} names unknown connection '{connection}'",
                        flow.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Every `{{NAME}}` in a text.
fn placeholders_in(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        found.insert(after[..end].to_string());
        rest = &after[end + 2..];
    }
    found
}

/// The numbered catalog of templates.
#[derive(Debug, Clone)]
pub struct TemplateCatalog {
    templates: Vec<Template>,
    fingerprint: String,
}

impl TemplateCatalog {
    /// Loads and checks the catalog compiled into the binary.
    pub fn shipped() -> Result<TemplateCatalog, TemplateError> {
        let mut templates = Vec::new();
        let mut fingerprint_source = String::new();
        for file in TEMPLATE_FILES.files() {
            let path = file.path().display().to_string();
            if !path.ends_with(".json") {
                continue;
            }
            let text = file.contents_utf8().ok_or_else(|| TemplateError::Invalid {
                file: path.clone(),
                reason: "not UTF-8".into(),
            })?;
            let template: Template =
                serde_json::from_str(text).map_err(|e| TemplateError::Invalid {
                    file: path.clone(),
                    reason: e.to_string(),
                })?;
            template.check(&path)?;
            fingerprint_source.push_str(&path);
            fingerprint_source.push_str(text);
            templates.push(template);
        }
        templates.sort_by_key(|t| t.id);
        if let Some(pair) = templates.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(TemplateError::Invalid {
                file: pair[1].name.clone(),
                reason: format!("duplicate template id {}", pair[1].id),
            });
        }
        Ok(TemplateCatalog {
            fingerprint: format!("{:x}", fnv1a(fingerprint_source.as_bytes())),
            templates,
        })
    }

    /// All templates, by id.
    pub fn all(&self) -> &[Template] {
        &self.templates
    }

    /// The template with this id.
    pub fn get(&self, id: u32) -> Option<&Template> {
        self.templates.iter().find(|t| t.id == id)
    }

    /// Changes whenever any template file changes.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// A stable 64-bit FNV-1a hash (the standard library's hasher is not stable across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalog_loads_with_at_least_fifteen_numbered_templates() {
        let catalog = TemplateCatalog::shipped().expect("catalog loads");
        assert!(catalog.all().len() >= 15);
        assert!(catalog.get(1).is_some());
        assert!(catalog
            .all()
            .iter()
            .any(|t| t.name.contains("PostgreSQL") && t.kind == TemplateKind::Flow));
        assert_eq!(
            catalog.fingerprint(),
            TemplateCatalog::shipped().expect("again").fingerprint()
        );
    }

    #[test]
    fn finds_placeholders() {
        let found = placeholders_in("a {{X}} b {{Y_Z}} {{X}}");
        assert_eq!(found.into_iter().collect::<Vec<_>>(), vec!["X", "Y_Z"]);
    }
}
