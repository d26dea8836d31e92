//! The builtin responder's understanding of everyday workspace requests: an intent (which
//! command) and its slots (names, numbers, URLs), read from a sentence such as "run the items
//! flow", "did any flow fail?" or "create a connection called api to https://…". A request it
//! recognises but cannot complete (a missing name, say) is answered with what is missing,
//! never with documentation snippets.

use std::sync::OnceLock;

use regex::{Captures, Regex};

/// What a message asks of the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Run this workspace command.
    Command {
        line: String,
        /// Show only the failed runs of a `list runs` answer.
        only_failed: bool,
    },
    /// A workspace request short of something: say what.
    Incomplete(String),
}

impl Intent {
    fn command(line: impl Into<String>) -> Intent {
        Intent::Command {
            line: line.into(),
            only_failed: false,
        }
    }
}

/// Words before the request itself ("please", "can you", "I want to" …).
const LEADS: &str = r"^(?:(?:please|pls|now|ok|okay|hey|so|then|and|also|just|kindly|go ahead and|can you|could you|would you|will you|i want to|i'd like to|i would like to|let's|lets|let us|i need to|help me)[\s,]+)*";

/// A name as workspace commands take it.
const NAME: &str = r"([A-Za-z][A-Za-z0-9_-]{0,63})";

/// Words that are never an object's name in these sentences.
const NOT_NAMES: &[&str] = &[
    "a",
    "an",
    "the",
    "my",
    "all",
    "any",
    "every",
    "each",
    "it",
    "this",
    "that",
    "flow",
    "flows",
    "connection",
    "connections",
    "run",
    "runs",
    "schedule",
    "schedules",
    "new",
    "some",
    "again",
    "now",
    "please",
    "one",
    "me",
    "to",
    "for",
    "of",
];

fn is_name(word: &str) -> bool {
    !NOT_NAMES.contains(&word.to_ascii_lowercase().as_str())
}

struct Rule {
    pattern: Regex,
    build: fn(&Captures<'_>) -> Option<Intent>,
}

fn rule(pattern: &str, build: fn(&Captures<'_>) -> Option<Intent>) -> Rule {
    let full = format!("(?i){LEADS}{pattern}");
    Rule {
        // The patterns are constants of this file, checked by its tests.
        pattern: Regex::new(&full).unwrap_or_else(|e| panic!("bad intent pattern {full}: {e}")),
        build,
    }
}

fn name(captures: &Captures<'_>, group: usize) -> Option<String> {
    captures
        .get(group)
        .map(|m| m.as_str().to_string())
        .filter(|n| is_name(n))
}

/// The connection type a target suggests, with the parameter that names the target.
fn connection_type(target: &str) -> (&'static str, &'static str) {
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        ("http", "url")
    } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        ("postgres", "url")
    } else if lower.ends_with(".db") || lower.ends_with(".sqlite") || lower.ends_with(".sqlite3") {
        ("sqlite", "path")
    } else {
        ("file", "path")
    }
}

/// An interval as `every=` takes it, from "15 minutes", "an hour", "hour", "day".
fn interval(number: Option<&str>, unit: &str) -> Option<String> {
    let count = match number.map(str::to_ascii_lowercase).as_deref() {
        None | Some("a") | Some("an") | Some("one") => 1,
        Some(digits) => digits.parse::<u64>().ok().filter(|n| *n > 0)?,
    };
    let unit = unit.to_ascii_lowercase();
    let letter = match unit.trim_end_matches('s') {
        "second" | "sec" => 's',
        "minute" | "min" => 'm',
        "hour" | "hr" => 'h',
        "day" => 'd',
        _ => return None,
    };
    Some(format!("{count}{letter}"))
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        vec![
            // Help: what can I do here?
            rule(
                r"(?:help|what (?:commands|can i (?:do|run|ask|say))|which commands|(?:show|list|give) (?:me )?(?:the |all )?(?:available )?commands)\b",
                |_| Some(Intent::command("list commands")),
            ),
            // Failures: "did any flow fail?", "show me the failed runs".
            rule(
                r"(?:.*\b(?:fail(?:ed|s|ures?)?|errors?|went wrong|broke)\b.*\b(?:runs?|flows?)\b|.*\b(?:runs?|flows?)\b.*\b(?:fail(?:ed|s|ures?)?|errors?|went wrong|broke)\b)",
                |_| {
                    Some(Intent::Command {
                        line: "list runs".into(),
                        only_failed: true,
                    })
                },
            ),
            // Schedules: "run orders every 15 minutes", "schedule the orders flow hourly".
            rule(
                &format!(r"(?:schedule|run)\s+(?:the\s+)?(?:flow\s+)?{NAME}(?:\s+flow)?\s+(?:every\s+(\d+|an?|one)?\s*(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?)|(hourly|daily|nightly))\b"),
                |c| {
                    let flow = name(c, 1)?;
                    let every = match c.get(4).map(|m| m.as_str().to_ascii_lowercase()) {
                        Some(word) if word == "hourly" => "1h".to_string(),
                        Some(_) => "1d".to_string(),
                        None => interval(c.get(2).map(|m| m.as_str()), c.get(3)?.as_str())?,
                    };
                    Some(Intent::command(format!("schedule flow {flow} every={every}")))
                },
            ),
            rule(
                r"schedule\s+(?:a\s+|the\s+)?flow\b",
                |_| Some(Intent::Incomplete("To schedule a flow I need its name and how often, e.g. \"schedule the orders flow every 15 minutes\" (or hourly, daily).".into())),
            ),
            // Run a flow: "run the items flow", "start items".
            rule(
                &format!(r"(?:run|start|execute|launch|trigger|kick off)\s+(?:the\s+)?(?:flow\s+)?{NAME}(?:\s+flow)?\s*[.!]?\s*$"),
                |c| name(c, 1).map(|flow| Intent::command(format!("run flow {flow}"))),
            ),
            rule(
                r"(?:run|start|execute)\s+(?:a|the|my)\s+flow\s*[.!?]?\s*$",
                |_| Some(Intent::Incomplete("Which flow should I run? Name it, e.g. \"run the orders flow\"; \"list my flows\" shows them.".into())),
            ),
            // Cancel a run: "stop run 12".
            rule(r"(?:cancel|stop|abort|kill)\s+(?:the\s+)?run\s+#?(\d+)\b", |c| {
                Some(Intent::command(format!("cancel run {}", c.get(1)?.as_str())))
            }),
            // One run: "what happened in run 7", "details of run 7".
            rule(
                r"(?:show|what happened (?:in|to|with)|details (?:of|for|on)|tell me about|how did)\s+(?:me\s+)?(?:the\s+)?run\s+#?(\d+)\b",
                |c| Some(Intent::command(format!("show run {}", c.get(1)?.as_str()))),
            ),
            // The runs of one flow: "runs of orders", "history of the orders flow".
            rule(
                &format!(r"(?:.*\b)?(?:runs|history)\s+(?:of|for)\s+(?:the\s+)?(?:flow\s+)?{NAME}(?:\s+flow)?\b"),
                |c| name(c, 1).map(|flow| Intent::command(format!("list runs {flow}"))),
            ),
            // Test a connection: "test the api connection", "check connection crm".
            rule(
                &format!(r"(?:test|check|try|verify)\s+(?:the\s+)?(?:connection\s+{NAME}|{NAME}\s+connection)\b"),
                |c| {
                    let connection = name(c, 1).or_else(|| name(c, 2))?;
                    Some(Intent::command(format!("test connection {connection}")))
                },
            ),
            // Show a flow or a connection: "show me the orders flow", "describe connection api".
            rule(
                &format!(r"(?:show|describe|display|open|what(?:'s| is) in)\s+(?:me\s+)?(?:the\s+)?(?:(flow|connection)\s+{NAME}|{NAME}\s+(flow|connection))\b"),
                |c| {
                    let (kind, object) = match (c.get(1), c.get(3)) {
                        (Some(kind), _) => (kind.as_str(), name(c, 2)?),
                        (None, Some(_)) => (c.get(4)?.as_str(), name(c, 3)?),
                        _ => return None,
                    };
                    Some(Intent::command(format!("show {} {object}", kind.to_ascii_lowercase())))
                },
            ),
            // Delete: "delete the old flow", "remove connection api".
            rule(
                &format!(r"(?:delete|remove|drop)\s+(?:the\s+)?(?:(flow|connection)\s+{NAME}|{NAME}\s+(flow|connection))\b"),
                |c| {
                    let (kind, object) = match (c.get(1), c.get(3)) {
                        (Some(kind), _) => (kind.as_str(), name(c, 2)?),
                        (None, Some(_)) => (c.get(4)?.as_str(), name(c, 3)?),
                        _ => return None,
                    };
                    Some(Intent::command(format!("delete {} {object}", kind.to_ascii_lowercase())))
                },
            ),
            // Create a connection: "create a connection called api to https://…".
            rule(
                &format!(r"(?:create|add|make|set up|setup|new)\s+(?:a\s+|an\s+)?(?:new\s+)?(?:(http|rest|api|postgres|postgresql|sqlite|file|csv)\s+)?connection\s+(?:called\s+|named\s+)?{NAME}\s+(?:to|at|for|on|with|pointing to|from)?\s*(?:url\s+|path\s+)?(\S+)"),
                |c| {
                    let connection = name(c, 2)?;
                    let target = c.get(3)?.as_str().trim_end_matches(['.', ',', '!', '?', ';']);
                    let (kind, parameter) = connection_type(target);
                    Some(Intent::command(format!("create connection {connection} type={kind} {parameter}={target}")))
                },
            ),
            rule(
                r"(?:create|add|make|set up|setup)\s+(?:a\s+|an\s+)?(?:new\s+)?(?:\w+\s+)?connection\b",
                |_| Some(Intent::Incomplete("To create a connection I need a name and where it points, e.g. \"create a connection called api to https://api.example.com/v1\" (a URL for REST APIs and PostgreSQL, a file name for files and SQLite).".into())),
            ),
            rule(
                r"(?:create|add|make|set up|setup)\s+(?:a\s+|an\s+)?(?:new\s+)?flow\b",
                |_| Some(Intent::Incomplete("To create a flow I need its name, source and destination, as a command: create flow NAME from=CONNECTION:RESOURCE to=CONNECTION:TABLE (\"list my connections\" shows what you have).".into())),
            ),
            // Lists asked in other words.
            rule(
                r"(?:.*\b)?(?:what(?:'s| is| are)?|which)\s+(?:is\s+|are\s+)?scheduled\b|(?:.*\b)?(?:my|the|all)\s+schedules\b",
                |_| Some(Intent::command("list schedules")),
            ),
            rule(
                r"(?:.*\b)?(?:recent|latest|last|my|the|all)\s+runs\b|(?:.*\b)?run history\b",
                |_| Some(Intent::command("list runs")),
            ),
            rule(
                r"(?:.*\b)?(?:what|which)\s+flows\b|(?:.*\b)?(?:my|the|all)\s+flows\b",
                |_| Some(Intent::command("list flows")),
            ),
            rule(
                r"(?:.*\b)?(?:what|which)\s+connections\b|(?:.*\b)?(?:my|the|all)\s+connections\b",
                |_| Some(Intent::command("list connections")),
            ),
        ]
    })
}

/// The workspace request in a message, if it makes one. Questions about how things work
/// ("how do I run a flow?") are not requests: they go to the documentation.
pub fn understand(message: &str) -> Option<Intent> {
    let text = message.trim();
    let lower = text.to_ascii_lowercase();
    if ["how ", "why ", "when ", "where ", "what does ", "explain "]
        .iter()
        .any(|q| lower.starts_with(q))
    {
        return None;
    }
    rules()
        .iter()
        .find_map(|rule| rule.pattern.captures(text).and_then(|c| (rule.build)(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(message: &str) -> Option<String> {
        match understand(message) {
            Some(Intent::Command { line, .. }) => Some(line),
            _ => None,
        }
    }

    #[test]
    fn everyday_phrasings_become_commands() {
        let cases = [
            ("run the items flow", "run flow items"),
            ("Please start items.", "run flow items"),
            ("can you run the nightly-load flow", "run flow nightly-load"),
            ("what commands can I run?", "list commands"),
            ("help", "list commands"),
            (
                "create a connection called api to http://127.0.0.1:9/v1",
                "create connection api type=http url=http://127.0.0.1:9/v1",
            ),
            (
                "add a postgres connection named wh to postgres://etl@db:5432/dw",
                "create connection wh type=postgres url=postgres://etl@db:5432/dw",
            ),
            (
                "create connection lake at lake.db",
                "create connection lake type=sqlite path=lake.db",
            ),
            ("test the api connection", "test connection api"),
            ("check connection crm", "test connection crm"),
            ("show me the orders flow", "show flow orders"),
            ("describe connection api", "show connection api"),
            ("what happened in run 7?", "show run 7"),
            ("stop run 12", "cancel run 12"),
            ("runs of the orders flow", "list runs orders"),
            (
                "run orders every 15 minutes",
                "schedule flow orders every=15m",
            ),
            (
                "schedule the orders flow hourly",
                "schedule flow orders every=1h",
            ),
            ("schedule items every day", "schedule flow items every=1d"),
            ("what is scheduled?", "list schedules"),
            ("what flows do I have", "list flows"),
            ("show my connections", "list connections"),
            ("delete the old flow", "delete flow old"),
        ];
        for (message, expected) in cases {
            assert_eq!(command(message).as_deref(), Some(expected), "{message}");
        }
    }

    #[test]
    fn failures_ask_for_the_failed_runs() {
        for message in [
            "did any flow fail?",
            "Show me the failed runs",
            "which runs had errors",
        ] {
            assert_eq!(
                understand(message),
                Some(Intent::Command {
                    line: "list runs".into(),
                    only_failed: true
                }),
                "{message}"
            );
        }
    }

    #[test]
    fn requests_short_of_a_slot_say_what_is_missing() {
        for message in [
            "create a connection",
            "please create a new flow",
            "run a flow",
            "schedule a flow",
        ] {
            assert!(
                matches!(understand(message), Some(Intent::Incomplete(_))),
                "{message}: {:?}",
                understand(message)
            );
        }
    }

    #[test]
    fn questions_and_other_talk_are_not_requests() {
        for message in [
            "How do I run a flow?",
            "What does the orders flow do?",
            "How do I create a REST connection?",
            "tell me about pagination",
            "Is there a template for CSV?",
        ] {
            assert_eq!(understand(message), None, "{message}");
        }
    }
}
