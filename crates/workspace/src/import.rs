//! Importing a template into a tenant's workspace. A template becomes the same commands a user
//! would type (so it passes the same checks), with names made unique when the workspace already
//! has them; `preview` shows those commands and creates nothing; `composer` stores the flows
//! with a canvas graph.

use std::collections::BTreeMap;

use crate::command::{self, Command};
use crate::connections;
use crate::flows::{Canvas, StoredDefinition};
use crate::service::{to_json, Actor, Workspace, WorkspaceError};
use crate::Template;

/// How an imported flow is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// The standard source → mapping → destination form.
    Standard,
    /// A visual-canvas graph (nodes and edges) of the same pipeline.
    Composer,
}

fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The commands that build a template, with connection and flow names renamed by `names`.
fn commands(template: &Template, names: &BTreeMap<String, String>) -> Vec<String> {
    let rename = |name: &str| names.get(name).cloned().unwrap_or_else(|| name.to_string());
    let endpoint = |text: &str| match text.split_once(':') {
        Some((connection, rest)) => format!("{}:{rest}", rename(connection)),
        None => rename(text),
    };
    let mut lines = Vec::new();
    for connection in &template.connections {
        let mut line = format!(
            "create connection {} type={}",
            rename(&connection.name),
            connection.connection_type
        );
        for (key, value) in &connection.params {
            line.push_str(&format!(" {key}={}", quote(value)));
        }
        lines.push(line);
    }
    for flow in &template.flows {
        let mut line = format!(
            "create flow {} from={} to={} mode={}",
            rename(&flow.name),
            quote(&endpoint(&flow.from)),
            quote(&endpoint(&flow.to)),
            flow.mode
        );
        if let Some(query) = &flow.query {
            line.push_str(&format!(" query={}", quote(query)));
        }
        if let Some(key) = &flow.key {
            line.push_str(&format!(" key={}", quote(key)));
        }
        if let Some(map) = &flow.map {
            line.push_str(&format!(" map={}", quote(map)));
        }
        lines.push(line);
    }
    if let Some(schedule) = &template.schedule {
        match (&schedule.cron, &schedule.every) {
            (Some(cron), _) => lines.push(format!(
                "schedule flow {} cron={}",
                rename(&schedule.flow),
                quote(cron)
            )),
            (None, Some(every)) => lines.push(format!(
                "schedule flow {} every={every}",
                rename(&schedule.flow)
            )),
            (None, None) => {}
        }
    }
    lines
}

impl Workspace {
    /// Imports (or previews) a template for a tenant.
    pub async fn import_template(
        self: &std::sync::Arc<Self>,
        actor: &Actor,
        template_id: u32,
        mode: ImportMode,
        preview: bool,
    ) -> Result<String, WorkspaceError> {
        let template = self.catalog.get(template_id).cloned().ok_or_else(|| {
            WorkspaceError::Rejected(format!(
                "template {template_id} does not exist; 'list templates' or search_templates show the catalog (ids 1-{})",
                self.catalog.all().len()
            ))
        })?;
        if !preview && !actor.role.can_modify_workspace() {
            return Err(WorkspaceError::PermissionDenied(format!(
                "Your role ({}) may preview templates but not import them: importing needs the user or admin role",
                actor.role
            )));
        }
        let names = self.unique_names(actor, &template).await?;
        let lines = commands(&template, &names);
        let parsed: Vec<Command> = lines
            .iter()
            .map(|line| command::parse(line))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                WorkspaceError::Rejected(format!("template {template_id} is invalid: {e}"))
            })?;
        let mut out = format!(
            "{} template {} \"{}\" ({}):\n",
            if preview { "Preview of" } else { "Imported" },
            template.id,
            template.name,
            match mode {
                ImportMode::Standard => "standard",
                ImportMode::Composer => "composer canvas",
            }
        );
        if preview {
            out.push_str("These commands would run (nothing was created):\n");
            for line in &lines {
                out.push_str(&format!("  {line}\n"));
            }
        } else {
            let mut created: Vec<Command> = Vec::new();
            for (line, command) in lines.iter().zip(parsed) {
                let outcome = match (&command, mode) {
                    (Command::CreateFlow { name, flow }, ImportMode::Composer) => {
                        self.create_composer_flow(actor, name, flow).await
                    }
                    _ => self.execute(actor, line).await,
                };
                match outcome {
                    Ok(message) => {
                        out.push_str(&format!("  {message}\n"));
                        created.push(command);
                    }
                    Err(error) => {
                        self.undo(actor, &created).await;
                        return Err(WorkspaceError::Rejected(format!(
                            "template {template_id} could not be imported ({error}); nothing was kept"
                        )));
                    }
                }
            }
        }
        if !template.placeholders.is_empty() {
            out.push_str("\nFill in these placeholders before running:\n");
            for placeholder in &template.placeholders {
                let used_by: Vec<String> = template
                    .connections
                    .iter()
                    .filter(|c| connections::unfilled(&c.params).contains(&placeholder.name))
                    .map(|c| {
                        names
                            .get(&c.name)
                            .cloned()
                            .unwrap_or_else(|| c.name.clone())
                    })
                    .collect();
                out.push_str(&format!(
                    "  {{{{{}}}}}: {}",
                    placeholder.name, placeholder.description
                ));
                if !used_by.is_empty() {
                    out.push_str(&format!(" (set connection {} …)", used_by.join(" / ")));
                }
                out.push('\n');
            }
        }
        Ok(out.trim_end().to_string())
    }

    async fn create_composer_flow(
        &self,
        actor: &Actor,
        name: &str,
        flow: &crate::command::FlowDefinition,
    ) -> Result<String, WorkspaceError> {
        self.check_flow(actor, flow).await?;
        let canvas = Canvas::of(flow);
        let nodes = canvas.nodes.len();
        let stored = StoredDefinition::from_definition(flow, Some(canvas));
        self.store
            .insert_flow(&actor.tenant_id, name, &to_json(&stored))
            .await?;
        Ok(format!(
            "Created flow '{name}' as a composer canvas with {nodes} nodes."
        ))
    }

    /// Removes what an interrupted import created.
    async fn undo(&self, actor: &Actor, created: &[Command]) {
        for command in created.iter().rev() {
            let result = match command {
                Command::CreateFlow { name, .. } => {
                    self.store.delete_flow(&actor.tenant_id, name).await
                }
                Command::CreateConnection { name, .. } => {
                    self.store.delete_connection(&actor.tenant_id, name).await
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not undo part of a failed template import");
            }
        }
    }

    /// Names for the template's objects that are free in this workspace (`api`, `api_2`, …).
    async fn unique_names(
        &self,
        actor: &Actor,
        template: &Template,
    ) -> Result<BTreeMap<String, String>, WorkspaceError> {
        let taken_connections: Vec<String> = self
            .store
            .connections(&actor.tenant_id)
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect();
        let taken_flows: Vec<String> = self
            .store
            .flows(&actor.tenant_id)
            .await?
            .into_iter()
            .map(|f| f.name)
            .collect();
        let mut names = BTreeMap::new();
        let free = |name: &str, taken: &[String]| {
            if !taken.iter().any(|t| t == name) {
                return name.to_string();
            }
            (2..)
                .map(|n| format!("{name}_{n}"))
                .find(|candidate| !taken.contains(candidate))
                .unwrap_or_else(|| name.to_string())
        };
        for connection in &template.connections {
            names.insert(
                connection.name.clone(),
                free(&connection.name, &taken_connections),
            );
        }
        for flow in &template.flows {
            names.insert(flow.name.clone(), free(&flow.name, &taken_flows));
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TemplateCatalog;

    #[test]
    fn every_shipped_template_becomes_valid_commands() {
        let catalog = TemplateCatalog::shipped().expect("catalog");
        for template in catalog.all() {
            for line in commands(template, &BTreeMap::new()) {
                if let Err(e) = command::parse(&line) {
                    panic!("template {}: {e}", template.id);
                }
            }
        }
    }

    #[test]
    fn renamed_objects_keep_their_references() {
        let catalog = TemplateCatalog::shipped().expect("catalog");
        let template = catalog.get(1).expect("template 1");
        let names: BTreeMap<String, String> = template
            .connections
            .iter()
            .map(|c| (c.name.clone(), format!("{}_2", c.name)))
            .collect();
        let lines = commands(template, &names);
        let flow = lines
            .iter()
            .find(|l| l.starts_with("create flow"))
            .expect("a flow");
        for connection in &template.connections {
            assert!(flow.contains(&format!("{}_2:", connection.name)), "{flow}");
        }
    }
}
