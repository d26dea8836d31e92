//! Which model answers a request, and with whose key: the tenant's own key, else the global
//! own key, else the server's key — all sent to the configured OpenAI-compatible endpoint —
//! else the builtin responder. The one place where the key for a request is resolved.

use std::sync::Arc;
use std::time::Duration;

use billing::Billing;

use crate::llm::{BuiltinModel, ChatModel, CompletionsUrl, OpenAiClient, OpenAiSettings};
use crate::Principal;

/// Who pays for the model's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner {
    /// The tenant's or the global own key: usage is `own_key`, never capped.
    OwnKey,
    /// The server's key: usage is `managed`, billed against allowance and wallet.
    Managed,
    /// No key anywhere: the builtin responder, free.
    Builtin,
}

/// The model for one request.
pub struct ResolvedModel {
    pub model: Arc<dyn ChatModel>,
    pub owner: KeyOwner,
}

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
    completions_url: CompletionsUrl,
    http: reqwest::Client,
    /// The client on the server's key, built once (own keys get one per request).
    managed: Option<Arc<OpenAiClient>>,
    builtin: Arc<BuiltinModel>,
    billing: Arc<Billing>,
}

impl ModelResolver {
    /// A resolver sharing one pooled HTTP client across requests.
    pub fn new(settings: ProviderSettings, billing: Arc<Billing>) -> ModelResolver {
        let mut resolver = ModelResolver {
            completions_url: CompletionsUrl::under(&settings.base_url),
            http: OpenAiClient::http_client(settings.connect_timeout, settings.read_timeout),
            managed: None,
            settings,
            builtin: Arc::new(BuiltinModel),
            billing,
        };
        resolver.managed = resolver
            .settings
            .server_key
            .clone()
            .map(|key| resolver.client(key));
        resolver
    }

    /// The model that answers this caller, and who pays for it.
    pub async fn resolve(
        &self,
        principal: &Principal,
    ) -> Result<ResolvedModel, billing::BillingError> {
        let (model, owner): (Arc<dyn ChatModel>, KeyOwner) =
            match self.billing.own_key_for(&principal.tenant_id).await? {
                Some(own) => (self.client(own.key), KeyOwner::OwnKey),
                None => match &self.managed {
                    Some(managed) => (managed.clone(), KeyOwner::Managed),
                    None => (self.builtin.clone(), KeyOwner::Builtin),
                },
            };
        Ok(ResolvedModel { model, owner })
    }

    /// A client of the configured provider on this key.
    fn client(&self, api_key: String) -> Arc<OpenAiClient> {
        Arc::new(OpenAiClient::new(
            OpenAiSettings {
                completions_url: self.completions_url.clone(),
                api_key,
                model: self.settings.model.clone(),
                connect_timeout: self.settings.connect_timeout,
                read_timeout: self.settings.read_timeout,
            },
            self.http.clone(),
        ))
    }
}
