//! The seeds' quick-start commands, run verbatim with curl and jq against the real server:
//! once with the builtin responder, once with a scripted OpenAI-compatible upstream.

mod common;

use std::collections::HashMap;

use common::upstream::{Reply, Upstream};
use common::{parse_sse, tokens, Data, Server};
use serde_json::{json, Value};

async fn run_quickstart(server: &Server, key: &str) -> HashMap<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seeds/quickstart.sh");
    let output = tokio::process::Command::new("bash")
        .arg(script)
        .env("ETLWORKS_URL", &server.base)
        .env("ETLWORKS_API_KEY", key)
        .output()
        .await
        .expect("run bash (curl and jq must be installed)");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "quick start failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut steps = HashMap::new();
    for part in stdout.split("=== ").skip(1) {
        let (name, body) = part.split_once('\n').unwrap_or((part, ""));
        steps.insert(name.trim().to_string(), body.to_string());
    }
    assert!(steps.contains_key("done"), "{stdout}");
    steps
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn check_common_steps(steps: &HashMap<String, String>) {
    let tools = json_of(&steps["step 2"]);
    assert_eq!(
        tools["count"],
        tools["tools"].as_array().map(Vec::len).unwrap_or(0)
    );
    let search = json_of(&steps["step 3"]);
    assert_eq!(search["success"], true);
    assert!(search["result"]
        .as_str()
        .unwrap_or_default()
        .contains("REST API"));
    let chat = json_of(&steps["step 4"]);
    assert!(
        chat["session_id"].is_string() && chat["response"].is_string(),
        "{chat}"
    );
    let events = parse_sse(&steps["step 5"]);
    assert_eq!(
        events.first().map(|e| e["type"].clone()),
        Some(json!("session"))
    );
    assert_eq!(events.last().map(|e| e["type"].clone()), Some(json!("end")));
    assert!(!tokens(&events).is_empty());
    let step6 = &steps["step 6"];
    assert!(
        step6.starts_with("Session: ") && !step6.starts_with("Session: null"),
        "{step6}"
    );
    let messages_json = &step6[step6.find('[').expect("messages array")..];
    let messages = json_of(messages_json);
    let roles: Vec<&str> = messages
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(
        messages[2]["content"],
        "Now how do I schedule it to run daily?"
    );
    let set = json_of(&steps["api-key set"]);
    assert_eq!(
        (set["configured"].as_bool(), set["masked"].as_str()),
        (Some(true), Some("sk-…-key")),
        "{set}"
    );
    let check = json_of(&steps["api-key check"]);
    assert_eq!(check["configured"], true);
    assert!(
        !steps["api-key check"].contains("your-openai"),
        "the key is never shown"
    );
    let deleted = json_of(&steps["api-key delete"]);
    assert_eq!(deleted["deleted"], true);
}

#[tokio::test]
async fn the_quick_start_works_verbatim_with_the_builtin_responder() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let steps = run_quickstart(&server, server.admin_key()).await;
    check_common_steps(&steps);
    let chat = json_of(&steps["step 4"]);
    assert_eq!(chat["usage"]["model"], "builtin");
    assert_eq!(chat["tools_used"], json!(["search_knowledge_base"]));
}

#[tokio::test]
async fn the_quick_start_works_verbatim_against_an_llm() {
    let upstream = Upstream::start().await;
    upstream.push([
        Reply::tool_calls(&[(
            "call_1",
            "search_knowledge_base",
            json!({"query": "daily sync REST PostgreSQL"}),
        )]),
        Reply::text(&[
            "To set up a daily sync: ",
            "1. **Create a REST API connection** ...",
        ]),
        Reply::text(&["Integrator Agent ", "is ", "a ", "data integration agent."]),
        Reply::text(&["Create it with create connection."]),
        Reply::text(&["Schedule it with schedule flow."]),
    ]);
    let data = Data::new().await;
    let server = Server::start(
        &data,
        &[
            ("OPENAI_API_KEY", "sk-server"),
            ("OPENAI_BASE_URL", upstream.base_url.as_str()),
        ],
    )
    .await;
    let steps = run_quickstart(&server, server.admin_key()).await;
    check_common_steps(&steps);
    let chat = json_of(&steps["step 4"]);
    assert_eq!(chat["usage"]["model"], "gpt-4.1");
    assert_eq!(chat["tools_used"], json!(["search_knowledge_base"]));
    assert!(chat["response"]
        .as_str()
        .unwrap_or_default()
        .starts_with("To set up a daily sync"));
    let follow_up = &upstream.requests()[4].body["messages"];
    assert_eq!(
        follow_up[1]["content"], "How do I create a REST connection?",
        "the follow-up carries the first message"
    );
}

#[tokio::test]
async fn every_example_of_the_tool_reference_works_as_written() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let key = server.admin_key();
    // The seeds' "Tool reference": one example body per tool, verbatim.
    let examples = [
        (
            "search_knowledge_base",
            json!({"query": "how to create a REST API connection"}),
        ),
        (
            "search_templates",
            json!({"query": "salesforce to database"}),
        ),
        (
            "create_support_ticket",
            json!({"subject": "Need help with REST connection", "description": "I am getting a 401 error when...", "user_email": "user@company.com"}),
        ),
        ("host_list_commands", json!({})),
        ("host_cli", json!({"command": "list connections"})),
        (
            "import_template",
            json!({"template_id": 42, "mode": "standard"}),
        ),
    ];
    for (tool, arguments) in examples {
        let (status, body) = server.tool(key, tool, arguments.clone()).await;
        assert_eq!(
            (status, body["success"].as_bool(), body["tool"].as_str()),
            (200, Some(true), Some(tool)),
            "{tool} {arguments}: {body}"
        );
        assert!(
            !body["result"].as_str().unwrap_or_default().is_empty(),
            "{tool}: {body}"
        );
    }
}
