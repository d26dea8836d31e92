//! Knowledge search over the shipped docs and imported articles: realistic questions find
//! the right article; `kb import` (Markdown, HTML, text) is searchable within seconds and
//! re-importing updates.

mod common;

use common::{eventually, Data, Server};
use serde_json::json;

fn first_link(result: &str) -> String {
    result
        .lines()
        .find(|l| l.starts_with('*'))
        .and_then(|l| l.split(" · ").nth(1))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn realistic_questions_find_the_right_article() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let questions = [
        (
            "how to create a REST API connection",
            "docs/connection-http.md",
        ),
        ("schedule a flow to run every hour", "docs/schedules.md"),
        (
            "I get 401 Unauthorized from the API",
            "docs/troubleshooting-401.md",
        ),
        (
            "upsert without creating duplicate rows",
            "docs/write-modes.md",
        ),
        (
            "stream tokens with server-sent events",
            "docs/streaming-sse.md",
        ),
        ("bring my own OpenAI API key", "docs/own-openai-key.md"),
        (
            "paginate a REST API with a cursor",
            "docs/rest-pagination.md",
        ),
        ("rename columns with a mapping", "docs/column-mapping.md"),
        (
            "run several replicas on PostgreSQL",
            "docs/replicas-postgresql.md",
        ),
        (
            "prometheus metrics and health check",
            "docs/operations-monitoring.md",
        ),
        ("python client library", "docs/python-client.md"),
        (
            "flatten nested JSON objects into columns",
            "docs/nested-json-flattening.md",
        ),
    ];
    let mut misses = Vec::new();
    for (question, expected) in questions {
        let (status, body) = server
            .tool(
                server.admin_key(),
                "search_knowledge_base",
                json!({"query": question}),
            )
            .await;
        assert_eq!(status, 200);
        let link = first_link(body["result"].as_str().unwrap_or_default());
        if link != expected {
            misses.push(format!("{question:?}: expected {expected}, got {link}"));
        }
    }
    assert!(
        misses.is_empty(),
        "wrong top results:\n{}",
        misses.join("\n")
    );
}

#[tokio::test]
async fn typos_still_find_articles() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let (_, body) = server
        .tool(
            server.admin_key(),
            "search_knowledge_base",
            json!({"query": "shedule flwo"}),
        )
        .await;
    let result = body["result"].as_str().expect("text");
    assert!(result.contains("docs/schedules.md"), "{result}");
}

#[tokio::test]
async fn imported_articles_are_searchable_and_reimport_updates() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let articles = tempfile::tempdir().expect("dir");
    std::fs::write(
        articles.path().join("vpn.md"),
        "# Connecting through the Quokka VPN\n\nOpen the quokka tunnel before running flows.",
    )
    .expect("write");
    std::fs::create_dir(articles.path().join("html")).expect("mkdir");
    std::fs::write(
        articles.path().join("html/faq.html"),
        "<html><head><title>Wombat gateway FAQ</title></head><body><p>The wombat gateway needs port 8443.</p><script>nope()</script></body></html>",
    )
    .expect("write");
    std::fs::write(
        articles.path().join("notes.txt"),
        "Numbat maintenance window\nEvery Sunday at 02:00 UTC.",
    )
    .expect("write");
    std::fs::write(articles.path().join("ignored.pdf"), "binary").expect("write");

    let out = data
        .cli_ok(&["kb", "import", articles.path().to_str().expect("path")])
        .await;
    assert!(out.contains("Imported 3 article(s)"), "{out}");

    for (query, title) in [
        ("quokka tunnel", "Connecting through the Quokka VPN"),
        ("wombat gateway port", "Wombat gateway FAQ"),
        ("numbat maintenance", "Numbat maintenance window"),
    ] {
        let found = eventually(20, || async {
            let (_, body) = server
                .tool(
                    server.admin_key(),
                    "search_knowledge_base",
                    json!({"query": query}),
                )
                .await;
            let result = body["result"].as_str().unwrap_or_default().to_string();
            result.contains(title).then_some(result)
        })
        .await
        .unwrap_or_else(|| panic!("{query} not found after import"));
        assert!(found.contains("*article*"), "{found}");
        assert!(
            !found.contains("nope()"),
            "scripts are not indexed: {found}"
        );
    }

    std::fs::write(
        articles.path().join("vpn.md"),
        "# Connecting through the Quokka VPN\n\nUse the platypus relay instead.",
    )
    .expect("write");
    data.cli_ok(&[
        "kb",
        "import",
        articles.path().join("vpn.md").to_str().expect("path"),
    ])
    .await;
    let updated = eventually(20, || async {
        let (_, body) = server
            .tool(
                server.admin_key(),
                "search_knowledge_base",
                json!({"query": "platypus relay"}),
            )
            .await;
        let result = body["result"].as_str().unwrap_or_default().to_string();
        result.contains("Quokka VPN").then_some(result)
    })
    .await;
    assert!(updated.is_some(), "re-import updates the article");
    let (_, body) = server
        .tool(
            server.admin_key(),
            "search_knowledge_base",
            json!({"query": "quokka tunnel", "limit": 20}),
        )
        .await;
    assert_eq!(
        body["result"]
            .as_str()
            .unwrap_or_default()
            .matches("Quokka VPN")
            .count(),
        1,
        "one article, not two"
    );

    let (ok, _, stderr) = data.cli(&["kb", "import", "/nonexistent/path"]).await;
    assert!(!ok && stderr.contains("cannot read"), "{stderr}");
}

#[tokio::test]
async fn every_article_of_a_large_import_is_indexed() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let indexed = || async {
        let response = server
            .client
            .get(server.url("/health"))
            .send()
            .await
            .expect("health");
        common::status_and_json(response).await.1["indexed_documents"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = indexed().await;
    let articles = tempfile::tempdir().expect("dir");
    // More than one sync page, written faster than one per millisecond.
    for n in 0..2500 {
        std::fs::write(
            articles.path().join(format!("a{n:04}.md")),
            format!("# Article {n}\n\nBody of article number {n}."),
        )
        .expect("write");
    }
    data.cli_ok(&["kb", "import", articles.path().to_str().expect("path")])
        .await;
    let all = eventually(60, || async {
        (indexed().await == before + 2500).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "indexed {} of 2500",
        indexed().await - before
    );
}
