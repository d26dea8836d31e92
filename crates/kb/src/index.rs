//! The tantivy index: schema, writes (upsert by id), and ranked search with highlighting.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use crate::stemming::{stems_to, CachedEnglishStemmer};
use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::indexer::LogMergePolicy;
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, STORED, STRING,
};
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, StopWordFilter, TextAnalyzer, TokenStream,
};
use tantivy::{
    doc, DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term,
};

/// The tenant value of documents every tenant may see (docs, articles, templates).
pub const GLOBAL_TENANT: &str = "*";

/// Bumped whenever the schema or analysis changes: an index of another version is rebuilt.
const SCHEMA_VERSION: u32 = 3;
const ANALYZER: &str = "en_text";
const WRITER_MEMORY: usize = 50_000_000;
const SNIPPET_CHARS: usize = 220;
/// How much more a word in the title counts than one in the body.
const TITLE_BOOST: f32 = 3.0;

/// Words too common in questions to say anything about the topic.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with", "how", "what", "why", "when", "where", "which",
    "do", "does", "did", "i", "me", "my", "we", "our", "you", "your", "can", "could", "should",
    "would", "please", "want", "need",
];

/// Why an index operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("search index error: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("cannot open the search index directory {path}: {reason}")]
    Directory { path: String, reason: String },
    #[error("the search index writer is unavailable (a previous write panicked)")]
    WriterPoisoned,
}

/// What a searchable document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// Shipped user documentation.
    Doc,
    /// Imported with `kb import`.
    Article,
    /// A tenant's support ticket.
    Ticket,
    /// A template of the catalog.
    Template,
}

impl DocKind {
    /// The name shown in results and stored in the index.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Doc => "doc",
            DocKind::Article => "article",
            DocKind::Ticket => "ticket",
            DocKind::Template => "template",
        }
    }

    /// Templates are short and name many technologies; without a small handicap they crowd
    /// out the articles that explain how things work.
    fn rank_weight(self) -> f32 {
        match self {
            DocKind::Template => 0.75,
            _ => 1.0,
        }
    }

    /// The number stored in the `kind_code` fast field.
    fn code(self) -> u64 {
        match self {
            DocKind::Doc => 0,
            DocKind::Article => 1,
            DocKind::Ticket => 2,
            DocKind::Template => 3,
        }
    }

    fn from_code(code: u64) -> DocKind {
        match code {
            1 => DocKind::Article,
            2 => DocKind::Ticket,
            3 => DocKind::Template,
            _ => DocKind::Doc,
        }
    }
}

/// A document to index. `id` is unique across kinds (`doc:…`, `ticket:…`); adding a document
/// with an existing id replaces it.
#[derive(Debug, Clone)]
pub struct KbDocument {
    pub id: String,
    pub kind: DocKind,
    /// `GLOBAL_TENANT`, or the id of the only tenant allowed to see it.
    pub tenant: String,
    pub title: String,
    pub body: String,
    /// Where to read more: a path, URL or ticket/template reference.
    pub link: String,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub id: String,
    pub kind: DocKind,
    pub title: String,
    pub link: String,
    /// A passage of the body with the matched words in Markdown bold.
    pub snippet: String,
    pub score: f32,
}

/// How far the index has followed its sources; kept in the index's own commit payload so
/// that it changes atomically with the documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMarks {
    pub schema_version: u32,
    /// Fingerprint of the shipped corpus (docs and templates) last indexed.
    pub corpus_fingerprint: String,
    /// Articles changed at or after this time (ms) may not be indexed yet.
    pub articles_since: i64,
    /// Tickets changed at or after this time (ms) may not be indexed yet.
    pub tickets_since: i64,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    kind: Field,
    tenant: Field,
    title: Field,
    body: Field,
    link: Field,
    /// [`DocKind::code`], a fast field: ranking reads it without loading the document.
    kind_code: Field,
    /// 1 when every tenant may see the document, a fast field.
    global: Field,
}

const KIND_CODE: &str = "kind_code";
const GLOBAL: &str = "global";

/// The search index of one server process.
pub struct KnowledgeBase {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// The analyser of the text fields, for queries.
    analyzer: TextAnalyzer,
    marks: Mutex<SyncMarks>,
}

fn build_schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
        .set_stored();
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        kind: builder.add_text_field("kind", STRING | STORED),
        tenant: builder.add_text_field("tenant", STRING | STORED),
        title: builder.add_text_field("title", text.clone()),
        body: builder.add_text_field("body", text),
        link: builder.add_text_field("link", STORED),
        kind_code: builder.add_u64_field(KIND_CODE, FAST),
        global: builder.add_u64_field(GLOBAL, FAST),
    };
    (builder.build(), fields)
}

fn analyzer() -> TextAnalyzer {
    let stop_words = StopWordFilter::remove(STOP_WORDS.iter().map(|w| w.to_string()));
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(stop_words)
        .filter(CachedEnglishStemmer)
        .build()
}

impl KnowledgeBase {
    /// Opens the index in `dir`, creating it — or rebuilding it empty when it is unreadable or
    /// of another schema version. Check [`KnowledgeBase::marks`] to know what must be re-added.
    pub fn open(dir: &Path) -> Result<KnowledgeBase, KbError> {
        let dir_error = |e: &dyn std::fmt::Display| KbError::Directory {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| dir_error(&e))?;
        let (schema, fields) = build_schema();
        let index = match open_existing(dir, &schema) {
            Some(index) => index,
            None => {
                std::fs::remove_dir_all(dir).map_err(|e| dir_error(&e))?;
                std::fs::create_dir_all(dir).map_err(|e| dir_error(&e))?;
                Index::create_in_dir(dir, schema.clone())?
            }
        };
        index.tokenizers().register(ANALYZER, analyzer());
        let marks = index
            .load_metas()?
            .payload
            .and_then(|p| serde_json::from_str::<SyncMarks>(&p).ok())
            .filter(|m| m.schema_version == SCHEMA_VERSION)
            .unwrap_or(SyncMarks {
                schema_version: SCHEMA_VERSION,
                ..SyncMarks::default()
            });
        let writer: IndexWriter = index.writer(WRITER_MEMORY)?;
        // Merge small segments early: each segment costs every search a scorer per term, and
        // the sync commits in batches. (Segments at or above the policy's first level, 10,000
        // documents, still merge only with their like.)
        let mut merges = LogMergePolicy::default();
        merges.set_min_num_segments(2);
        writer.set_merge_policy(Box::new(merges));
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(KnowledgeBase {
            reader,
            writer: Mutex::new(writer),
            fields,
            analyzer: analyzer(),
            marks: Mutex::new(marks),
        })
    }

    /// How far the index has followed its sources.
    pub fn marks(&self) -> SyncMarks {
        self.marks.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Adds or replaces documents (by id), removes the ids in `remove`, records `marks`, and
    /// commits — all visible to searches when this returns.
    pub fn apply(
        &self,
        upserts: &[KbDocument],
        remove_kinds: &[DocKind],
        marks: SyncMarks,
    ) -> Result<(), KbError> {
        let mut writer = self.writer.lock().map_err(|_| KbError::WriterPoisoned)?;
        for kind in remove_kinds {
            writer.delete_term(Term::from_field_text(self.fields.kind, kind.as_str()));
        }
        for document in upserts {
            writer.delete_term(Term::from_field_text(self.fields.id, &document.id));
            writer.add_document(doc!(
                self.fields.id => document.id.as_str(),
                self.fields.kind => document.kind.as_str(),
                self.fields.tenant => document.tenant.as_str(),
                self.fields.title => document.title.as_str(),
                self.fields.body => document.body.as_str(),
                self.fields.link => document.link.as_str(),
                self.fields.kind_code => document.kind.code(),
                self.fields.global => u64::from(document.tenant == GLOBAL_TENANT),
            ))?;
        }
        let marks = SyncMarks {
            schema_version: SCHEMA_VERSION,
            ..marks
        };
        let payload = serde_json::to_string(&marks).unwrap_or_default();
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        drop(writer);
        self.reader.reload()?;
        if let Ok(mut current) = self.marks.lock() {
            *current = marks;
        }
        Ok(())
    }

    /// Makes segments merged in the background since the last commit searchable.
    pub fn refresh(&self) -> Result<(), KbError> {
        Ok(self.reader.reload()?)
    }

    /// Number of searchable documents.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ranked search over what `tenant_id` may see, optionally only some kinds. Exact (stemmed)
    /// matches rank first by BM25 with a title boost; when they are too few, words within one
    /// typo of the query's fill the rest.
    pub fn search(
        &self,
        query: &str,
        tenant_id: &str,
        kinds: &[DocKind],
        limit: usize,
    ) -> Result<Vec<SearchHit>, KbError> {
        let limit = limit.max(1);
        let searcher = self.reader.searcher();
        let visible = Visible { tenant_id, kinds };
        let text_query = self.text_query(&searcher, query);
        // Without a kind filter, the text query runs alone (so top-k pruning applies) and hits
        // another tenant may not see are dropped afterwards; a kind filter is part of the query.
        let exact: Box<dyn Query> = if kinds.is_empty() {
            text_query
        } else {
            Box::new(BooleanQuery::new(vec![
                (Occur::Must, text_query),
                (Occur::Must, self.visibility_filter(tenant_id, kinds)),
            ]))
        };
        let mut hits = self.collect(&searcher, exact.as_ref(), limit, &HashSet::new(), &visible)?;
        if hits.len() < limit {
            if let Some(fuzzy) = self.fuzzy_query(query) {
                let fuzzy = BooleanQuery::new(vec![
                    (Occur::Must, fuzzy),
                    (Occur::Must, self.visibility_filter(tenant_id, kinds)),
                ]);
                let seen: HashSet<DocAddress> = hits.iter().map(|(address, _)| *address).collect();
                let more = self.collect(&searcher, &fuzzy, limit - hits.len(), &seen, &visible)?;
                hits.extend(more);
            }
        }
        Ok(hits.into_iter().map(|(_, hit)| hit).collect())
    }

    /// The words of the question (analysed as the index was), each looked for in the title
    /// (boosted) and in the body: one flat union of term queries, which tantivy evaluates with
    /// block-max WAND, skipping the documents that cannot make the top hits. (The query
    /// parser's form, a union of per-word unions, has to score every matching document.)
    fn text_query(&self, searcher: &tantivy::Searcher, query: &str) -> Box<dyn Query> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(query);
        let mut words: Vec<String> = Vec::new();
        while stream.advance() {
            let word = &stream.token().text;
            if !words.contains(word) {
                words.push(word.clone());
            }
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in &words {
            for (field, boost) in [(self.fields.title, TITLE_BOOST), (self.fields.body, 1.0)] {
                let term = Term::from_field_text(field, word);
                // A word no document has matches nothing, and its empty scorer would keep
                // tantivy from block-max WAND for the whole query.
                if searcher.doc_freq(&term).unwrap_or(0) == 0 {
                    continue;
                }
                let query = TermQuery::new(term, IndexRecordOption::WithFreqs);
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(query), boost)),
                ));
            }
        }
        Box::new(BooleanQuery::new(clauses))
    }

    fn visibility_filter(&self, tenant_id: &str, kinds: &[DocKind]) -> Box<dyn Query> {
        let term_query = |field: Field, value: &str| -> (Occur, Box<dyn Query>) {
            (
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(field, value),
                    IndexRecordOption::Basic,
                )),
            )
        };
        let tenants = BooleanQuery::new(vec![
            term_query(self.fields.tenant, GLOBAL_TENANT),
            term_query(self.fields.tenant, tenant_id),
        ]);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(tenants))];
        if !kinds.is_empty() {
            let kinds = BooleanQuery::new(
                kinds
                    .iter()
                    .map(|k| term_query(self.fields.kind, k.as_str()))
                    .collect(),
            );
            clauses.push((Occur::Must, Box::new(kinds)));
        }
        Box::new(BoostQuery::new(Box::new(BooleanQuery::new(clauses)), 0.0))
    }

    fn fuzzy_query(&self, query: &str) -> Option<Box<dyn Query>> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(query);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        while stream.advance() {
            let word = stream.token().text.clone();
            if word.chars().count() < 4 {
                continue;
            }
            let distance = if word.chars().count() >= 8 { 2 } else { 1 };
            for (field, boost) in [(self.fields.title, TITLE_BOOST), (self.fields.body, 1.0)] {
                let term = Term::from_field_text(field, &word);
                let fuzzy = FuzzyTermQuery::new(term, distance, true);
                clauses.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(fuzzy), boost)),
                ));
            }
        }
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
    }

    /// The best `limit` hits of `query` that `visible` allows, leaving out `skip`. Ranking reads
    /// the kind (for its weight) and visibility from fast fields; only the documents returned —
    /// and tickets, whose tenant must be checked — are loaded from the store.
    fn collect(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn Query,
        limit: usize,
        skip: &HashSet<DocAddress>,
        visible: &Visible,
    ) -> Result<Vec<(DocAddress, SearchHit)>, KbError> {
        let mut columns = FactColumns::default();
        let mut wanted = limit * 3 + skip.len();
        let mut ranked = Vec::new();
        loop {
            let top = searcher.search(query, &TopDocs::with_limit(wanted))?;
            let exhausted = top.len() < wanted;
            ranked.clear();
            let mut hidden = 0;
            for (score, address) in top {
                if skip.contains(&address) {
                    continue;
                }
                let (kind, global) = columns.facts(searcher, address)?;
                let allowed = visible.allows_kind(kind)
                    && (global || {
                        let document: TantivyDocument = searcher.doc(address)?;
                        stored_text(&document, self.fields.tenant) == visible.tenant_id
                    });
                if !allowed {
                    hidden += 1;
                    continue;
                }
                ranked.push((score * kind.rank_weight(), address, kind));
            }
            // Hits hidden from this tenant took places: look further down when that left too few.
            if exhausted || hidden == 0 || ranked.len() >= limit * 3 || wanted >= 4096 {
                break;
            }
            wanted *= 4;
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.truncate(limit);
        let mut terms: Vec<String> = Vec::new();
        query.query_terms(&mut |term, _| {
            if term.field() == self.fields.body {
                if let Some(text) = term.value().as_str() {
                    terms.push(text.to_string());
                }
            }
        });
        let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
        ranked
            .into_iter()
            .map(|(score, address, kind)| {
                let document: TantivyDocument = searcher.doc(address)?;
                let body = stored_str(&document, self.fields.body);
                let snippet =
                    highlighted_passage(body, &terms).unwrap_or_else(|| leading_passage(body));
                let hit = SearchHit {
                    id: stored_text(&document, self.fields.id),
                    kind,
                    title: stored_text(&document, self.fields.title),
                    link: stored_text(&document, self.fields.link),
                    snippet,
                    score,
                };
                Ok((address, hit))
            })
            .collect()
    }
}

/// The fast-field columns of each segment, opened once per search.
#[derive(Default)]
struct FactColumns {
    segments: HashMap<u32, (Column<u64>, Column<u64>)>,
}

impl FactColumns {
    /// A document's kind, and whether every tenant may see it.
    fn facts(
        &mut self,
        searcher: &tantivy::Searcher,
        address: DocAddress,
    ) -> Result<(DocKind, bool), KbError> {
        let columns = match self.segments.entry(address.segment_ord) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let fast = searcher.segment_reader(address.segment_ord).fast_fields();
                entry.insert((fast.u64(KIND_CODE)?, fast.u64(GLOBAL)?))
            }
        };
        let kind = DocKind::from_code(columns.0.first(address.doc_id).unwrap_or(0));
        let global = columns.1.first(address.doc_id).unwrap_or(0) == 1;
        Ok((kind, global))
    }
}

/// What one search may return.
struct Visible<'a> {
    tenant_id: &'a str,
    kinds: &'a [DocKind],
}

impl Visible<'_> {
    fn allows_kind(&self, kind: DocKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

fn stored_str(document: &TantivyDocument, field: Field) -> &str {
    document
        .get_first(field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
}

fn stored_text(document: &TantivyDocument, field: Field) -> String {
    stored_str(document, field).to_string()
}

fn open_existing(dir: &Path, schema: &Schema) -> Option<Index> {
    let index = Index::open_in_dir(dir).ok()?;
    (index.schema() == *schema).then_some(index)
}

/// Bytes of the passage kept before its first match.
const SNIPPET_LEAD: usize = 40;

/// The snippet of a hit: the passage of about [`SNIPPET_CHARS`] that holds the most distinct
/// query terms, its matching words in Markdown bold, on one line; `None` when no word of the
/// body matches. A word matches when its stem is one of the query's terms (the index's own
/// analysis); only words that share their first three letters with a term are stemmed, and
/// stems are remembered, so a snippet costs one pass over the body.
fn highlighted_passage(body: &str, terms: &[&str]) -> Option<String> {
    let words = matching_words(body, terms);
    if words.is_empty() {
        return None;
    }
    // Slide a window over the matches: the start with the most distinct terms inside wins.
    let span = SNIPPET_CHARS - SNIPPET_LEAD;
    let mut counts = vec![0usize; terms.len()];
    let (mut distinct, mut end) = (0usize, 0usize);
    let (mut best, mut best_distinct) = (0usize, 0usize);
    for (first, (range, first_term)) in words.iter().enumerate() {
        while end < words.len() && words[end].0.end <= range.start + span {
            counts[words[end].1] += 1;
            if counts[words[end].1] == 1 {
                distinct += 1;
            }
            end += 1;
        }
        if distinct > best_distinct {
            (best, best_distinct) = (first, distinct);
        }
        if first < end {
            counts[*first_term] -= 1;
            if counts[*first_term] == 0 {
                distinct -= 1;
            }
        }
    }
    let first_match = words[best].0.start;
    // Start at a word shortly before the first match, end at a word boundary.
    let start = floor_char_boundary(body, first_match.saturating_sub(SNIPPET_LEAD));
    let start = if start == 0 {
        0
    } else {
        body[start..first_match]
            .find(char::is_whitespace)
            .map_or(first_match, |space| start + space + 1)
    };
    let mut stop = floor_char_boundary(body, (start + SNIPPET_CHARS).min(body.len()));
    if stop < body.len() {
        if let Some(space) = body[first_match..stop].rfind(char::is_whitespace) {
            stop = first_match + space;
        }
    }
    let ranges: Vec<std::ops::Range<usize>> = words
        .iter()
        .map(|(range, _)| range.clone())
        .filter(|range| range.start >= start && range.end <= stop)
        .map(|range| range.start - start..range.end - start)
        .collect();
    Some(markdown_highlight(&body[start..stop], &ranges))
}

/// The words of `body` whose stem is one of `terms`: their byte ranges and which term.
fn matching_words(body: &str, terms: &[&str]) -> Vec<(std::ops::Range<usize>, usize)> {
    let is_word_byte = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
    let mut starts_a_term = [false; 256];
    for first in terms.iter().filter_map(|term| term.as_bytes().first()) {
        starts_a_term[usize::from(first.to_ascii_lowercase())] = true;
        starts_a_term[usize::from(first.to_ascii_uppercase())] = true;
    }
    let bytes = body.as_bytes();
    let mut words = Vec::new();
    let mut lower = String::new();
    let mut at = 0;
    while at < bytes.len() {
        if !is_word_byte(bytes[at]) {
            at += 1;
            continue;
        }
        let start = at;
        while at < bytes.len() && is_word_byte(bytes[at]) {
            at += 1;
        }
        let word = &bytes[start..at];
        // A stem and its words share their first three letters (stemming changes endings
        // only): that cheap test first, then the exact one on the few words left.
        let shares_start = |term: &&str| {
            let n = term.len().min(3);
            word.len() >= n && word[..n].eq_ignore_ascii_case(&term.as_bytes()[..n])
        };
        if !starts_a_term[usize::from(word[0])]
            || word.len() > 40
            || !terms.iter().any(shares_start)
        {
            continue;
        }
        let Ok(text) = std::str::from_utf8(word) else {
            continue;
        };
        lower.clear();
        lower.extend(text.chars().flat_map(char::to_lowercase));
        if let Some(term) = terms.iter().position(|term| stems_to(&lower, term)) {
            words.push((start..at, term));
        }
    }
    words
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn markdown_highlight(fragment: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let mut out = String::with_capacity(fragment.len() + ranges.len() * 4);
    let mut at = 0;
    for range in ranges {
        if range.start < at || range.end > fragment.len() {
            continue;
        }
        out.push_str(&fragment[at..range.start]);
        out.push_str("**");
        out.push_str(&fragment[range.clone()]);
        out.push_str("**");
        at = range.end;
    }
    out.push_str(&fragment[at..]);
    one_line(&out)
}

fn leading_passage(body: &str) -> String {
    let passage: String = body.chars().take(SNIPPET_CHARS).collect();
    one_line(&passage)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(id: &str, kind: DocKind, tenant: &str, title: &str, body: &str) -> KbDocument {
        KbDocument {
            id: id.into(),
            kind,
            tenant: tenant.into(),
            title: title.into(),
            body: body.into(),
            link: format!("link/{id}"),
        }
    }

    fn sample() -> (tempfile::TempDir, KnowledgeBase) {
        let dir = tempfile::tempdir().expect("tempdir");
        let kb = KnowledgeBase::open(dir.path()).expect("open");
        kb.apply(
            &[
                document(
                    "doc:http",
                    DocKind::Doc,
                    GLOBAL_TENANT,
                    "Creating an HTTP connection",
                    "An HTTP connection reads JSON from a REST API. Set url and headers.",
                ),
                document(
                    "doc:schedules",
                    DocKind::Doc,
                    GLOBAL_TENANT,
                    "Schedules",
                    "Run a flow every hour with schedule flow NAME every=1h.",
                ),
                document(
                    "ticket:a",
                    DocKind::Ticket,
                    "tenant-a",
                    "Connection refused",
                    "Our warehouse connection is refused since Monday.",
                ),
                document(
                    "ticket:b",
                    DocKind::Ticket,
                    "tenant-b",
                    "Connection timeout",
                    "Warehouse connection times out.",
                ),
            ],
            &[],
            SyncMarks {
                articles_since: 5,
                ..SyncMarks::default()
            },
        )
        .expect("apply");
        (dir, kb)
    }

    #[test]
    fn ranks_title_matches_first_and_highlights() {
        let (_dir, kb) = sample();
        let hits = kb
            .search("how to create a REST API connection", "tenant-a", &[], 5)
            .expect("search");
        assert_eq!(hits[0].id, "doc:http");
        assert!(hits[0].snippet.contains("**"), "{}", hits[0].snippet);
    }

    #[test]
    fn tickets_are_visible_only_to_their_tenant() {
        let (_dir, kb) = sample();
        let ids: Vec<String> = kb
            .search("warehouse connection", "tenant-a", &[], 10)
            .expect("search")
            .into_iter()
            .map(|h| h.id)
            .collect();
        assert!(ids.contains(&"ticket:a".to_string()));
        assert!(!ids.contains(&"ticket:b".to_string()));
    }

    #[test]
    fn tolerates_typos_and_filters_kinds() {
        let (_dir, kb) = sample();
        let hits = kb.search("shedule", "t", &[], 5).expect("search");
        assert_eq!(hits.first().map(|h| h.id.as_str()), Some("doc:schedules"));
        let hits = kb
            .search("connection", "tenant-a", &[DocKind::Ticket], 5)
            .expect("search");
        assert!(hits.iter().all(|h| h.kind == DocKind::Ticket));
    }

    #[test]
    fn marks_and_documents_survive_reopening() {
        let (dir, kb) = sample();
        drop(kb);
        let kb = KnowledgeBase::open(dir.path()).expect("reopen");
        assert_eq!(kb.marks().articles_since, 5);
        assert_eq!(kb.len(), 4);
    }

    #[test]
    fn snippets_of_long_bodies_come_from_the_densest_passage() {
        let filler = "Unrelated words about other things fill this part of the page. ".repeat(40);
        let body = format!(
            "{filler}Backups matter. {filler}A nightly backup keeps the warehouse safe. {filler}"
        );
        let snippet =
            highlighted_passage(&body, &["night", "backup", "warehous"]).expect("a snippet");
        assert!(
            snippet.contains("**nightly** **backup** keeps the **warehouse** safe"),
            "{snippet}"
        );
        assert!(snippet.len() <= SNIPPET_CHARS + 20, "{}", snippet.len());
        assert_eq!(
            highlighted_passage(&body, &["backups"]),
            None,
            "terms are whole stems"
        );
        assert_eq!(
            highlighted_passage("Short: one backup.", &["backup"]).as_deref(),
            Some("Short: one **backup**.")
        );
        let (_dir, kb) = sample();
        kb.apply(
            &[document(
                "doc:long",
                DocKind::Doc,
                GLOBAL_TENANT,
                "Long page",
                &body,
            )],
            &[],
            SyncMarks::default(),
        )
        .expect("apply");
        let hits = kb
            .search("nightly warehouse backup", "t", &[], 1)
            .expect("search");
        assert_eq!(hits[0].id, "doc:long");
        assert!(
            hits[0].snippet.contains("**warehouse**"),
            "{}",
            hits[0].snippet
        );
    }

    #[test]
    fn query_syntax_characters_are_harmless() {
        let (_dir, kb) = sample();
        for q in ["", "\"", "a:b", "(((", "-", "*", "title:", "🙂"] {
            kb.search(q, "t", &[], 5).expect("no error");
        }
    }
}
