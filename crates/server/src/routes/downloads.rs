//! `/downloads`: the client scripts and framework adapters, compiled into the binary from
//! `clients/`, served with their content types, and an index listing them: an HTML page for
//! browsers, JSON for everything else (scripts, `curl`, HTTP libraries).

use axum::http::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE, VARY};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::params::ApiPath;

/// A downloadable file: name, content type, what it is, contents.
pub(crate) struct Download {
    pub(crate) name: &'static str,
    content_type: &'static str,
    pub(crate) description: &'static str,
    contents: &'static str,
}

/// The client scripts and adapters.
pub(crate) const DOWNLOADS: &[Download] = &[
    Download {
        name: "etlworks_agent.py",
        content_type: "text/x-python; charset=utf-8",
        description:
            "Python client: library (EtlworksAgent) and command line; Python 3.8+, requests only",
        contents: include_str!("../../../../clients/python/etlworks_agent.py"),
    },
    Download {
        name: "etlworks-agent.sh",
        content_type: "text/x-shellscript; charset=utf-8",
        description: "bash client: curl and jq",
        contents: include_str!("../../../../clients/sh/etlworks-agent.sh"),
    },
    Download {
        name: "etlworks-agent.ps1",
        content_type: "text/plain; charset=utf-8",
        description: "PowerShell client: Windows PowerShell 5.1 and PowerShell 7",
        contents: include_str!("../../../../clients/powershell/etlworks-agent.ps1"),
    },
    Download {
        name: "langchain_tool.py",
        content_type: "text/x-python; charset=utf-8",
        description: "LangChain tool delegating tasks to an agent session (langchain-core)",
        contents: include_str!("../../../../clients/python/langchain_tool.py"),
    },
    Download {
        name: "crewai_tool.py",
        content_type: "text/x-python; charset=utf-8",
        description: "CrewAI tool delegating tasks to an agent session",
        contents: include_str!("../../../../clients/python/crewai_tool.py"),
    },
    Download {
        name: "autogen_tool.py",
        content_type: "text/x-python; charset=utf-8",
        description: "AutoGen (autogen-agentchat) tool delegating tasks to an agent session",
        contents: include_str!("../../../../clients/python/autogen_tool.py"),
    },
];

/// The answer of `GET /downloads/` to clients that do not ask for HTML.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadList {
    pub files: Vec<DownloadEntry>,
}

/// One downloadable file.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadEntry {
    /// The file name, e.g. etlworks_agent.py.
    pub name: String,
    /// Its size in bytes.
    pub size: usize,
    /// Where to get it, relative to the server root: /downloads/<name>.
    pub url: String,
    /// What it is.
    pub description: String,
}

/// Whether the client asked for HTML: its `Accept` names `text/html` (or XHTML) with a weight
/// above zero and at least that of `application/json`. Browsers do; `curl`, scripts and HTTP
/// libraries send `*/*` or nothing, and a wildcard alone picks JSON, the machine-readable form.
fn wants_html(headers: &HeaderMap) -> bool {
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for accept in headers.get_all(ACCEPT) {
        let Ok(accept) = accept.to_str() else {
            continue;
        };
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            // A weight that cannot be read counts as 1, the default.
            let weight = parts
                .filter_map(|p| {
                    let (name, value) = p.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| value.trim().parse::<f32>().ok())
                        .flatten()
                })
                .next()
                .unwrap_or(1.0)
                .clamp(0.0, 1.0);
            match media.as_str() {
                "text/html" | "application/xhtml+xml" => html = html.max(weight),
                "application/json" => json = json.max(weight),
                _ => {}
            }
        }
    }
    html > 0.0 && html >= json
}

fn html_index() -> String {
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Integrator Agent downloads</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}</style></head>\
         <body><h1>Client scripts</h1><ul>",
    );
    for download in DOWNLOADS {
        html.push_str(&format!(
            "<li><a href=\"/downloads/{0}\">{0}</a> — {1} ({2} bytes)</li>",
            download.name,
            download.description,
            download.contents.len()
        ));
    }
    html.push_str("</ul><p>Set <code>ETLWORKS_URL</code> to this server's URL and <code>ETLWORKS_API_KEY</code> to your key. See <a href=\"/docs\">the API reference</a>.</p></body></html>");
    html
}

fn json_index() -> DownloadList {
    DownloadList {
        files: DOWNLOADS
            .iter()
            .map(|download| DownloadEntry {
                name: download.name.to_string(),
                size: download.contents.len(),
                url: format!("/downloads/{}", download.name),
                description: download.description.to_string(),
            })
            .collect(),
    }
}

fn index_for(headers: &HeaderMap) -> Response {
    let mut response = if wants_html(headers) {
        Html(html_index()).into_response()
    } else {
        Json(json_index()).into_response()
    };
    // The answer depends on `Accept`: caches must keep the two forms apart.
    response
        .headers_mut()
        .insert(VARY, axum::http::HeaderValue::from_static("accept"));
    response
}

/// The list of downloadable client scripts: an HTML page for browsers (`Accept: text/html`),
/// JSON otherwise.
#[utoipa::path(get, path = "/downloads/", tag = "operations",
    responses((status = 200, description = "The client scripts: JSON, or an HTML page when `Accept` prefers text/html", content(
        (DownloadList = "application/json"),
        (String = "text/html"),
    ))))]
pub async fn index(headers: HeaderMap) -> Response {
    index_for(&headers)
}

/// The same list as `/downloads/`, without the trailing slash.
#[utoipa::path(get, path = "/downloads", tag = "operations",
    responses((status = 200, description = "As `GET /downloads/`", content(
        (DownloadList = "application/json"),
        (String = "text/html"),
    ))))]
pub async fn index_without_slash(headers: HeaderMap) -> Response {
    index_for(&headers)
}

/// One client script, as an attachment with its content type.
#[utoipa::path(get, path = "/downloads/{file}", tag = "operations",
    params(("file" = String, Path, description = "e.g. etlworks_agent.py")),
    responses(
        (status = 200, description = "The file, as an attachment", content(
            (String = "text/x-python"),
            (String = "text/x-shellscript"),
            (String = "text/plain"),
        )),
        (status = 404, description = "No such download", body = crate::openapi::ErrorBody),
    ))]
pub async fn file(ApiPath(name): ApiPath<String>) -> Result<Response, ApiError> {
    let download = DOWNLOADS.iter().find(|d| d.name == name).ok_or_else(|| {
        let names: Vec<&str> = DOWNLOADS.iter().map(|d| d.name).collect();
        ApiError::not_found(format!(
            "No download named '{name}'; available: {}",
            names.join(", ")
        ))
    })?;
    Ok((
        [
            (CONTENT_TYPE, download.content_type.to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", download.name),
            ),
        ],
        download.contents,
    )
        .into_response())
}
