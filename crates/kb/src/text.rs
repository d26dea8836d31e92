//! Turning imported Markdown and HTML into a title and plain searchable text.

/// Version of the text extraction below: part of the shipped corpus's fingerprint, so that a
/// server whose extraction changed indexes the shipped documents again.
pub const TEXT_EXTRACTION_VERSION: u32 = 2;

/// Splits a Markdown document into its title (the first `# ` heading, else the first
/// non-empty line) and plain text without markup characters that would clutter snippets.
/// Code — fenced blocks and inline code spans — is kept exactly as written: it holds commands
/// that users copy (`cron="0 2 * * *"`, `[]`).
pub fn markdown_to_title_and_text(markdown: &str) -> (String, String) {
    let mut title = None;
    let mut text = String::with_capacity(markdown.len());
    let mut in_front_matter = false;
    let mut fence: Option<&str> = None;
    for (number, line) in markdown.lines().enumerate() {
        let trimmed = line.trim();
        if number == 0 && trimmed == "---" {
            in_front_matter = true;
            continue;
        }
        if in_front_matter {
            if trimmed == "---" {
                in_front_matter = false;
            } else if let Some(value) = trimmed.strip_prefix("title:") {
                title.get_or_insert_with(|| value.trim().trim_matches('"').to_string());
            }
            continue;
        }
        match fence {
            Some(open) if trimmed.starts_with(open) => {
                fence = None;
                continue;
            }
            Some(_) => {
                text.push_str(line.trim_end());
                text.push('\n');
                continue;
            }
            None => {
                if let Some(open) = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f)) {
                    fence = Some(open);
                    continue;
                }
            }
        }
        if let Some(heading) = trimmed.strip_prefix("# ") {
            if title.is_none() {
                title = Some(strip_inline_markdown(heading));
                continue;
            }
        }
        let without_heading = trimmed.trim_start_matches('#').trim_start();
        text.push_str(&strip_inline_markdown(without_heading));
        text.push('\n');
    }
    let title = title.unwrap_or_else(|| first_line(&text));
    (title, collapse_blank_lines(&text))
}

/// Removes inline markup and keeps what it marks: `[a](b)` and `![a](b)` become `a`, `**a**`
/// and `*a*` become `a`, and a code span loses its backticks but nothing inside them.
/// Underscores stay: they are part of names such as `search_knowledge_base`. Brackets and
/// stars that are not markup (`[optional]`, `2 * 3`) stay too.
fn strip_inline_markdown(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            let ticks = rest.len() - rest.trim_start_matches('`').len();
            let (fence, after) = rest.split_at(ticks);
            match after.find(fence) {
                Some(end) => {
                    out.push_str(&after[..end]);
                    rest = &after[end + ticks..];
                }
                // Backticks that open nothing are dropped.
                None => rest = after,
            }
            continue;
        }
        let image = c == '!' && rest[1..].starts_with('[');
        if c == '[' || image {
            let at = usize::from(image);
            if let Some((label, after)) = link(&rest[at..]) {
                out.push_str(&strip_inline_markdown(label));
                rest = after;
                continue;
            }
        }
        if c == '*' {
            let stars = rest.len() - rest.trim_start_matches('*').len();
            let before = out.chars().next_back();
            let next = rest[stars..].chars().next();
            let touches_text =
                |neighbour: Option<char>| neighbour.is_some_and(|n| !n.is_whitespace());
            if touches_text(before) || touches_text(next) {
                rest = &rest[stars..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A link `[label](target)` at the start of `text`: its label and the text after it.
fn link(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('[')?;
    let close = inner.find(']')?;
    let target = inner[close + 1..].strip_prefix('(')?;
    let end = target.find(')')?;
    Some((&inner[..close], &target[end + 1..]))
}

/// Extracts the title (`<title>` or the first `<h1>`) and the visible text of an HTML page.
pub fn html_to_title_and_text(html: &str) -> (String, String) {
    let mut text = String::with_capacity(html.len() / 2);
    let mut title = String::new();
    let mut h1 = String::new();
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    let mut capture: Option<&'static str> = None;
    while let Some(start) = rest.find('<') {
        let before = &rest[..start];
        if skip_until.is_none() {
            let decoded = decode_entities(before);
            match capture {
                Some("title") => title.push_str(&decoded),
                Some("h1") => {
                    h1.push_str(&decoded);
                    text.push_str(&decoded);
                }
                _ => text.push_str(&decoded),
            }
        }
        let Some(end) = rest[start..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        rest = &rest[start + end + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let closing = tag.starts_with('/');
        if let Some(until) = skip_until {
            if closing && name == until {
                skip_until = None;
            }
            continue;
        }
        match (name.as_str(), closing) {
            ("script", false) => skip_until = Some("script"),
            ("style", false) => skip_until = Some("style"),
            ("title", false) => capture = Some("title"),
            ("h1", false) if h1.is_empty() => capture = Some("h1"),
            ("title" | "h1", true) => {
                capture = None;
                text.push('\n');
            }
            (
                "p" | "div" | "br" | "li" | "tr" | "h2" | "h3" | "h4" | "h5" | "h6" | "pre"
                | "section" | "article",
                _,
            ) => text.push('\n'),
            _ => text.push(' '),
        }
    }
    if skip_until.is_none() {
        text.push_str(&decode_entities(rest));
    }
    let text = collapse_blank_lines(&text);
    let title = [title.trim(), h1.trim()]
        .into_iter()
        .find(|t| !t.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| first_line(&text));
    (collapse_spaces(&title), text)
}

fn decode_entities(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("Untitled")
        .chars()
        .take(120)
        .collect()
}

fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn collapse_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = collapse_spaces(line);
        if line.is_empty() {
            continue;
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_title_and_links_are_cleaned() {
        let (title, text) = markdown_to_title_and_text(
            "# Creating a **REST** Connection\n\nSee [the flows guide](flows.md) and `run flow`.\n\n## Steps\n```\ncreate connection api\n```\n",
        );
        assert_eq!(title, "Creating a REST Connection");
        assert!(text.contains("See the flows guide and run flow."), "{text}");
        assert!(text.contains("Steps"));
        assert!(text.contains("create connection api"));
        assert!(!text.contains("flows.md"));
    }

    #[test]
    fn code_keeps_every_character() {
        let (_, text) = markdown_to_title_and_text(
            "# Schedules\n\n```\nschedule flow orders cron=\"0 2 * * *\"\n# a shell comment\n```\n\nA body that is not an object (`[]`, `\"hi\"`) is refused; use ``a `tick` inside``.\n",
        );
        assert!(
            text.contains("schedule flow orders cron=\"0 2 * * *\""),
            "{text}"
        );
        assert!(text.contains("# a shell comment"), "{text}");
        assert!(
            text.contains("(`[]`, \"hi\")".replace('`', "").as_str()),
            "{text}"
        );
        assert!(text.contains("use a `tick` inside."), "{text}");
    }

    #[test]
    fn only_markup_is_removed() {
        let strip = strip_inline_markdown;
        assert_eq!(strip("**bold**, *it*, and __x__"), "bold, it, and __x__");
        assert_eq!(strip("2 * 3 [optional] [x]"), "2 * 3 [optional] [x]");
        assert_eq!(
            strip("see [the *guide*](a.md) and ![logo](l.png)!"),
            "see the guide and logo!"
        );
        assert_eq!(strip("[a] then [b](c)"), "[a] then b");
        assert_eq!(strip("an `unclosed tick"), "an unclosed tick");
        assert_eq!(strip("ünïcode *ok*"), "ünïcode ok");
    }

    #[test]
    fn markdown_front_matter_title_wins() {
        let (title, text) = markdown_to_title_and_text("---\ntitle: \"Hello\"\n---\nBody text");
        assert_eq!(title, "Hello");
        assert_eq!(text, "Body text");
    }

    #[test]
    fn html_title_text_and_scripts() {
        let (title, text) = html_to_title_and_text(
            "<html><head><title>Fix 401 &amp; 403</title><style>p{}</style></head><body><h1>Errors</h1><p>Check the <b>key</b>.</p><script>alert(1)</script></body></html>",
        );
        assert_eq!(title, "Fix 401 & 403");
        assert!(text.contains("Check the key ."), "{text}");
        assert!(!text.contains("alert"));
        assert!(!text.contains("p{}"));
    }
}
