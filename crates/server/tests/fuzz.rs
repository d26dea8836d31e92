//! Fuzz-style robustness: random and hostile auth headers and tool bodies always get a 4xx
//! JSON error, and the server keeps serving.

mod common;

use common::{Data, Server};
use rand_free::Lcg;

/// A tiny deterministic generator, so failures reproduce.
mod rand_free {
    pub struct Lcg(pub u64);
    impl Lcg {
        pub fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        pub fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }
}

fn assert_json_4xx(status: u16, text: &str, what: &str) {
    assert!(
        (400..500).contains(&status),
        "{what}: status {status}: {text}"
    );
    let body: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    assert!(
        body["error"].is_string() && body["code"].is_string(),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn hostile_authorization_headers_are_401_json() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let mut rng = Lcg(7);
    let mut headers: Vec<Vec<u8>> = vec![
        b"Bearer ".to_vec(),
        b"Bearer  ".to_vec(),
        b"bearer".to_vec(),
        format!("Bearer {}", "A".repeat(255)).into_bytes(),
        format!("Bearer {}", "A".repeat(257)).into_bytes(),
        format!("Bearer {}", "A".repeat(8000)).into_bytes(),
        format!("Bearer {}\u{e9}", "A".repeat(255)).into_bytes(),
        [b"Bearer ".as_slice(), &[0xc3, 0x28]].concat(),
    ];
    for _ in 0..60 {
        let len = (rng.next() % 300) as usize;
        // Visible ASCII and obs-text bytes: what a header value may carry on the wire.
        let value: Vec<u8> = rng
            .bytes(len)
            .into_iter()
            .map(|b| {
                if b < 0x21 {
                    b'!' + (b % 90)
                } else if b == 0x7f {
                    b'x'
                } else {
                    b
                }
            })
            .collect();
        headers.push(value);
    }
    for header in headers {
        let Ok(value) = reqwest::header::HeaderValue::from_bytes(&header) else {
            continue;
        };
        let response = server
            .client
            .get(server.api("/tools"))
            .header("Authorization", value)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("text");
        assert_json_4xx(
            status,
            &text,
            &format!("header {:?}", String::from_utf8_lossy(&header)),
        );
        assert_eq!(status, 401, "{text}");
    }
    assert_eq!(
        server.get("/tools", server.admin_key()).await.0,
        200,
        "still serving"
    );
}

#[tokio::test]
async fn hostile_tool_bodies_are_4xx_json() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let mut rng = Lcg(42);
    let mut bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"{\"query\": null}".to_vec(),
        b"{\"query\": [\"a\"]}".to_vec(),
        b"{\"query\": {\"$ne\": 1}}".to_vec(),
        b"{\"query\": true}".to_vec(),
        b"{\"query\": 1e999}".to_vec(),
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
        format!("{{\"query\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes(),
        vec![0xff; 100],
        b"\x00\x00\x00".to_vec(),
    ];
    for _ in 0..60 {
        let len = (rng.next() % 200) as usize;
        bodies.push(rng.bytes(len));
    }
    for body in bodies {
        for tool in [
            "search_knowledge_base",
            "search_templates",
            "create_support_ticket",
        ] {
            let response = server
                .client
                .post(server.api(&format!("/tools/{tool}/execute")))
                .bearer_auth(server.admin_key())
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let text = response.text().await.expect("text");
            let shown: String = String::from_utf8_lossy(&body).chars().take(60).collect();
            assert_json_4xx(status, &text, &format!("{tool} body {shown:?}"));
        }
    }
    assert_eq!(
        server.get("/tools", server.admin_key()).await.0,
        200,
        "still serving"
    );
}

/// Paths and query strings that cannot be read are 4xx JSON errors too, never plain text.
#[tokio::test]
async fn hostile_paths_and_query_strings_are_4xx_json() {
    let data = Data::new().await;
    let server = Server::start(&data, &[]).await;
    let key = server.admin_key();
    let requests = [
        ("GET", server.api("/sessions?limit=5&limit=6")),
        ("GET", server.api("/sessions?offset=1&offset=2")),
        ("GET", server.api("/sessions?limit=%FF")),
        ("GET", server.api("/sessions?limit=abc")),
        ("GET", server.api("/sessions/%FF/messages")),
        ("GET", server.api("/sessions/%00/messages")),
        ("DELETE", server.api("/sessions/%FF%FE")),
        ("POST", server.api("/sessions/%C3%28/stop")),
        ("POST", server.api("/sessions/%FF/chat")),
        ("POST", server.api("/tools/%FF/execute")),
        ("GET", server.url("/downloads/%FF")),
    ];
    for (method, url) in requests {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = server
            .client
            .request(method.clone(), &url)
            .bearer_auth(key)
            .json(&serde_json::json!({"message": "hi"}))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("text");
        assert_json_4xx(status, &text, &format!("{method} {url}"));
    }
    let (status, body) = server.get("/sessions?limit=5&limit=6", key).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_query")),
        "{body}"
    );
}
