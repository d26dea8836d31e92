//! How flows and schedules are stored: their definitions as JSON, and an optional canvas
//! (composer mode) showing the same pipeline as nodes and edges.

use serde::{Deserialize, Serialize};

use crate::command::{ColumnMap, FlowDefinition, ScheduleSpec, SourceRef, TargetRef};
use crate::connectors::{SourceSpec, WriteMode};

/// A node of a composer canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanvasNode {
    pub id: String,
    /// source, mapping or destination
    pub kind: String,
    pub label: String,
    pub x: i32,
    pub y: i32,
}

/// An edge of a composer canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanvasEdge {
    pub from: String,
    pub to: String,
}

/// A flow drawn on the visual canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canvas {
    pub nodes: Vec<CanvasNode>,
    pub edges: Vec<CanvasEdge>,
}

impl Canvas {
    /// The canvas that shows a flow's pipeline: source → (mapping) → destination, left to right.
    pub fn of(flow: &FlowDefinition) -> Canvas {
        let source = match &flow.from.source {
            SourceSpec::Resource(resource) => format!("{}:{resource}", flow.from.connection),
            SourceSpec::Query(_) => format!("{} (query)", flow.from.connection),
        };
        let mut nodes = vec![CanvasNode {
            id: "source".into(),
            kind: "source".into(),
            label: source,
            x: 80,
            y: 160,
        }];
        let mut edges = Vec::new();
        let mut last = "source".to_string();
        if let Some(map) = &flow.map {
            let label = map
                .iter()
                .map(|c| {
                    if c.from == c.to {
                        c.from.clone()
                    } else {
                        format!("{}→{}", c.from, c.to)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            nodes.push(CanvasNode {
                id: "mapping".into(),
                kind: "mapping".into(),
                label,
                x: 320,
                y: 160,
            });
            edges.push(CanvasEdge {
                from: last,
                to: "mapping".into(),
            });
            last = "mapping".into();
        }
        let x = if flow.map.is_some() { 560 } else { 320 };
        nodes.push(CanvasNode {
            id: "destination".into(),
            kind: "destination".into(),
            label: format!(
                "{}:{} ({})",
                flow.to.connection,
                flow.to.target,
                flow.mode.as_str()
            ),
            x,
            y: 160,
        });
        edges.push(CanvasEdge {
            from: last,
            to: "destination".into(),
        });
        Canvas { nodes, edges }
    }
}

/// The stored form of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDefinition {
    pub from_connection: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub to_connection: String,
    pub target: String,
    pub mode: String,
    #[serde(default)]
    pub key: Vec<String>,
    /// `[source, destination]` pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<Vec<(String, String)>>,
    /// Present for flows imported in composer mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canvas: Option<Canvas>,
}

impl StoredDefinition {
    /// The stored form of a definition.
    pub fn from_definition(flow: &FlowDefinition, canvas: Option<Canvas>) -> StoredDefinition {
        let (resource, query) = match &flow.from.source {
            SourceSpec::Resource(r) => (Some(r.clone()), None),
            SourceSpec::Query(q) => (None, Some(q.clone())),
        };
        StoredDefinition {
            from_connection: flow.from.connection.clone(),
            resource,
            query,
            to_connection: flow.to.connection.clone(),
            target: flow.to.target.clone(),
            mode: flow.mode.as_str().to_string(),
            key: flow.key.clone(),
            map: flow
                .map
                .as_ref()
                .map(|m| m.iter().map(|c| (c.from.clone(), c.to.clone())).collect()),
            canvas,
        }
    }

    /// The definition to run.
    pub fn definition(&self) -> Result<FlowDefinition, String> {
        let source = match (&self.resource, &self.query) {
            (Some(resource), _) => SourceSpec::Resource(resource.clone()),
            (None, Some(query)) => SourceSpec::Query(query.clone()),
            (None, None) => return Err("the stored flow has no source".into()),
        };
        Ok(FlowDefinition {
            from: SourceRef {
                connection: self.from_connection.clone(),
                source,
            },
            to: TargetRef {
                connection: self.to_connection.clone(),
                target: self.target.clone(),
            },
            mode: WriteMode::parse(&self.mode)
                .ok_or_else(|| format!("the stored flow has an unknown mode '{}'", self.mode))?,
            key: self.key.clone(),
            map: self.map.as_ref().map(|m| {
                m.iter()
                    .map(|(from, to)| ColumnMap {
                        from: from.clone(),
                        to: to.clone(),
                    })
                    .collect()
            }),
        })
    }
}

/// The stored form of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredScheduleSpec {
    Cron(String),
    EverySeconds(u64),
}

impl StoredScheduleSpec {
    /// The stored form of a schedule.
    pub fn from_spec(spec: &ScheduleSpec) -> StoredScheduleSpec {
        match spec {
            ScheduleSpec::Cron(c) => StoredScheduleSpec::Cron(c.clone()),
            ScheduleSpec::Every(d) => StoredScheduleSpec::EverySeconds(d.as_secs()),
        }
    }

    /// The schedule it stands for.
    pub fn spec(&self) -> ScheduleSpec {
        match self {
            StoredScheduleSpec::Cron(c) => ScheduleSpec::Cron(c.clone()),
            StoredScheduleSpec::EverySeconds(s) => {
                ScheduleSpec::Every(std::time::Duration::from_secs(*s))
            }
        }
    }

    /// `cron "0 2 * * *"` or `every 15m`.
    pub fn describe(&self) -> String {
        match self {
            StoredScheduleSpec::Cron(c) => format!("cron \"{c}\" (UTC)"),
            StoredScheduleSpec::EverySeconds(s) if s % 86_400 == 0 => {
                format!("every {}d", s / 86_400)
            }
            StoredScheduleSpec::EverySeconds(s) if s % 3600 == 0 => format!("every {}h", s / 3600),
            StoredScheduleSpec::EverySeconds(s) if s % 60 == 0 => format!("every {}m", s / 60),
            StoredScheduleSpec::EverySeconds(s) => format!("every {s}s"),
        }
    }
}
