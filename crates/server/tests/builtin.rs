//! The builtin responder (no language model key anywhere) as a newcomer meets it: everyday
//! phrasings of workspace requests run the command they mean and say which, a request short of
//! a name says what is missing, and a spent budget is reported as a cap.

mod common;

use common::{Data, Server};
use serde_json::{json, Value};

async fn chat(server: &Server, key: &str, message: &str) -> Value {
    let (status, body) = server
        .post("/chat", key, &json!({ "message": message }))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn everyday_requests_run_the_command_they_mean() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let key = server.admin_key().to_string();

    let answer = chat(
        &server,
        &key,
        "create a connection called api to https://api.example.com/v1",
    )
    .await;
    assert_eq!(answer["usage"]["model"], "builtin");
    assert_eq!(answer["tools_used"], json!(["host_cli"]));
    let text = answer["response"].as_str().unwrap_or_default();
    assert!(
        text.contains("I ran `create connection api type=http url=https://api.example.com/v1`"),
        "{text}"
    );
    assert!(text.contains("Created http connection 'api'"), "{text}");
    assert!(
        !text.contains("builtin responder"),
        "no filler after a workspace answer: {text}"
    );

    let text = chat(&server, &key, "what commands can I run?").await["response"].to_string();
    assert!(text.contains("I ran `list commands`"), "{text}");
    let text = chat(&server, &key, "show me the api connection").await["response"].to_string();
    assert!(text.contains("I ran `show connection api`"), "{text}");
    let text = chat(&server, &key, "did any flow fail?").await["response"].to_string();
    assert!(
        text.contains("I ran `list runs`") && text.contains("No flow has run yet"),
        "{text}"
    );
    let text = chat(&server, &key, "run the items flow").await["response"].to_string();
    assert!(
        text.contains("I ran `run flow items`, and it did not succeed"),
        "{text}"
    );
    assert!(text.contains("flow 'items' does not exist"), "{text}");

    // Short of a name: what is missing, and no tool.
    let answer = chat(&server, &key, "please create a connection").await;
    assert!(answer.get("tools_used").is_none(), "{answer}");
    assert!(
        answer["response"]
            .as_str()
            .unwrap_or_default()
            .contains("I need a name"),
        "{answer}"
    );
    // A question still goes to the docs.
    let answer = chat(&server, &key, "How do I create a REST connection?").await;
    assert_eq!(answer["tools_used"], json!(["search_knowledge_base"]));
}

#[tokio::test]
async fn a_spent_budget_is_reported_as_a_cap() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let key = data.user_with_allowance("broke", "0").await;
    // The builtin responder is free; the workspace command it runs is billed.
    let (status, body) = server
        .post("/chat", &key, &json!({"message": "list my flows"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"success": false, "error": "AI usage cap exceeded", "code": "cap_exceeded"})
    );
    // The documentation is free, and still answers.
    let answer = chat(&server, &key, "How do I create a REST connection?").await;
    assert_eq!(answer["tools_used"], json!(["search_knowledge_base"]));
}

/// A sentence can't smuggle a second command, a shell or another connection's parameters
/// through the builtin responder: it runs one command, which the workspace parser checks.
#[tokio::test]
async fn a_sentence_cannot_smuggle_a_second_command() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let key = server.admin_key().to_string();
    chat(
        &server,
        &key,
        "create a connection called keep to https://api.example.com/v1",
    )
    .await;
    for attack in [
        "create a connection called api to http://x;delete connection keep",
        "create a connection called api to http://x\ndelete connection keep",
        "create a connection called api to $(rm -rf /)",
        "create a connection called api to \"http://x\" type=postgres url=postgres://root@127.0.0.1/test",
        "run the `delete flow x` flow",
        "show me the ../../etc/passwd flow",
    ] {
        let answer = chat(&server, &key, attack).await;
        let text = answer["response"].as_str().unwrap_or_default().to_string();
        assert!(!text.contains("Deleted"), "{attack}: {text}");
    }
    let (_, answer) = server
        .tool(&key, "host_cli", json!({"command": "list connections"}))
        .await;
    let listed = answer["result"].as_str().unwrap_or_default();
    assert!(
        listed.contains("keep"),
        "the other connection is still there: {listed}"
    );
    assert!(
        !listed.contains("postgres"),
        "no postgres connection was made: {listed}"
    );
}
