//! Which model answers a request: an OpenAI-compatible provider when a key is configured,
//! otherwise the builtin responder. The one place where the key for a request is resolved.

use std::sync::Arc;
use std::time::Duration;

use crate::llm::{BuiltinModel, ChatModel, OpenAiClient, OpenAiSettings};
use crate::Principal;

/// How to reach the OpenAI-compatible provider.
#[derive(Clone)]
pub struct ProviderSettings {
    pub base_url: String,
    pub model: String,
    /// The server's own key (`OPENAI_API_KEY`), if any.
    pub server_key: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("server_key", &self.server_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Picks the model for each request.
pub struct ModelResolver {
    settings: ProviderSettings,
    http: reqwest::Client,
    builtin: Arc<BuiltinModel>,
}

impl ModelResolver {
    /// A resolver sharing one pooled HTTP client across requests.
    pub fn new(settings: ProviderSettings) -> ModelResolver {
        let http = OpenAiClient::http_client(settings.connect_timeout, settings.read_timeout);
        ModelResolver {
            settings,
            http,
            builtin: Arc::new(BuiltinModel),
        }
    }

    /// The model that answers this caller: the server key's provider, or the builtin responder.
    pub async fn resolve(&self, _principal: &Principal) -> Arc<dyn ChatModel> {
        match &self.settings.server_key {
            Some(key) => Arc::new(OpenAiClient::new(
                OpenAiSettings {
                    base_url: self.settings.base_url.clone(),
                    api_key: key.clone(),
                    model: self.settings.model.clone(),
                    connect_timeout: self.settings.connect_timeout,
                    read_timeout: self.settings.read_timeout,
                },
                self.http.clone(),
            )),
            None => self.builtin.clone(),
        }
    }
}
