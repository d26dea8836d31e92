//! The agent's answers as HTML: Markdown rendered by pulldown-cmark, then sanitised by
//! ammonia, so that code blocks, tables and links work while no HTML from the model, a
//! document or a ticket can run script or restyle the page. HTML written in the Markdown is
//! shown as the text it is, not interpreted.

use pulldown_cmark::{html, Event, Options, Parser};

/// Safe HTML for a Markdown text.
pub fn to_html(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
        other => other,
    });
    html::push_html(&mut unsafe_html, events);
    ammonia::Builder::default()
        // Links open elsewhere and carry nothing about the console.
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        // Images would load from wherever the model points (the page's CSP blocks them too).
        .rm_tags(["img"])
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_works_and_markup_is_defused() {
        let html = to_html(
            "# Title\n\n**bold** `code`\n\n```sql\nSELECT 1;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[docs](https://example.com)",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<pre><code"), "{html}");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("href=\"https://example.com\""));
        assert!(html.contains("rel=\"noopener noreferrer nofollow\""));

        for attack in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[click](javascript:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<div style=\"position:fixed\" onclick=\"alert(1)\">x</div>",
        ] {
            let html = to_html(attack);
            assert!(!html.is_empty(), "{attack} is shown");
            // Tags and attributes that could run or load anything; as escaped text they are
            // harmless (`&lt;img … onerror=…&gt;`).
            for bad in [
                "<script",
                "<img",
                "<iframe",
                "<div",
                "<a href=\"javascript",
                "<p style",
            ] {
                assert!(!html.contains(bad), "{attack} → {html}");
            }
        }
        // Markup in an answer is shown as the text it is.
        let html = to_html("Use <b>bold</b> and <script>x()</script> carefully");
        assert!(html.contains("&lt;script&gt;x()&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
    }
}
