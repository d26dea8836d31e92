//! Splits a command line into words with shell-like quoting — and refuses everything that
//! would mean something to a shell, because commands never reach one.

/// A word and where it starts (0-based character position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub position: usize,
    /// Whether any part was quoted (a quoted `=` does not split `key=value`).
    pub quoted_equals: bool,
}

/// A command line that cannot be split, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub position: usize,
    pub message: String,
}

/// The longest command accepted.
pub const MAX_COMMAND_CHARS: usize = 8192;

fn shell_syntax(c: char, next: Option<char>) -> Option<&'static str> {
    match (c, next) {
        (';', _) => Some("';'"),
        ('|', _) => Some("'|'"),
        ('&', _) => Some("'&'"),
        ('>', _) => Some("'>'"),
        ('<', _) => Some("'<'"),
        ('`', _) => Some("backticks"),
        ('$', Some('(')) => Some("'$('"),
        ('$', Some('{')) => Some("'${'"),
        _ => None,
    }
}

/// Splits `line` into words: whitespace separates; 'single' and "double" quotes group (with
/// backslash escapes inside double quotes and outside quotes). Shell operators outside quotes,
/// command substitution anywhere, and control characters are refused.
pub fn split(line: &str) -> Result<Vec<Word>, LexError> {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() > MAX_COMMAND_CHARS {
        return Err(LexError {
            position: MAX_COMMAND_CHARS,
            message: format!("the command is longer than {MAX_COMMAND_CHARS} characters"),
        });
    }
    let mut words = Vec::new();
    let mut current: Option<Word> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_control() && c != '\t' && c != '\n' && c != '\r' {
            return Err(LexError {
                position: i,
                message: "control characters are not allowed".into(),
            });
        }
        if c.is_whitespace() {
            if let Some(word) = current.take() {
                words.push(word);
            }
            i += 1;
            continue;
        }
        let word = current.get_or_insert_with(|| Word {
            text: String::new(),
            position: i,
            quoted_equals: false,
        });
        if let Some(what) = shell_syntax(c, next) {
            return Err(LexError {
                position: i,
                message: format!("{what} is not allowed: commands never run in a shell (quote the value if it is data)"),
            });
        }
        match c {
            '\'' | '"' => {
                let quote = c;
                let start = i;
                i += 1;
                loop {
                    let Some(&q) = chars.get(i) else {
                        return Err(LexError {
                            position: start,
                            message: format!("unclosed {quote} quote"),
                        });
                    };
                    let after = chars.get(i + 1).copied();
                    if q == quote {
                        break;
                    }
                    if matches!(shell_syntax(q, after), Some("backticks" | "'$('" | "'${'")) {
                        return Err(LexError {
                            position: i,
                            message: "command substitution is not allowed, not even in quotes: commands never run in a shell".into(),
                        });
                    }
                    if q.is_control() && q != '\t' && q != '\n' {
                        return Err(LexError {
                            position: i,
                            message: "control characters are not allowed".into(),
                        });
                    }
                    if quote == '"' && q == '\\' && matches!(after, Some('"' | '\\')) {
                        word.text.push(after.unwrap_or('\\'));
                        i += 2;
                        continue;
                    }
                    if q == '=' {
                        word.quoted_equals = true;
                    }
                    word.text.push(q);
                    i += 1;
                }
                i += 1;
            }
            '\\' => {
                match next {
                    Some(escaped) => word.text.push(escaped),
                    None => {
                        return Err(LexError {
                            position: i,
                            message: "a backslash at the end escapes nothing".into(),
                        })
                    }
                }
                i += 2;
            }
            other => {
                word.text.push(other);
                i += 1;
            }
        }
    }
    if let Some(word) = current.take() {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        split(line)
            .expect("splits")
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn splits_like_a_shell_without_being_one() {
        assert_eq!(texts("list  connections"), ["list", "connections"]);
        assert_eq!(
            texts(r#"create flow f map="id,name:title""#),
            ["create", "flow", "f", "map=id,name:title"]
        );
        assert_eq!(
            texts(r#"x header.Authorization="Bearer abc""#),
            ["x", "header.Authorization=Bearer abc"]
        );
        assert_eq!(texts("x 'it''s'"), ["x", "its"]);
        assert_eq!(texts(r#"x "a \"b\" c""#), ["x", r#"a "b" c"#]);
        assert_eq!(texts(r"x a\ b"), ["x", "a b"]);
        assert_eq!(
            texts(r#"q query="SELECT * FROM t WHERE a > 1; -- ok in quotes""#)[1],
            "query=SELECT * FROM t WHERE a > 1; -- ok in quotes"
        );
    }

    #[test]
    fn refuses_shell_syntax_with_its_position() {
        for (line, position) in [
            ("list connections; rm -rf /", 16),
            ("list flows | cat", 11),
            ("run flow x && y", 11),
            ("show flow $(whoami)", 10),
            ("show flow `id`", 10),
            ("show flow \"$(id)\"", 11),
            ("show flow 'a`b'", 12),
            ("list flows > out", 11),
            ("show flow \"open", 10),
        ] {
            let error = split(line).expect_err(line);
            assert_eq!(error.position, position, "{line}: {}", error.message);
        }
        assert!(split("a\u{7}b").is_err());
    }
}
