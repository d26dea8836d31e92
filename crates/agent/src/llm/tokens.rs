//! Token counts from a real tokenizer (o200k_base, the GPT-4o/4.1 family's), for the builtin
//! responder and for providers that do not report usage.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

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

#[cfg(test)]
mod tests {
    #[test]
    fn counts_tokens_like_openai() {
        assert_eq!(super::count(""), 0);
        assert_eq!(super::count("hello world"), 2);
    }
}
