//! The workspace command language: parsed once into a typed [`Command`], then executed.

mod lexer;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::connectors::{ConnectionType, SourceSpec, WriteMode};

pub use lexer::{split, LexError, Word, MAX_COMMAND_CHARS};

/// The command reference shown by `list commands` and `host_list_commands`.
pub const COMMAND_REFERENCE: &str = "\
Workspace commands (quote values with spaces; commands never run in a shell):

  list commands
  list connections | flows | schedules | templates
  list runs [FLOW]
  show connection NAME
  show flow NAME
  show run ID
  create connection NAME type=http url=https://api.example.com [header.NAME=VALUE] [auth=bearer token=…] [records=data.items] [pagination=page|offset|cursor|link]
  create connection NAME type=postgres url=postgres://user@host:5432/db [password=…]
  create connection NAME type=sqlite path=lake.db
  create connection NAME type=file path=exports format=csv|json|ndjson
  set connection NAME key=value…
  test connection NAME
  delete connection NAME
  create flow NAME from=CONNECTION:RESOURCE to=CONNECTION:TABLE_OR_FILE [mode=append|replace|upsert] [key=id] [map=\"id,name:title\"]
  create flow NAME from=CONNECTION query=\"SELECT …\" to=CONNECTION:TABLE
  delete flow NAME
  run flow NAME [wait=SECONDS]
  cancel run ID
  schedule flow NAME cron=\"0 2 * * *\"
  schedule flow NAME every=30s|15m|1h|1d
  unschedule flow NAME
  disable schedule NAME
  enable schedule NAME

`run flow` waits for the run up to wait= seconds (default 30), then answers with its id; the run goes on.
`disable schedule` keeps a flow's schedule but stops it firing; `enable schedule` starts it again from now.
Viewers may list, show and test; users and admins may also create, set, delete, run, cancel and schedule.";

/// The first words of every command, for error messages.
pub const VALID_COMMANDS: &str = "list commands, list connections, list flows, list schedules, list templates, list runs, show connection, show flow, show run, create connection, set connection, test connection, delete connection, create flow, delete flow, run flow, cancel run, schedule flow, unschedule flow, disable schedule, enable schedule";

/// What a `list` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListWhat {
    Commands,
    Connections,
    Flows,
    Schedules,
    Templates,
    Runs(Option<String>),
}

/// Where a flow reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub connection: String,
    pub source: SourceSpec,
}

/// Where a flow writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    pub connection: String,
    pub target: String,
}

/// One column of a mapping: source column → destination column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    pub from: String,
    pub to: String,
}

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleSpec {
    /// A 5-field cron expression (UTC).
    Cron(String),
    /// A fixed interval.
    Every(Duration),
}

/// The definition of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowDefinition {
    pub from: SourceRef,
    pub to: TargetRef,
    pub mode: WriteMode,
    pub key: Vec<String>,
    pub map: Option<Vec<ColumnMap>>,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    List(ListWhat),
    ShowConnection(String),
    ShowFlow(String),
    ShowRun(i64),
    CreateConnection {
        name: String,
        kind: ConnectionType,
        params: BTreeMap<String, String>,
    },
    SetConnection {
        name: String,
        params: BTreeMap<String, String>,
    },
    TestConnection(String),
    DeleteConnection(String),
    CreateFlow {
        name: String,
        flow: FlowDefinition,
    },
    DeleteFlow(String),
    RunFlow {
        name: String,
        /// How long to wait for the run before answering with its id (`wait=`, seconds).
        wait: Option<u64>,
    },
    CancelRun(i64),
    ScheduleFlow {
        name: String,
        schedule: ScheduleSpec,
    },
    UnscheduleFlow(String),
    /// Stops a flow's schedule firing, keeping its cron expression or interval (the flow's name).
    DisableSchedule(String),
    /// Lets a disabled schedule fire again, from now on (the flow's name).
    EnableSchedule(String),
}

impl Command {
    /// Whether the command changes the workspace (viewers may not run these).
    pub fn modifies(&self) -> bool {
        !matches!(
            self,
            Command::List(_)
                | Command::ShowConnection(_)
                | Command::ShowFlow(_)
                | Command::ShowRun(_)
                | Command::TestConnection(_)
        )
    }
}

/// A command that cannot be parsed: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: String,
    pub position: usize,
    pub message: String,
    /// Whether to remind the user of the valid commands.
    pub list_commands: bool,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.line.chars().take(200).collect();
        let caret = " ".repeat(self.position.min(200));
        write!(
            f,
            "{} (at position {}):\n  {shown}\n  {caret}^",
            self.message,
            self.position + 1
        )?;
        if self.list_commands {
            write!(
                f,
                "\nValid commands: {VALID_COMMANDS}. Run 'list commands' for the full reference."
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

struct Parser<'a> {
    line: &'a str,
    words: Vec<Word>,
}

impl Parser<'_> {
    fn error(
        &self,
        position: usize,
        message: impl Into<String>,
        list_commands: bool,
    ) -> ParseError {
        ParseError {
            line: self.line.to_string(),
            position,
            message: message.into(),
            list_commands,
        }
    }

    fn end(&self) -> usize {
        self.line.chars().count()
    }

    fn word(&self, index: usize) -> Option<&Word> {
        self.words.get(index)
    }

    fn name(&self, index: usize, what: &str) -> Result<String, ParseError> {
        let Some(word) = self.word(index) else {
            return Err(self.error(self.end(), format!("missing the {what} name"), false));
        };
        check_name(&word.text).map_err(|message| self.error(word.position, message, false))?;
        Ok(word.text.clone())
    }

    /// A run id (a positive number, as `list runs` shows it).
    fn run_id(&self, index: usize) -> Result<i64, ParseError> {
        let Some(word) = self.word(index) else {
            return Err(self.error(self.end(), "missing the run id", false));
        };
        word.text
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| {
                self.error(
                    word.position,
                    format!(
                        "'{}' is not a run id (a number from 'list runs')",
                        word.text
                    ),
                    false,
                )
            })
    }

    fn no_more(&self, from: usize) -> Result<(), ParseError> {
        match self.word(from) {
            None => Ok(()),
            Some(extra) => Err(self.error(
                extra.position,
                format!("unexpected '{}'", extra.text),
                false,
            )),
        }
    }

    /// `key=value` words from `from` on.
    fn params(&self, from: usize) -> Result<Vec<(String, String, usize)>, ParseError> {
        let mut params = Vec::new();
        for word in &self.words[from.min(self.words.len())..] {
            let Some((key, value)) = word.text.split_once('=') else {
                return Err(self.error(
                    word.position,
                    format!("expected key=value, found '{}'", word.text),
                    false,
                ));
            };
            let key_ok = !key.is_empty()
                && key.len() <= 128
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !key_ok {
                return Err(self.error(
                    word.position,
                    format!("'{key}' is not a parameter name"),
                    false,
                ));
            }
            if params
                .iter()
                .any(|(k, _, _): &(String, String, usize)| k == key)
            {
                return Err(self.error(word.position, format!("'{key}' is given twice"), false));
            }
            params.push((key.to_string(), value.to_string(), word.position));
        }
        Ok(params)
    }
}

/// Names of connections and flows: a letter, then letters, digits, `_` or `-` (at most 64).
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(format!("'{name}' is not a valid name: use a letter, then letters, digits, '_' or '-' (at most 64)"))
    }
}

/// Parses `30s`, `15m`, `1h`, `1d` (at least one second).
pub fn parse_interval(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.checked_mul(seconds).map(Duration::from_secs)
}

fn parse_map(text: &str) -> Result<Vec<ColumnMap>, String> {
    let mut columns = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err("map= has an empty column".into());
        }
        let (from, to) = match part.split_once(':') {
            Some((from, to)) => (from.trim(), to.trim()),
            None => (part, part),
        };
        if from.is_empty() || to.is_empty() {
            return Err(format!(
                "map= entry '{part}' must be COLUMN or SOURCE:DESTINATION"
            ));
        }
        columns.push(ColumnMap {
            from: from.to_string(),
            to: to.to_string(),
        });
    }
    Ok(columns)
}

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let words = split(line).map_err(|e| ParseError {
        line: line.to_string(),
        position: e.position,
        message: e.message,
        list_commands: false,
    })?;
    let parser = Parser { line, words };
    let verb = parser.word(0).map(|w| w.text.to_lowercase());
    let noun = parser.word(1).map(|w| w.text.to_lowercase());
    let unknown = |parser: &Parser| {
        let position = parser
            .word(1)
            .map(|w| w.position)
            .or(parser.word(0).map(|w| w.position))
            .unwrap_or(0);
        let shown: Vec<&str> = parser
            .words
            .iter()
            .take(2)
            .map(|w| w.text.as_str())
            .collect();
        parser.error(
            position,
            format!("unknown command '{}'", shown.join(" ")),
            true,
        )
    };
    let Some(verb) = verb else {
        return Err(parser.error(0, "empty command", true));
    };
    let command = match (verb.as_str(), noun.as_deref()) {
        ("list", Some(what)) => {
            let what = match what {
                "commands" => ListWhat::Commands,
                "connections" => ListWhat::Connections,
                "flows" => ListWhat::Flows,
                "schedules" => ListWhat::Schedules,
                "templates" => ListWhat::Templates,
                "runs" => {
                    let flow = match parser.word(2) {
                        Some(_) => Some(parser.name(2, "flow")?),
                        None => None,
                    };
                    parser.no_more(3)?;
                    return Ok(Command::List(ListWhat::Runs(flow)));
                }
                _ => return Err(unknown(&parser)),
            };
            parser.no_more(2)?;
            Command::List(what)
        }
        ("show", Some("connection")) => {
            let name = parser.name(2, "connection")?;
            parser.no_more(3)?;
            Command::ShowConnection(name)
        }
        ("show", Some("flow")) => {
            let name = parser.name(2, "flow")?;
            parser.no_more(3)?;
            Command::ShowFlow(name)
        }
        ("show", Some("run")) => {
            let id = parser.run_id(2)?;
            parser.no_more(3)?;
            Command::ShowRun(id)
        }
        ("create", Some("connection")) => {
            let name = parser.name(2, "connection")?;
            let mut params: BTreeMap<String, String> = BTreeMap::new();
            let mut kind = None;
            for (key, value, position) in parser.params(3)? {
                if key == "type" {
                    kind = Some(ConnectionType::parse(&value).ok_or_else(|| {
                        parser.error(position, format!("unknown connection type '{value}' (expected http, postgres, sqlite or file)"), false)
                    })?);
                } else {
                    params.insert(key, value);
                }
            }
            let kind = kind.ok_or_else(|| {
                parser.error(
                    parser.end(),
                    "missing type=http|postgres|sqlite|file",
                    false,
                )
            })?;
            Command::CreateConnection { name, kind, params }
        }
        ("set", Some("connection")) => {
            let name = parser.name(2, "connection")?;
            let params = parser.params(3)?;
            if params.is_empty() {
                return Err(parser.error(
                    parser.end(),
                    "give at least one key=value to set",
                    false,
                ));
            }
            if let Some((_, _, position)) = params.iter().find(|(k, _, _)| k == "type") {
                return Err(parser.error(
                    *position,
                    "the type of a connection cannot change: delete and re-create it",
                    false,
                ));
            }
            Command::SetConnection {
                name,
                params: params.into_iter().map(|(k, v, _)| (k, v)).collect(),
            }
        }
        ("test", Some("connection")) => {
            let name = parser.name(2, "connection")?;
            parser.no_more(3)?;
            Command::TestConnection(name)
        }
        ("delete", Some("connection")) => {
            let name = parser.name(2, "connection")?;
            parser.no_more(3)?;
            Command::DeleteConnection(name)
        }
        ("delete", Some("flow")) => {
            let name = parser.name(2, "flow")?;
            parser.no_more(3)?;
            Command::DeleteFlow(name)
        }
        ("run", Some("flow")) => {
            let name = parser.name(2, "flow")?;
            let mut wait = None;
            for (key, value, position) in parser.params(3)? {
                if key != "wait" {
                    return Err(parser.error(
                        position,
                        format!("unknown parameter '{key}' (run flow NAME [wait=SECONDS])"),
                        false,
                    ));
                }
                let seconds = value
                    .trim_end_matches('s')
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s <= crate::runner::MAX_WAIT_SECONDS)
                    .ok_or_else(|| {
                        parser.error(
                            position,
                            format!(
                                "wait={value} must be a whole number of seconds from 0 to {}",
                                crate::runner::MAX_WAIT_SECONDS
                            ),
                            false,
                        )
                    })?;
                wait = Some(seconds);
            }
            Command::RunFlow { name, wait }
        }
        ("cancel", Some("run")) => {
            let id = parser.run_id(2)?;
            parser.no_more(3)?;
            Command::CancelRun(id)
        }
        ("unschedule", Some("flow")) => {
            let name = parser.name(2, "flow")?;
            parser.no_more(3)?;
            Command::UnscheduleFlow(name)
        }
        ("disable", Some("schedule")) => {
            let name = parser.name(2, "flow")?;
            parser.no_more(3)?;
            Command::DisableSchedule(name)
        }
        ("enable", Some("schedule")) => {
            let name = parser.name(2, "flow")?;
            parser.no_more(3)?;
            Command::EnableSchedule(name)
        }
        ("schedule", Some("flow")) => {
            let name = parser.name(2, "flow")?;
            let params = parser.params(3)?;
            let schedule = match params.as_slice() {
                [(key, value, position)] if key == "cron" => {
                    crate::schedule::check_cron(value)
                        .map_err(|message| parser.error(*position, message, false))?;
                    ScheduleSpec::Cron(value.clone())
                }
                [(key, value, position)] if key == "every" => {
                    ScheduleSpec::Every(parse_interval(value).ok_or_else(|| {
                        parser.error(
                            *position,
                            format!("'{value}' is not an interval such as 30s, 15m, 1h or 1d"),
                            false,
                        )
                    })?)
                }
                _ => {
                    return Err(parser.error(
                        parser.word(3).map(|w| w.position).unwrap_or(parser.end()),
                        "expected cron=\"MIN HOUR DAY MONTH WEEKDAY\" or every=30s|15m|1h|1d",
                        false,
                    ))
                }
            };
            Command::ScheduleFlow { name, schedule }
        }
        ("create", Some("flow")) => parse_create_flow(&parser)?,
        _ => return Err(unknown(&parser)),
    };
    Ok(command)
}

fn parse_create_flow(parser: &Parser) -> Result<Command, ParseError> {
    let name = parser.name(2, "flow")?;
    let params = parser.params(3)?;
    let get = |key: &str| params.iter().find(|(k, _, _)| k == key);
    if let Some((key, _, position)) = params
        .iter()
        .find(|(k, _, _)| !matches!(k.as_str(), "from" | "to" | "query" | "mode" | "key" | "map"))
    {
        return Err(parser.error(
            *position,
            format!("unknown flow parameter '{key}' (expected from, to, query, mode, key, map)"),
            false,
        ));
    }
    let (from_text, from_position) = get("from")
        .map(|(_, v, p)| (v.clone(), *p))
        .ok_or_else(|| parser.error(parser.end(), "missing from=CONNECTION:RESOURCE", false))?;
    let from = match (from_text.split_once(':'), get("query")) {
        (Some(_), Some((_, _, position))) => {
            return Err(parser.error(
                *position,
                "give either from=CONNECTION:RESOURCE or from=CONNECTION with query=, not both",
                false,
            ))
        }
        (Some((connection, resource)), None) => {
            if resource.trim().is_empty() {
                return Err(parser.error(from_position, "from= needs a resource after ':'", false));
            }
            SourceRef {
                connection: connection.to_string(),
                source: SourceSpec::Resource(resource.to_string()),
            }
        }
        (None, Some((_, query, position))) => {
            let lowered = query.trim_start().to_lowercase();
            if !(lowered.starts_with("select") || lowered.starts_with("with")) {
                return Err(parser.error(
                    *position,
                    "query= must be a SELECT (or WITH … SELECT) statement",
                    false,
                ));
            }
            SourceRef {
                connection: from_text.clone(),
                source: SourceSpec::Query(query.clone()),
            }
        }
        (None, None) => {
            return Err(parser.error(
                from_position,
                "from= must be CONNECTION:RESOURCE (or from=CONNECTION with query=\"SELECT …\")",
                false,
            ))
        }
    };
    check_name(&from.connection).map_err(|m| parser.error(from_position, m, false))?;
    let (to_text, to_position) = get("to")
        .map(|(_, v, p)| (v.clone(), *p))
        .ok_or_else(|| parser.error(parser.end(), "missing to=CONNECTION:TABLE_OR_FILE", false))?;
    let (connection, target) = to_text
        .split_once(':')
        .filter(|(_, t)| !t.trim().is_empty())
        .ok_or_else(|| parser.error(to_position, "to= must be CONNECTION:TABLE_OR_FILE", false))?;
    check_name(connection).map_err(|m| parser.error(to_position, m, false))?;
    let to = TargetRef {
        connection: connection.to_string(),
        target: target.to_string(),
    };
    let mode = match get("mode") {
        None => WriteMode::Append,
        Some((_, value, position)) => WriteMode::parse(value).ok_or_else(|| {
            parser.error(
                *position,
                format!("unknown mode '{value}' (expected append, replace or upsert)"),
                false,
            )
        })?,
    };
    let key: Vec<String> = get("key")
        .map(|(_, v, _)| {
            v.split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if mode == WriteMode::Upsert && key.is_empty() {
        return Err(parser.error(
            get("mode").map(|(_, _, p)| *p).unwrap_or(0),
            "mode=upsert needs key=COLUMN[,COLUMN]",
            false,
        ));
    }
    let map = match get("map") {
        None => None,
        Some((_, value, position)) => {
            Some(parse_map(value).map_err(|m| parser.error(*position, m, false))?)
        }
    };
    if let (Some(map), false) = (&map, key.is_empty()) {
        if let Some(missing) = key.iter().find(|k| !map.iter().any(|c| &c.to == *k)) {
            return Err(parser.error(
                get("key").map(|(_, _, p)| *p).unwrap_or(0),
                format!("key column '{missing}' is not among the mapped columns"),
                false,
            ));
        }
    }
    Ok(Command::CreateFlow {
        name,
        flow: FlowDefinition {
            from,
            to,
            mode,
            key,
            map,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_of_the_spec() {
        assert_eq!(
            parse("list commands"),
            Ok(Command::List(ListWhat::Commands))
        );
        assert_eq!(
            parse("list runs orders"),
            Ok(Command::List(ListWhat::Runs(Some("orders".into()))))
        );
        assert_eq!(parse("show run 12"), Ok(Command::ShowRun(12)));
        assert_eq!(parse("cancel run 7"), Ok(Command::CancelRun(7)));
        assert!(parse("cancel run x").is_err());
        assert_eq!(
            parse("run flow orders"),
            Ok(Command::RunFlow {
                name: "orders".into(),
                wait: None
            })
        );
        assert_eq!(
            parse("run flow orders wait=0"),
            Ok(Command::RunFlow {
                name: "orders".into(),
                wait: Some(0)
            })
        );
        assert_eq!(
            parse("run flow orders wait=90s"),
            Ok(Command::RunFlow {
                name: "orders".into(),
                wait: Some(90)
            })
        );
        assert!(parse("run flow orders wait=-1").is_err());
        assert!(parse("run flow orders wait=99999").is_err());
        assert!(parse("run flow orders now=1").is_err());
        let Ok(Command::CreateConnection { name, kind, params }) = parse(
            r#"create connection api type=http url=https://api.example.com header.Authorization="Bearer x" records=data.items"#,
        ) else {
            panic!("create connection");
        };
        assert_eq!((name.as_str(), kind), ("api", ConnectionType::Http));
        assert_eq!(params["header.Authorization"], "Bearer x");
        assert_eq!(params["records"], "data.items");
        let Ok(Command::CreateFlow { flow, .. }) = parse(
            r#"create flow orders from=api:/orders to=wh:orders mode=upsert key=id map="id,name:title""#,
        ) else {
            panic!("create flow");
        };
        assert_eq!(flow.from.source, SourceSpec::Resource("/orders".into()));
        assert_eq!(flow.mode, WriteMode::Upsert);
        assert_eq!(flow.map.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            flow.map.as_ref().map(|m| m[1].to.clone()),
            Some("title".into())
        );
        let Ok(Command::CreateFlow { flow, .. }) =
            parse(r#"create flow q from=wh query="SELECT * FROM t" to=out:t.csv"#)
        else {
            panic!("query flow");
        };
        assert_eq!(
            flow.from.source,
            SourceSpec::Query("SELECT * FROM t".into())
        );
        assert_eq!(
            parse("schedule flow orders every=15m"),
            Ok(Command::ScheduleFlow {
                name: "orders".into(),
                schedule: ScheduleSpec::Every(Duration::from_secs(900))
            })
        );
        assert!(matches!(
            parse(r#"schedule flow orders cron="0 2 * * *""#),
            Ok(Command::ScheduleFlow { .. })
        ));
        assert_eq!(
            parse("unschedule flow orders"),
            Ok(Command::UnscheduleFlow("orders".into()))
        );
        assert_eq!(
            parse("disable schedule orders"),
            Ok(Command::DisableSchedule("orders".into()))
        );
        assert_eq!(
            parse("enable schedule orders"),
            Ok(Command::EnableSchedule("orders".into()))
        );
        assert!(parse("enable schedule orders now").is_err());
        assert!(parse("disable schedule orders")
            .map(|c| c.modifies())
            .unwrap_or(false));
        assert!(!parse("list flows").map(|c| c.modifies()).unwrap_or(true));
        assert!(parse("run flow x").map(|c| c.modifies()).unwrap_or(false));
    }

    #[test]
    fn errors_point_at_the_problem_and_list_commands() {
        let error = parse("lsit flows").expect_err("unknown");
        assert!(
            error.list_commands && error.to_string().contains("Valid commands"),
            "{error}"
        );
        let error = parse("create flow f from=api:/x to=wh:t mode=merge").expect_err("mode");
        assert_eq!(error.position, 34);
        assert!(error.to_string().contains("unknown mode 'merge'"));
        assert!(parse("create flow f from=api:/x to=wh:t mode=upsert")
            .expect_err("key")
            .message
            .contains("key="));
        assert!(parse("schedule flow f every=soon").is_err());
        assert!(parse("schedule flow f cron=\"61 * * * *\"").is_err());
        assert!(parse("create connection 1abc type=http").is_err());
        assert!(parse("create connection x type=ftp")
            .expect_err("type")
            .message
            .contains("ftp"));
        assert!(parse("show run abc").is_err());
        assert!(parse("create flow f from=db query=\"DROP TABLE t\" to=x:y")
            .expect_err("select")
            .message
            .contains("SELECT"));
        assert!(parse("").is_err());
    }
}
