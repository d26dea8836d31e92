//! The builtin responder: a deterministic stand-in for a language model when no key is
//! configured anywhere. It picks a tool by simple intent rules, lets the turn loop run it
//! like any tool call, then composes a Markdown answer from the results.

use async_trait::async_trait;
use serde_json::json;

use super::intents::{self, Intent};
use super::{tokens, ChatDelta, ChatMessage, ChatModel, ChatRequest, DeltaStream, LlmError};

/// The name reported as `usage.model`.
pub const BUILTIN_MODEL: &str = "builtin";

/// The first words of every workspace command (see `workspace::command`).
const COMMAND_STARTS: &[&str] = &[
    "list commands",
    "list connections",
    "list flows",
    "list schedules",
    "list templates",
    "list runs",
    "show connection",
    "show flow",
    "show run",
    "create connection",
    "set connection",
    "test connection",
    "delete connection",
    "create flow",
    "delete flow",
    "run flow",
    "cancel run",
    "schedule flow",
    "unschedule flow",
    "disable schedule",
    "enable schedule",
];

/// Words a message may start with before the command it asks for.
const POLITE_PREFIXES: &[&str] = &["please", "pls", "now"];

/// The deterministic responder.
#[derive(Debug, Default)]
pub struct BuiltinModel;

/// The workspace command a message asks for, if any. A `list` command (or "my connections",
/// "my flows") counts wherever the message names it; any other command only when the message
/// *is* that command — an instruction such as "show flow orders" or "please run flow nightly",
/// not a question about it ("how do I test connection settings?" goes to the docs).
fn workspace_command(message: &str) -> Option<String> {
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` cut `message`.
    let lower = message.to_ascii_lowercase();
    let at_word_start = |position: usize| {
        position == 0
            || !lower[..position]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
    };
    let mut lead = lower.trim_start_matches(|c: char| !c.is_alphanumeric());
    for prefix in POLITE_PREFIXES {
        if let Some(rest) = lead.strip_prefix(prefix) {
            if rest.starts_with(|c: char| !c.is_alphanumeric()) {
                lead = rest.trim_start_matches(|c: char| !c.is_alphanumeric());
            }
        }
    }
    let instruction_at = lower.len() - lead.len();
    let found = COMMAND_STARTS
        .iter()
        .filter_map(|start| {
            lower
                .match_indices(start)
                .map(|(position, _)| position)
                .find(|&position| at_word_start(position))
                .map(|position| (position, *start))
        })
        .filter(|(position, start)| *position == instruction_at || start.starts_with("list "))
        .min_by_key(|(position, start)| (*position, std::cmp::Reverse(start.len())));
    let Some((position, start)) = found else {
        return [
            ("my connections", "list connections"),
            ("my flows", "list flows"),
        ]
        .iter()
        .find(|(words, _)| lower.contains(words))
        .map(|(_, command)| command.to_string());
    };
    let line = message[position..].lines().next().unwrap_or_default();
    let words: Vec<&str> = line.split_whitespace().collect();
    // The longest run of the message's words from the command on that parses as one (the
    // sentence's punctuation after its last word left out).
    let least = start.split_whitespace().count();
    (least..=words.len()).rev().find_map(|count| {
        let candidate = words[..count]
            .join(" ")
            .trim_end_matches(['.', '?', '!', ',', ';', ':'])
            .to_string();
        workspace::command::parse(&candidate)
            .is_ok()
            .then_some(candidate)
    })
}

/// What the builtin responder does with a message: call a tool, or answer at once.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Call(&'static str, serde_json::Value),
    Say(String),
}

/// Which tool the builtin responder calls for a message: a workspace command when the message
/// is one or asks for one in everyday words, else the templates or the documentation.
#[cfg(test)]
fn choose_tool(message: &str, available: &[&str]) -> Option<(&'static str, serde_json::Value)> {
    match plan(message, available)? {
        Plan::Call(tool, arguments) => Some((tool, arguments)),
        Plan::Say(_) => None,
    }
}

fn plan(message: &str, available: &[&str]) -> Option<Plan> {
    let has = |name: &str| available.contains(&name);
    if has("host_cli") {
        if let Some(command) = workspace_command(message) {
            return Some(Plan::Call("host_cli", json!({ "command": command })));
        }
        match intents::understand(message) {
            Some(Intent::Command { line, .. }) => {
                return Some(Plan::Call("host_cli", json!({ "command": line })))
            }
            Some(Intent::Incomplete(what)) => return Some(Plan::Say(what)),
            None => {}
        }
    }
    if message.to_lowercase().contains("template") && has("search_templates") {
        return Some(Plan::Call("search_templates", json!({ "query": message })));
    }
    if has("search_knowledge_base") {
        return Some(Plan::Call(
            "search_knowledge_base",
            json!({ "query": message }),
        ));
    }
    None
}

/// The runs of a `list runs` table that failed, as a short answer.
fn failed_runs(table: &str) -> String {
    let lines: Vec<&str> = table.lines().collect();
    let failed: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| line.split_whitespace().nth(2) == Some("failed"))
        .collect();
    if table.starts_with("No runs yet") {
        return "No flow has run yet, so none failed.".into();
    }
    let shown = lines.len().saturating_sub(3);
    if failed.is_empty() {
        return format!("None of the last {shown} run(s) failed.");
    }
    // The table's two header lines, then the failed runs.
    let header: Vec<&str> = lines.iter().skip(1).take(2).copied().collect();
    format!(
        "{} of the last {shown} run(s) failed:\n\n```\n{}\n{}\n```\n\n`show run ID` shows why.",
        failed.len(),
        header.join("\n"),
        failed.join("\n")
    )
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

/// One tool call of the turn and what it answered.
struct Called<'a> {
    tool: &'a str,
    /// The workspace command, for `host_cli`.
    command: Option<String>,
    result: &'a str,
}

fn compose_answer(question: &str, called: &[Called<'_>]) -> String {
    if called.is_empty() {
        return format!(
            "I am the builtin responder (no language model key is configured), and tools are off for \
             this request, so I cannot look anything up for \"{question}\". Ask again with tools enabled, \
             or configure an OpenAI-compatible key for free-form answers."
        );
    }
    let mut answer = String::new();
    let mut searched = false;
    for call in called {
        let result = call.result.trim();
        match (call.tool, &call.command) {
            ("host_cli", Some(command)) => {
                if let Some(error) = result.strip_prefix("Error (") {
                    // `Error (code): message`, as the turn reports a failed tool call.
                    let (code, message) = error.split_once("): ").unwrap_or(("", error));
                    answer.push_str(&format!(
                        "I ran `{command}`, and it did not succeed ({code}):\n\n{message}\n"
                    ));
                } else if command == "list runs"
                    && matches!(
                        intents::understand(question),
                        Some(Intent::Command {
                            only_failed: true,
                            ..
                        })
                    )
                {
                    answer.push_str(&format!("I ran `{command}`. {}\n", failed_runs(result)));
                } else {
                    answer.push_str(&format!("I ran `{command}`:\n\n```\n{result}\n```\n"));
                }
            }
            (tool, _) => {
                searched = true;
                let intro = if tool == "search_templates" {
                    "Here are the templates that match your request:"
                } else {
                    "Here is what the documentation says about this:"
                };
                if result.contains("\n## ") {
                    answer.push_str(&format!("{intro}\n\n{}", summarise(result)));
                } else {
                    answer.push_str(&format!("{result}\n"));
                }
            }
        }
    }
    if searched {
        answer.push_str(
            "\n(Answered by the builtin responder, which searches the documentation; configure an \
             OpenAI-compatible key for free-form answers.)",
        );
    }
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
                        let command = serde_json::from_str::<serde_json::Value>(&call.arguments)
                            .ok()
                            .and_then(|a| a["command"].as_str().map(str::to_string));
                        results.push((call.name.clone(), command, content.clone()));
                    }
                }
                _ => {}
            }
        }
        let available: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
        let mut deltas = Vec::new();
        let completion_text;
        if results.is_empty() && calls.is_empty() {
            let planned = plan(&question, &available);
            if let Some(Plan::Say(text)) = planned {
                completion_text = text.clone();
                deltas.extend(word_tokens(&text).into_iter().map(ChatDelta::Content));
            } else if let Some(Plan::Call(tool, arguments)) = planned {
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
            let called: Vec<Called<'_>> = results
                .iter()
                .map(|(tool, command, result)| Called {
                    tool: tool.as_str(),
                    command: command.clone(),
                    result: result.as_str(),
                })
                .collect();
            let answer = compose_answer(&question, &called);
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
    fn instructions_become_workspace_commands_and_questions_do_not() {
        let command = |message: &str| workspace_command(message);
        assert_eq!(
            command("show flow orders").as_deref(),
            Some("show flow orders")
        );
        assert_eq!(
            command("Please show flow Orders_To_PG.").as_deref(),
            Some("show flow Orders_To_PG")
        );
        assert_eq!(
            command("test connection crm?").as_deref(),
            Some("test connection crm")
        );
        assert_eq!(
            command("run flow nightly please").as_deref(),
            Some("run flow nightly")
        );
        assert_eq!(command("show run 42").as_deref(), Some("show run 42"));
        assert_eq!(
            command("Can you list runs nightly for me?").as_deref(),
            Some("list runs nightly")
        );
        assert_eq!(command("what are my flows?").as_deref(), Some("list flows"));
        assert_eq!(
            command("unschedule flow nightly").as_deref(),
            Some("unschedule flow nightly")
        );
        // Questions about a command, and commands cut short, are not run.
        assert_eq!(command("How do I test connection settings?"), None);
        assert_eq!(command("Why would I delete flow orders?"), None);
        assert_eq!(command("show flow"), None);
        assert_eq!(command("How do I create a REST connection?"), None);
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
