//! The typed events of one agent turn: what SSE streams and what `/chat` folds.

use serde::Serialize;

/// Where the agent is in its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before the first LLM call.
    Thinking,
    /// After tool results came back.
    Analyzing,
    /// Before the final answer streams.
    Preparing,
}

impl Phase {
    /// The phase as events name it (`thinking`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Thinking => "thinking",
            Phase::Analyzing => "analyzing",
            Phase::Preparing => "preparing",
        }
    }

    /// The human message shown with the phase.
    pub fn message(self) -> &'static str {
        match self {
            Phase::Thinking => "Reviewing your request...",
            Phase::Analyzing => "Analyzing the results...",
            Phase::Preparing => "Preparing the answer...",
        }
    }
}

/// One event of a turn, serialised as `{"type": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    Session {
        session_id: String,
    },
    Phase {
        phase: Phase,
        message: String,
    },
    ToolStart {
        tool: String,
        message: String,
        /// With `tool_details`: which call this is (pairs it with its `tool_end`).
        #[serde(skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
        /// With `tool_details`: the call's arguments as the model gave them.
        #[serde(skip_serializing_if = "Option::is_none")]
        arguments: Option<serde_json::Value>,
    },
    ToolEnd {
        tool: String,
        /// With `tool_details`: the call this ends.
        #[serde(skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
        /// With `tool_details`: what the tool answered (the start of it, for long answers).
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<String>,
    },
    Token {
        content: String,
    },
    Usage {
        prompt_tokens: u64,
        completion_tokens: u64,
        model: String,
    },
    End,
    Error {
        message: String,
        retryable: bool,
        /// Machine-readable reason when there is one (e.g. `cap_exceeded`).
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<crate::Code>,
    },
}

impl AgentEvent {
    /// A phase event with its standard message.
    pub fn phase(phase: Phase) -> AgentEvent {
        AgentEvent::Phase {
            phase,
            message: phase.message().to_string(),
        }
    }

    /// Whether the event ends its turn's stream: `end`, or an `error` (the stream closes
    /// after it).
    pub fn is_last(&self) -> bool {
        matches!(self, AgentEvent::End | AgentEvent::Error { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_like_the_seed() {
        let json = |e: &AgentEvent| serde_json::to_string(e).expect("json");
        assert_eq!(
            json(&AgentEvent::Session {
                session_id: "s".into()
            }),
            r#"{"type":"session","session_id":"s"}"#
        );
        assert_eq!(
            json(&AgentEvent::phase(Phase::Thinking)),
            r#"{"type":"phase","phase":"thinking","message":"Reviewing your request..."}"#
        );
        assert_eq!(
            json(&AgentEvent::ToolEnd {
                tool: "t".into(),
                call_id: None,
                result: None
            }),
            r#"{"type":"tool_end","tool":"t"}"#
        );
        assert_eq!(
            json(&AgentEvent::Token {
                content: "To ".into()
            }),
            r#"{"type":"token","content":"To "}"#
        );
        assert_eq!(
            json(&AgentEvent::Usage {
                prompt_tokens: 1,
                completion_tokens: 2,
                model: "m".into()
            }),
            r#"{"type":"usage","prompt_tokens":1,"completion_tokens":2,"model":"m"}"#
        );
        assert_eq!(json(&AgentEvent::End), r#"{"type":"end"}"#);
        assert_eq!(
            json(&AgentEvent::Error {
                message: "x".into(),
                retryable: true,
                code: None
            }),
            r#"{"type":"error","message":"x","retryable":true}"#
        );
    }
}
