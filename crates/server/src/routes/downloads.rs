//! `/downloads`: the client scripts and framework adapters, compiled into the binary from
//! `clients/`, served with their content types, and an index page listing them.

use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;
use crate::params::ApiPath;

/// A downloadable file: name, content type, what it is, contents.
struct Download {
    name: &'static str,
    content_type: &'static str,
    description: &'static str,
    contents: &'static str,
}

const DOWNLOADS: &[Download] = &[
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

/// The list of downloadable client scripts.
#[utoipa::path(get, path = "/downloads", tag = "operations",
    responses((status = 200, description = "HTML page listing the client scripts", body = String, content_type = "text/html")))]
pub async fn index() -> Html<String> {
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
    Html(html)
}

/// One client script, as an attachment with its content type.
#[utoipa::path(get, path = "/downloads/{file}", tag = "operations",
    params(("file" = String, Path, description = "e.g. etlworks_agent.py")),
    responses(
        (status = 200, description = "The file", body = String, content_type = "text/plain"),
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
