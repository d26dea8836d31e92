//! English stemming with a memory: the same Snowball stems as tantivy's `Stemmer`, but each
//! word's stem is remembered (per thread, up to [`CACHE_WORDS`] words), because the same few
//! thousand words come back in every document and every snippet, and stemming them again is
//! most of the cost of analysing text.

use std::cell::RefCell;
use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};
use tantivy::tokenizer::{Token, TokenFilter, TokenStream, Tokenizer};

/// Words remembered per thread before the memory starts over.
const CACHE_WORDS: usize = 50_000;

thread_local! {
    static STEMS: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
}

/// Calls `f` with the English stem of a lower-cased `word`, from the memory when it is there.
fn with_stem<R>(stemmer: &Stemmer, word: &str, f: impl FnOnce(&str) -> R) -> R {
    STEMS.with(|stems| {
        let mut stems = stems.borrow_mut();
        if let Some(stem) = stems.get(word) {
            return f(stem);
        }
        let stem = stemmer.stem(word).into_owned();
        let answer = f(&stem);
        if stems.len() >= CACHE_WORDS {
            stems.clear();
        }
        stems.insert(word.to_string(), stem);
        answer
    })
}

/// Whether a lower-cased `word` stems to `stem` (as the index's analysis would stem it).
pub fn stems_to(word: &str, stem: &str) -> bool {
    thread_local! {
        static ENGLISH: Stemmer = Stemmer::create(Algorithm::English);
    }
    ENGLISH.with(|stemmer| with_stem(stemmer, word, |found| found == stem))
}

/// Replaces each (lower-cased) token by its English stem.
#[derive(Clone, Copy, Default)]
pub struct CachedEnglishStemmer;

impl TokenFilter for CachedEnglishStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> CachedStemmerFilter<T> {
        CachedStemmerFilter { inner: tokenizer }
    }
}

/// The tokenizer wrapped by [`CachedEnglishStemmer`].
#[derive(Clone)]
pub struct CachedStemmerFilter<T> {
    inner: T,
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            stemmer: Stemmer::create(Algorithm::English),
        }
    }
}

/// The token stream of [`CachedStemmerFilter`].
pub struct CachedStemmerStream<T> {
    tail: T,
    stemmer: Stemmer,
}

impl<T: TokenStream> TokenStream for CachedStemmerStream<T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        let stem = with_stem(&self.stemmer, &token.text, str::to_string);
        token.text = stem;
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::tokenizer::{Language, LowerCaser, SimpleTokenizer, TextAnalyzer};

    fn tokens(mut analyzer: TextAnalyzer, text: &str) -> Vec<String> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn stems_exactly_like_tantivy_twice_over() {
        let text =
            "Connections connecting connected; queries QUERY scheduled schedules running runs";
        let ours = || {
            TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(LowerCaser)
                .filter(CachedEnglishStemmer)
                .build()
        };
        let theirs = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .filter(tantivy::tokenizer::Stemmer::new(Language::English))
            .build();
        let expected = tokens(theirs, text);
        assert_eq!(tokens(ours(), text), expected);
        // The second time every stem comes from the memory.
        assert_eq!(tokens(ours(), text), expected);
    }
}
