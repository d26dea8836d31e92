//! A browser's part for the console's tests: pages read without following redirects, forms
//! posted with the session cookie, passwords set through sign-in links, signing in.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use super::{Data, Server};

/// A client that shows redirects instead of following them, and keeps no cookies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// A page's answer: status, headers and body.
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The session cookie the answer sets.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("ia_session="))
            .map(str::to_string)
    }

    /// The CSRF token the page's forms carry.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        self.body[start..]
            .split('"')
            .next()
            .expect("token")
            .to_string()
    }
}

pub async fn read(response: reqwest::Response) -> Page {
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

pub async fn get(server: &Server, path: &str, session: Option<&str>) -> Page {
    let mut request = client().get(server.url(path));
    if let Some(session) = session {
        request = request.header("Cookie", format!("ia_session={session}"));
    }
    read(request.send().await.expect("request")).await
}

pub async fn post(
    server: &Server,
    path: &str,
    session: Option<&str>,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> Page {
    let mut request = client().post(server.url(path)).form(form);
    if let Some(session) = session {
        request = request.header("Cookie", format!("ia_session={session}"));
    }
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    read(request.send().await.expect("request")).await
}

/// Sets a user's password with `user sign-in-link` and the link's form.
pub async fn set_password(data: &Data, server: &Server, email: &str, password: &str) {
    let link = data.cli_ok(&["user", "sign-in-link", email]).await;
    let path = link
        .find("/console/sign-in-link/")
        .map(|at| link[at..].trim().to_string())
        .unwrap_or_else(|| panic!("no link in {link:?}"));
    let page = get(server, &path, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Set your password"), "{}", page.body);
    let short = post(
        server,
        &path,
        None,
        &[("password", "short"), ("again", "short")],
        None,
    )
    .await;
    assert_eq!(short.status, 400);
    assert!(
        short.body.contains("at least 10 characters"),
        "{}",
        short.body
    );
    let set = post(
        server,
        &path,
        None,
        &[("password", password), ("again", password)],
        None,
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.body.contains("Password set"));
    let again = get(server, &path, None).await;
    assert_eq!(again.status, 404, "a link works once");
}

/// Signs in; returns the session token.
pub async fn sign_in(server: &Server, email: &str, password: &str) -> String {
    let page = post(
        server,
        "/console/sign-in",
        None,
        &[("email", email), ("password", password)],
        None,
    )
    .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/console");
    let cookie = page.session_cookie().expect("a session cookie");
    cookie
        .trim_start_matches("ia_session=")
        .split(';')
        .next()
        .expect("value")
        .to_string()
}
