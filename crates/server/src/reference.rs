//! The `/docs` page: the OpenAPI document as a reference for people, grouped by task (the
//! document's tags, in their order), with a table of contents, descriptions rendered from
//! Markdown, an example request and answer for each operation, the table of the event
//! stream's events, and every schema. Self-contained: no scripts, no external assets.

use serde_json::{json, Value};

use crate::console::markdown;

/// How deep examples follow nested schemas.
const EXAMPLE_DEPTH: usize = 6;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An id for an anchor: letters and digits, the rest as `-`.
fn anchor(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn schema_name(reference: &Value) -> Option<&str> {
    reference
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
}

/// Links to the schema a body has, or to each of its alternatives (`oneOf`).
fn schema_links(schema: &Value) -> String {
    let names: Vec<&str> = match schema.get("oneOf").and_then(Value::as_array) {
        Some(alternatives) => alternatives.iter().filter_map(schema_name).collect(),
        None => schema_name(schema).into_iter().collect(),
    };
    names
        .iter()
        .map(|n| format!("<a href=\"#schema-{0}\">{0}</a>", escape(n)))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// What a `$ref` points at in the document, or the value itself.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    value
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| document.pointer(pointer))
        .unwrap_or(value)
}

/// An example value of a schema: its own example, a constant, the first of its choices, or
/// a value of its type, with every property of an object.
fn example(document: &Value, schema: &Value, depth: usize) -> Value {
    let schema = resolve(document, schema);
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
    {
        return first.clone();
    }
    if depth == 0 {
        return Value::Null;
    }
    if let Some(first) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
        .and_then(|v| v.first())
    {
        return example(document, first, depth - 1);
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // `["string", "null"]`: the first that is not null.
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "",
    };
    match kind {
        "object" => {
            let mut object = serde_json::Map::new();
            for (name, property) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                object.insert(name.clone(), example(document, property, depth - 1));
            }
            Value::Object(object)
        }
        "array" => match schema.get("items") {
            Some(items) => json!([example(document, items, depth - 1)]),
            None => json!([]),
        },
        "string" => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2026-01-01T00:00:00Z"),
            _ => json!("string"),
        },
        "integer" => json!(0),
        "number" => json!(0.0),
        "boolean" => json!(true),
        _ => Value::Null,
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// One operation: what it does, its parameters, body and answers, with examples.
fn operation_html(document: &Value, method: &str, path: &str, operation: &Value) -> String {
    let mut html = format!(
        "<h3 id=\"op-{}\"><span class=\"m\">{}</span><code>{}</code></h3>",
        anchor(&format!("{method}{path}")),
        escape(method),
        escape(path)
    );
    for key in ["summary", "description"] {
        if let Some(text) = operation.get(key).and_then(Value::as_str) {
            html.push_str(&markdown::to_html(text));
        }
    }
    if operation.get("security").is_some() {
        html.push_str("<p>Requires <code>Authorization: Bearer &lt;API key&gt;</code>.</p>");
    }
    if let Some(params) = operation.get("parameters").and_then(Value::as_array) {
        html.push_str("<h4>Parameters</h4><table><tr><th>Name</th><th>In</th><th>Required</th><th>Description</th></tr>");
        for param in params {
            let text = |key: &str| param.get(key).and_then(Value::as_str).unwrap_or("");
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(text("name")),
                escape(text("in")),
                if param["required"] == json!(true) {
                    "yes"
                } else {
                    "no"
                },
                markdown::to_html(text("description"))
            ));
        }
        html.push_str("</table>");
    }
    if let Some(body) = operation.get("requestBody") {
        html.push_str("<h4>Request body</h4>");
        if let Some(text) = body.get("description").and_then(Value::as_str) {
            html.push_str(&markdown::to_html(text));
        }
        if let Some(content) = body.pointer("/content/application~1json") {
            if let Some(schema) = content.get("schema") {
                let links = schema_links(schema);
                if !links.is_empty() {
                    html.push_str(&format!("<p>Schema: {links}</p>"));
                }
                let sample = content
                    .get("example")
                    .cloned()
                    .unwrap_or_else(|| example(document, schema, EXAMPLE_DEPTH));
                if !sample.is_null() {
                    html.push_str(&format!(
                        "<p>Example:</p><pre>{}</pre>",
                        escape(&pretty(&sample))
                    ));
                }
            }
        }
    }
    if let Some(responses) = operation.get("responses").and_then(Value::as_object) {
        html.push_str("<h4>Responses</h4><table><tr><th>Status</th><th>Meaning</th><th>Body</th><th>Headers</th></tr>");
        let mut success_example = None;
        for (status, response) in responses {
            let response = resolve(document, response);
            let mut bodies = Vec::new();
            for (media_type, body) in response
                .get("content")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let mut links = body.get("schema").map(schema_links).unwrap_or_default();
                if media_type == "text/event-stream" {
                    links.push_str(" (<a href=\"#events\">events</a>)");
                }
                bodies.push(format!("<code>{}</code> {links}", escape(media_type)));
                if status.starts_with('2') && media_type == "application/json" {
                    if let Some(schema) = body.get("schema") {
                        success_example.get_or_insert_with(|| {
                            body.get("example")
                                .cloned()
                                .unwrap_or_else(|| example(document, schema, EXAMPLE_DEPTH))
                        });
                    }
                }
            }
            let headers: Vec<String> = response
                .get("headers")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(name, _)| format!("<code>{}</code>", escape(name)))
                .collect();
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(status),
                markdown::to_html(
                    response
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                bodies.join("<br>"),
                headers.join(" ")
            ));
        }
        html.push_str("</table>");
        if let Some(sample) = success_example.filter(|v| !v.is_null()) {
            html.push_str(&format!(
                "<p>Example answer:</p><pre>{}</pre>",
                escape(&pretty(&sample))
            ));
        }
    }
    html
}

/// The table of the event stream's events: each `AgentEvent` with its fields.
fn events_html(document: &Value) -> String {
    let mut html = String::from(
        "<h2 id=\"events\">Server-Sent Events</h2><p>The streaming endpoints answer <code>text/event-stream</code>: each event a <code>data:</code> line holding one JSON object told apart by <code>type</code>, then its <code>id:</code> line (<code>TURN:SEQ</code>, for rejoining with <code>GET /sessions/{id}/stream</code>) and a blank line; lines starting with <code>:</code> are keep-alive comments. The stream ends after <code>end</code> or <code>error</code>.</p>\
         <table><tr><th>type</th><th>Fields</th><th>Meaning</th></tr>",
    );
    let alternatives = document
        .pointer("/components/schemas/AgentEvent/oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for alternative in &alternatives {
        let schema = resolve(document, alternative);
        let kind = schema
            .pointer("/properties/type/const")
            .and_then(Value::as_str)
            .unwrap_or("");
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let fields: Vec<String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.as_str() != "type")
            .map(|(name, _)| {
                if required.contains(&name.as_str()) {
                    format!("<code>{}</code>", escape(name))
                } else {
                    format!("<code>{}</code> (optional)", escape(name))
                }
            })
            .collect();
        html.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            escape(kind),
            fields.join(", "),
            markdown::to_html(
                schema
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )
        ));
    }
    html.push_str("</table>");
    html
}

/// Every schema with its fields.
fn schemas_html(document: &Value) -> String {
    let mut html = String::from("<h2 id=\"schemas\">Schemas</h2>");
    for (name, schema) in document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        html.push_str(&format!("<h3 id=\"schema-{0}\">{0}</h3>", escape(name)));
        if let Some(text) = schema.get("description").and_then(Value::as_str) {
            html.push_str(&markdown::to_html(text));
        }
        if schema.get("oneOf").is_some() {
            html.push_str(&format!("<p>One of: {}</p>", schema_links(schema)));
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            html.push_str("<table><tr><th>Field</th><th>Type</th><th>Description</th></tr>");
            for (field, property) in properties {
                let mut kind = property
                    .get("type")
                    .map(|t| t.to_string().replace('"', ""))
                    .or_else(|| schema_name(property).map(str::to_string))
                    .unwrap_or_default();
                if let Some(value) = property.get("const") {
                    kind = format!("{kind} = {value}");
                } else if let Some(values) = property.get("enum").and_then(Value::as_array) {
                    let values: Vec<String> = values.iter().map(Value::to_string).collect();
                    kind = format!("{kind}: {}", values.join(" | "));
                }
                html.push_str(&format!(
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    escape(field),
                    escape(&kind),
                    markdown::to_html(
                        property
                            .get("description")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    )
                ));
            }
            html.push_str("</table>");
        }
    }
    html
}

/// Renders the API reference page.
pub fn render(document: &Value) -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Integrator Agent API reference</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;line-height:1.5}\
         code,pre{background:#f4f4f4;padding:.1rem .3rem;border-radius:3px}pre{padding:.5rem;overflow-x:auto}\
         h2{border-top:2px solid #ccc;padding-top:1rem}h3{border-top:1px solid #eee;padding-top:.8rem}\
         .m{font-weight:bold;text-transform:uppercase;margin-right:.5rem}table{border-collapse:collapse;margin:.5rem 0}\
         td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}td p{margin:0}\
         nav li{margin:.1rem 0}</style></head><body><h1>Integrator Agent API reference</h1>",
    );
    if let Some(description) = document
        .pointer("/info/description")
        .and_then(Value::as_str)
    {
        html.push_str(&markdown::to_html(description));
    }
    html.push_str("<p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>.</p>");
    // Operations by tag, in the document's tag order.
    let tags: Vec<(String, String)> = document
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|tag| {
            (
                tag["name"].as_str().unwrap_or_default().to_string(),
                tag["description"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut operations: Vec<(String, &str, &str, &Value)> = Vec::new();
    for (path, item) in document
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let tag = operation
                .pointer("/tags/0")
                .and_then(Value::as_str)
                .unwrap_or("other")
                .to_string();
            operations.push((tag, method, path, operation));
        }
    }
    let mut groups: Vec<(String, String)> = tags.clone();
    for (tag, ..) in &operations {
        if !groups.iter().any(|(name, _)| name == tag) {
            groups.push((tag.clone(), String::new()));
        }
    }
    html.push_str("<nav><h2>Contents</h2><ul>");
    for (name, description) in &groups {
        html.push_str(&format!(
            "<li><a href=\"#tag-{}\">{}</a>: {}<ul>",
            anchor(name),
            escape(name),
            escape(description)
        ));
        for (_, method, path, _) in operations.iter().filter(|(tag, ..)| tag == name) {
            html.push_str(&format!(
                "<li><a href=\"#op-{}\"><code>{} {}</code></a></li>",
                anchor(&format!("{method}{path}")),
                escape(&method.to_uppercase()),
                escape(path)
            ));
        }
        html.push_str("</ul></li>");
    }
    html.push_str("<li><a href=\"#events\">Server-Sent Events</a></li><li><a href=\"#schemas\">Schemas</a></li></ul></nav>");
    for (name, description) in &groups {
        html.push_str(&format!(
            "<h2 id=\"tag-{}\">{}</h2>{}",
            anchor(name),
            escape(name),
            markdown::to_html(description)
        ));
        for (_, method, path, operation) in operations.iter().filter(|(tag, ..)| tag == name) {
            html.push_str(&operation_html(document, method, path, operation));
        }
    }
    html.push_str(&events_html(document));
    html.push_str(&schemas_html(document));
    html.push_str("</body></html>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_groups_operations_by_task_with_examples_and_events() {
        let document = crate::openapi::document();
        let html = render(&document);
        // Every tag a section, in the document's order, each operation under its own.
        let position = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(position("id=\"tag-tools\"") < position("id=\"tag-chat\""));
        assert!(position("id=\"tag-chat\"") < position("id=\"op-post-rest-v1-ai-agent-api-chat\""));
        assert!(
            position("id=\"op-post-rest-v1-ai-agent-api-chat\"") < position("id=\"tag-sessions\"")
        );
        assert!(html.contains("id=\"tag-openai\""));
        // Descriptions rendered from Markdown: `code` spans become <code>.
        assert!(html.contains("<code>Authorization: Bearer &lt;API key&gt;</code>"));
        // Request and answer examples.
        assert!(html.contains("Example:</p><pre>"), "request examples");
        assert!(html.contains("Example answer:</p><pre>"), "answer examples");
        assert!(
            html.contains("&quot;session_id&quot;"),
            "a chat answer example"
        );
        // The event table has every event type.
        for kind in [
            "session",
            "phase",
            "tool_start",
            "tool_end",
            "token",
            "usage",
            "end",
            "error",
        ] {
            assert!(
                html.contains(&format!("<tr><td><code>{kind}</code></td>")),
                "event {kind}"
            );
        }
        assert!(!html.contains("<script"));
    }

    #[test]
    fn examples_follow_the_schema() {
        let document = crate::openapi::document();
        let chat = example(
            &document,
            &json!({"$ref": "#/components/schemas/ChatResponse"}),
            EXAMPLE_DEPTH,
        );
        for field in ["response", "session_id", "usage"] {
            assert!(chat.get(field).is_some(), "{field}: {chat}");
        }
        assert_eq!(example(&document, &json!({"const": "x"}), 1), json!("x"));
        assert_eq!(example(&document, &json!({"type": "integer"}), 1), json!(0));
    }
}
