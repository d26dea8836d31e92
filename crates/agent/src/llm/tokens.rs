//! Token counts from a real tokenizer (o200k_base, the GPT-4o/4.1 family's), for the builtin
//! responder and for providers that do not report usage.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use super::ChatRequest;

fn tokenizer() -> Option<&'static CoreBPE> {
    static TOKENIZER: OnceLock<Option<CoreBPE>> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| tiktoken_rs::o200k_base().ok())
        .as_ref()
}

/// The number of tokens in a text.
pub fn count(text: &str) -> u64 {
    match tokenizer() {
        Some(bpe) => bpe.encode_with_special_tokens(text).len() as u64,
        // Roughly four characters a token, should the tokenizer ever fail to load.
        None => (text.chars().count() as u64).div_ceil(4),
    }
}

/// The exact number of prompt tokens of a request: every message and tool definition.
pub fn count_prompt(chat: &ChatRequest) -> u64 {
    prompt_size(chat, count)
}

/// A quick upper estimate of a request's prompt tokens (four bytes a token, rounded up, for
/// every message and tool definition), for setting money aside before the call: counting
/// exactly costs far more than the estimate needs to be right. The real count comes from the
/// provider's usage report (or [`count_prompt`] when there is none).
pub fn estimate_prompt(chat: &ChatRequest) -> u64 {
    prompt_size(chat, |text| (text.len() as u64).div_ceil(4))
}

/// The size of every message and tool definition of a request, each measured by `measure`.
fn prompt_size(chat: &ChatRequest, measure: impl Fn(&str) -> u64) -> u64 {
    chat.messages
        .iter()
        .map(|m| measure(&m.text()))
        .sum::<u64>()
        + chat
            .tools
            .iter()
            .map(|t| measure(&t.parameters.to_string()) + measure(&t.description))
            .sum::<u64>()
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_tokens_like_openai() {
        assert_eq!(super::count(""), 0);
        assert_eq!(super::count("hello world"), 2);
    }

    #[test]
    fn the_estimate_is_not_below_the_count_for_english() {
        use crate::llm::{ChatMessage, ChatRequest};
        let chat = ChatRequest {
            messages: vec![
                ChatMessage::System(crate::turn::DEFAULT_SYSTEM_PROMPT.to_string()),
                ChatMessage::User("How do I load CSV files into PostgreSQL every night?".into()),
            ],
            tools: Vec::new(),
        };
        assert!(super::estimate_prompt(&chat) >= super::count_prompt(&chat));
    }
}
