//! The builtin responder: a deterministic stand-in for a language model when no key is
//! configured anywhere. It picks a tool by simple intent rules, lets the turn loop run it
//! like any tool call, then composes a Markdown answer from the results.

use async_trait::async_trait;
use serde_json::json;

use super::{tokens, ChatDelta, ChatMessage, ChatModel, ChatRequest, DeltaStream, LlmError};

/// The name reported as `usage.model`.
pub const BUILTIN_MODEL: &str = "builtin";

/// Words that mean the user wants to act on (or look at) their workspace.
const WORKSPACE_WORDS: &[&str] = &[
    "my connections",
    "my flows",
    "list connections",
    "list flows",
    "list runs",
    "list schedules",
    "show connection",
    "show flow",
    "show run",
    "run flow",
    "create connection",
    "create flow",
    "delete connection",
    "delete flow",
    "schedule flow",
    "unschedule flow",
    "test connection",
    "host_cli",
    "list commands",
];

/// The deterministic responder.
#[derive(Debug, Default)]
pub struct BuiltinModel;

/// Which tool the builtin responder calls for a message.
fn choose_tool(message: &str, available: &[&str]) -> Option<(&'static str, serde_json::Value)> {
    let lower = message.to_lowercase();
    let has = |name: &str| available.contains(&name);
    if has("host_cli") {
        if let Some(command) = WORKSPACE_WORDS
            .iter()
            .find(|w| lower.contains(*w))
            .filter(|w| w.starts_with("list") || **w == "my connections" || **w == "my flows")
        {
            let command = match *command {
                "my connections" => "list connections",
                "my flows" => "list flows",
                other => other,
            };
            return Some(("host_cli", json!({ "command": command })));
        }
    }
    if lower.contains("template") && has("search_templates") {
        return Some(("search_templates", json!({ "query": message })));
    }
    if has("search_knowledge_base") {
        return Some(("search_knowledge_base", json!({ "query": message })));
    }
    None
}

/// Turns a Markdown tool result (`## Title`, a `*kind* · link` line, a snippet) into a short
/// list of sources with their gist.
fn summarise(result: &str) -> String {
    let mut out = String::new();
    let mut sections = result.split("\n## ").skip(1).peekable();
    if sections.peek().is_none() {
        return result.trim().to_string();
    }
    for (number, section) in sections.enumerate() {
        let mut lines = section.lines().filter(|l| !l.trim().is_empty());
        let title = lines.next().unwrap_or_default().trim();
        let mut source = String::new();
        let mut gist = String::new();
        for line in lines {
            if line.starts_with('*') && line.contains(" · ") && source.is_empty() {
                source = line.split(" · ").skip(1).collect::<Vec<_>>().join(" · ");
            } else if !line.starts_with("Import one with") {
                if !gist.is_empty() {
                    gist.push(' ');
                }
                gist.push_str(line.trim());
            }
        }
        out.push_str(&format!("{}. **{title}**", number + 1));
        if !source.is_empty() {
            out.push_str(&format!(" ({source})"));
        }
        if !gist.is_empty() {
            out.push_str(&format!("\n   {gist}"));
        }
        out.push('\n');
    }
    out
}

fn compose_answer(question: &str, tool_results: &[(&str, &str)]) -> String {
    if tool_results.is_empty() {
        return format!(
            "I am the builtin responder (no language model key is configured), and tools are off for \
             this request, so I cannot look anything up for \"{question}\". Ask again with tools enabled, \
             or configure an OpenAI-compatible key for free-form answers."
        );
    }
    let mut answer = String::new();
    for (tool, result) in tool_results {
        let intro = match *tool {
            "search_templates" => "Here are the templates that match your request:",
            "host_cli" => "Here is what your workspace shows:",
            _ => "Here is what the documentation says about this:",
        };
        if *tool == "host_cli" {
            answer.push_str(&format!("{intro}\n\n```\n{}\n```\n", result.trim()));
        } else if result.contains("\n## ") {
            answer.push_str(&format!("{intro}\n\n{}", summarise(result)));
        } else {
            answer.push_str(&format!("{}\n", result.trim()));
        }
    }
    answer.push_str(
        "\nAsk a follow-up question for details on any of these. (Answered by the builtin responder; \
         configure an OpenAI-compatible key for free-form answers.)",
    );
    answer
}

/// Splits text into word-sized tokens that concatenate back to it exactly.
fn word_tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if c.is_whitespace() && !current.trim().is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[async_trait]
impl ChatModel for BuiltinModel {
    fn model_name(&self) -> &str {
        BUILTIN_MODEL
    }

    async fn stream(&self, request: &ChatRequest) -> Result<DeltaStream, LlmError> {
        let prompt_tokens: u64 = request
            .messages
            .iter()
            .map(|m| tokens::count(&m.text()))
            .sum();
        // The question is the last user message; tool results after it are this turn's.
        let last_user = request
            .messages
            .iter()
            .rposition(|m| matches!(m, ChatMessage::User(_)))
            .unwrap_or(0);
        let question = match request.messages.get(last_user) {
            Some(ChatMessage::User(text)) => text.clone(),
            _ => String::new(),
        };
        let mut calls = Vec::new();
        let mut results = Vec::new();
        for message in &request.messages[last_user..] {
            match message {
                ChatMessage::Assistant { tool_calls, .. } => {
                    calls.extend(tool_calls.iter().cloned())
                }
                ChatMessage::Tool { call_id, content } => {
                    if let Some(call) = calls.iter().find(|c| &c.id == call_id) {
                        results.push((call.name.clone(), content.clone()));
                    }
                }
                _ => {}
            }
        }
        let available: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
        let mut deltas = Vec::new();
        let completion_text;
        if results.is_empty() && calls.is_empty() {
            if let Some((tool, arguments)) = choose_tool(&question, &available) {
                let arguments = arguments.to_string();
                completion_text = format!("{tool}{arguments}");
                deltas.push(ChatDelta::ToolCall {
                    index: 0,
                    id: Some("builtin-call-1".to_string()),
                    name: Some(tool.to_string()),
                    arguments,
                });
            } else {
                let answer = compose_answer(&question, &[]);
                completion_text = answer.clone();
                deltas.extend(word_tokens(&answer).into_iter().map(ChatDelta::Content));
            }
        } else {
            let pairs: Vec<(&str, &str)> = results
                .iter()
                .map(|(t, r)| (t.as_str(), r.as_str()))
                .collect();
            let answer = compose_answer(&question, &pairs);
            completion_text = answer.clone();
            deltas.extend(word_tokens(&answer).into_iter().map(ChatDelta::Content));
        }
        deltas.push(ChatDelta::Usage {
            prompt_tokens,
            completion_tokens: tokens::count(&completion_text),
        });
        Ok(Box::pin(futures::stream::iter(deltas.into_iter().map(Ok))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_tokens_concatenate_to_the_text() {
        let text = "To set up  a sync:\n\n1. **Create** it";
        assert_eq!(word_tokens(text).concat(), text);
        assert!(word_tokens(text).len() > 4);
    }

    #[test]
    fn intent_rules_pick_the_tool() {
        let all = ["search_knowledge_base", "search_templates", "host_cli"];
        assert_eq!(
            choose_tool("Is there a template for CSV?", &all).map(|c| c.0),
            Some("search_templates")
        );
        assert_eq!(
            choose_tool("list connections please", &all).map(|c| c.1),
            Some(json!({"command": "list connections"}))
        );
        assert_eq!(
            choose_tool("How do I create a REST connection?", &all).map(|c| c.0),
            Some("search_knowledge_base")
        );
        assert_eq!(
            choose_tool("list connections", &["search_knowledge_base"]).map(|c| c.0),
            Some("search_knowledge_base")
        );
        assert_eq!(choose_tool("anything", &[]), None);
    }

    #[test]
    fn summaries_keep_titles_and_links() {
        let result = "Based on the knowledge base:\n\n## Creating a REST API (HTTP) Connection\n*doc* · docs/connection-http.md\n\nAn **HTTP** connection reads JSON.\n";
        let summary = summarise(result);
        assert!(
            summary.starts_with(
                "1. **Creating a REST API (HTTP) Connection** (docs/connection-http.md)"
            ),
            "{summary}"
        );
        assert!(
            summary.contains("An **HTTP** connection reads JSON."),
            "{summary}"
        );
    }
}
