//! Every machine-readable error code of the API in one table: its name, the HTTP status it is
//! answered with, its kind and what it means. The server's `ApiError` and `Refusal`, the tools'
//! errors and the agent's `error` events all carry a [`Code`], so a code is spelled once and
//! its status decided once; `docs/error-codes.md` is checked against this table by a test.
//!
//! (Statuses are plain numbers: this crate knows nothing about HTTP.)

use serde::{Serialize, Serializer};

/// What kind of failure a code names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// The request is malformed (4xx).
    Request,
    /// The caller is not known (401) or may not use the API at all (403).
    Access,
    /// A limit of the server was reached (413, 414, 429, 431, 503).
    Limit,
    /// The object does not exist or is not the caller's (404).
    NotFound,
    /// A well-formed request refused by the application: HTTP 200 with
    /// `{"success": false, "error", "code"}`, as the seeds define.
    Refusal,
    /// The server failed (500).
    Internal,
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = ($name:literal, $status:literal, $kind:ident, $meaning:literal),)*) => {
        /// A machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as clients see it (`cap_exceeded`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// The HTTP status it is answered with (200 for refusals).
            pub fn status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }

            /// What kind of failure it names.
            pub fn kind(self) -> CodeKind {
                match self {
                    $(Code::$variant => CodeKind::$kind,)*
                }
            }

            /// What it means, in a few words (the docs' wording).
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $meaning,)*
                }
            }
        }
    };
}

codes! {
    InvalidJson = ("invalid_json", 400, Request, "The body isn't valid JSON or isn't UTF-8"),
    InvalidRequest = ("invalid_request", 400, Request, "The body is JSON but not an object, or the request can't be done as asked"),
    MissingField = ("missing_field", 400, Request, "A required field is missing (`field` names it)"),
    InvalidField = ("invalid_field", 400, Request, "A field has the wrong type or value (`field` names it)"),
    InvalidPath = ("invalid_path", 400, Request, "A path parameter can't be read (e.g. not valid UTF-8)"),
    InvalidQuery = ("invalid_query", 400, Request, "The query string can't be read (e.g. a parameter given twice)"),
    MissingApiKey = ("missing_api_key", 401, Access, "No `Authorization: Bearer` key"),
    InvalidApiKey = ("invalid_api_key", 401, Access, "The key is malformed, unknown, revoked or expired (one answer for all)"),
    AiDisabled = ("ai_disabled", 403, Access, "The tenant has AI features disabled"),
    ApiAccessDisabled = ("api_access_disabled", 403, Access, "The user has no API access"),
    NotFound = ("not_found", 404, NotFound, "No such path, or an object that doesn't exist or belongs to someone else"),
    NoTurn = ("no_turn", 404, NotFound, "No turn of the session is running or still kept, so there is no stream to rejoin"),
    MethodNotAllowed = ("method_not_allowed", 405, Request, "Wrong method, e.g. `GET /chat`"),
    PayloadTooLarge = ("payload_too_large", 413, Limit, "The body is over `body_limit` (1 MiB by default)"),
    UriTooLong = ("uri_too_long", 414, Limit, "The path and query are over 8 KiB"),
    TooManyFailedAttempts = ("too_many_failed_attempts", 429, Limit, "Too many invalid keys from this address (`Retry-After` says when to retry)"),
    HeadersTooLarge = ("headers_too_large", 431, Limit, "More than 100 headers or 32 KiB of headers"),
    InternalError = ("internal_error", 500, Internal, "An unexpected server fault"),
    ServerBusy = ("server_busy", 503, Limit, "The server is at its connection limit (`Retry-After: 1`)"),
    ToolNotFound = ("tool_not_found", 200, Refusal, "No such tool; the body also carries `available_tools`"),
    ToolFailed = ("tool_failed", 200, Refusal, "The tool ran but failed (unknown object, failed test or run, busy flow)"),
    PermissionDenied = ("permission_denied", 200, Refusal, "The caller's role may not do this"),
    InvalidCommand = ("invalid_command", 200, Refusal, "An unknown or malformed workspace command"),
    CapExceeded = ("cap_exceeded", 200, Refusal, "The monthly allowance and the wallet are spent"),
}

impl Code {
    /// The code with this name.
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|code| code.name() == name)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_statuses_fit_their_kind() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.name()), "{code} twice");
            assert!(code
                .name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_eq!(Code::from_name(code.name()), Some(*code));
            let fits = match code.kind() {
                CodeKind::Refusal => code.status() == 200,
                CodeKind::Internal => code.status() == 500,
                CodeKind::NotFound => code.status() == 404,
                CodeKind::Access => matches!(code.status(), 401 | 403),
                CodeKind::Request | CodeKind::Limit => (400..=503).contains(&code.status()),
            };
            assert!(fits, "{code}: {} for {:?}", code.status(), code.kind());
        }
    }
}
