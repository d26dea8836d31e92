//! Knowledge search as a service: keeps this process's search index in step with the shipped
//! corpus (docs, templates) and with the database (imported articles, tickets), and runs
//! searches off the async threads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kb::{DocKind, KbDocument, KbError, KnowledgeBase, SearchHit, SyncMarks, GLOBAL_TENANT};
use store::{Article, Store, StoreError, Ticket};
use workspace::TemplateCatalog;

use crate::search_pool::SearchPool;

/// How far back each sync looks again, so that rows committed late or stamped by a replica
/// whose clock lags are still picked up.
const SYNC_WINDOW_MS: i64 = 10_000;
const SYNC_BATCH: i64 = 1_000;

/// Why the knowledge base could not answer or update.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error(transparent)]
    Index(#[from] KbError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the search task failed: {0}")]
    Task(String),
}

/// A documentation page shipped with the product.
#[derive(Debug, Clone)]
pub struct ShippedDoc {
    /// The path shown as its link, e.g. `docs/connection-http.md`.
    pub path: String,
    pub markdown: String,
}

/// The knowledge base of one server process.
pub struct KnowledgeService {
    kb: Arc<KnowledgeBase>,
    store: Store,
    /// Rows indexed inside the sync window, with the version indexed, so a re-read of the
    /// window does not index them again.
    recent: Mutex<HashMap<String, i64>>,
    sync_lock: tokio::sync::Mutex<()>,
    /// When the previous sync began (this process's clock).
    last_sync: Mutex<Option<i64>>,
    searches: SearchPool,
}

impl KnowledgeService {
    /// Opens the index under `index_dir`, re-indexes the shipped corpus when it changed, and
    /// catches up with the database.
    pub async fn open(
        index_dir: &Path,
        store: Store,
        catalog: &TemplateCatalog,
        docs: &[ShippedDoc],
    ) -> Result<KnowledgeService, KnowledgeError> {
        let dir = index_dir.to_path_buf();
        let kb = blocking(move || KnowledgeBase::open(&dir)).await??;
        let service = KnowledgeService {
            kb: Arc::new(kb),
            store,
            recent: Mutex::new(HashMap::new()),
            sync_lock: tokio::sync::Mutex::new(()),
            last_sync: Mutex::new(None),
            searches: SearchPool::per_core().map_err(|e| {
                KnowledgeError::Task(format!("cannot start the search threads: {e}"))
            })?,
        };
        service.refresh_shipped_corpus(catalog, docs).await?;
        service.sync().await?;
        Ok(service)
    }

    /// Number of indexed documents.
    pub fn len(&self) -> u64 {
        self.kb.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.kb.is_empty()
    }

    async fn refresh_shipped_corpus(
        &self,
        catalog: &TemplateCatalog,
        docs: &[ShippedDoc],
    ) -> Result<(), KnowledgeError> {
        let fingerprint = corpus_fingerprint(catalog, docs);
        let marks = self.kb.marks();
        if marks.corpus_fingerprint == fingerprint {
            return Ok(());
        }
        let mut documents: Vec<KbDocument> = docs.iter().map(doc_document).collect();
        documents.extend(catalog.all().iter().map(|t| KbDocument {
            id: format!("template:{}", t.id),
            kind: DocKind::Template,
            tenant: GLOBAL_TENANT.to_string(),
            title: t.name.clone(),
            body: t.search_text(),
            link: format!("template_id {}", t.id),
        }));
        tracing::info!(
            documents = documents.len(),
            "indexing the shipped docs and templates"
        );
        let marks = SyncMarks {
            corpus_fingerprint: fingerprint,
            ..marks
        };
        let kb = self.kb.clone();
        blocking(move || kb.apply(&documents, &[DocKind::Doc, DocKind::Template], marks)).await??;
        Ok(())
    }

    /// Indexes the articles and tickets changed in the database since the last sync.
    /// Returns how many documents were (re)indexed.
    pub async fn sync(&self) -> Result<usize, KnowledgeError> {
        let _one_at_a_time = self.sync_lock.lock().await;
        // Segments merged in the background since the last commit become searchable (it reads
        // the index's files: off the async threads).
        let kb = self.kb.clone();
        blocking(move || kb.refresh()).await??;
        let started = store::now_millis();
        let mut marks = self.kb.marks();
        let mut documents = Vec::new();
        let mut seen = Vec::new();
        // Re-read a window before the marks (late commits, clock skew) — but only the part of
        // it that could have changed since the previous sync began, so an idle server reads
        // nothing.
        let window_start = |mark: i64| {
            let start = mark.saturating_sub(SYNC_WINDOW_MS);
            match self.last_sync_started() {
                Some(previous) => start.max(previous.saturating_sub(SYNC_WINDOW_MS)),
                None => start,
            }
        };

        let mut position = (window_start(marks.articles_since), String::new());
        loop {
            let batch = self
                .store
                .articles_changed_after(position.0, &position.1, SYNC_BATCH)
                .await?;
            for article in &batch {
                marks.articles_since = marks.articles_since.max(article.updated_at);
                let id = format!("article:{}", article.id);
                if self.is_new_version(&id, article.updated_at) {
                    seen.push((id, article.updated_at));
                    documents.push(article_document(article));
                }
            }
            match batch.last() {
                Some(last) if batch.len() as i64 == SYNC_BATCH => {
                    position = (last.updated_at, last.id.clone())
                }
                _ => break,
            }
        }

        let mut position = (window_start(marks.tickets_since), String::new());
        loop {
            let batch = self
                .store
                .tickets_changed_after(position.0, &position.1, SYNC_BATCH)
                .await?;
            for ticket in &batch {
                marks.tickets_since = marks.tickets_since.max(ticket.updated_at);
                let id = format!("ticket:{}", ticket.id);
                if self.is_new_version(&id, ticket.updated_at) {
                    seen.push((id, ticket.updated_at));
                    documents.push(ticket_document(ticket));
                }
            }
            match batch.last() {
                Some(last) if batch.len() as i64 == SYNC_BATCH => {
                    position = (last.updated_at, last.id.clone())
                }
                _ => break,
            }
        }

        let count = documents.len();
        if count > 0 {
            let kb = self.kb.clone();
            blocking(move || kb.apply(&documents, &[], marks)).await??;
            self.remember(seen);
        }
        if let Ok(mut last) = self.last_sync.lock() {
            *last = Some(started);
        }
        Ok(count)
    }

    fn last_sync_started(&self) -> Option<i64> {
        self.last_sync.lock().ok().and_then(|last| *last)
    }

    /// Makes one ticket searchable at once (without waiting for the next sync).
    pub async fn index_ticket(&self, ticket: &Ticket) -> Result<(), KnowledgeError> {
        let _one_at_a_time = self.sync_lock.lock().await;
        let document = ticket_document(ticket);
        let id = document.id.clone();
        let marks = self.kb.marks();
        let kb = self.kb.clone();
        blocking(move || kb.apply(&[document], &[], marks)).await??;
        self.remember(vec![(id, ticket.updated_at)]);
        Ok(())
    }

    /// Ranked search over what the tenant may see.
    pub async fn search(
        &self,
        query: &str,
        tenant_id: &str,
        kinds: &[DocKind],
        limit: usize,
    ) -> Result<Vec<SearchHit>, KnowledgeError> {
        let kb = self.kb.clone();
        let query = query.to_string();
        let tenant_id = tenant_id.to_string();
        let kinds = kinds.to_vec();
        self.searches
            .run(move || kb.search(&query, &tenant_id, &kinds, limit))
            .await
            .ok_or_else(|| KnowledgeError::Task("the search stopped unexpectedly".into()))?
            .map_err(KnowledgeError::from)
    }

    fn is_new_version(&self, id: &str, updated_at: i64) -> bool {
        self.recent
            .lock()
            .map(|recent| recent.get(id) != Some(&updated_at))
            .unwrap_or(true)
    }

    fn remember(&self, seen: Vec<(String, i64)>) {
        let marks = self.kb.marks();
        let horizon = marks
            .articles_since
            .max(marks.tickets_since)
            .min(store::now_millis())
            .saturating_sub(SYNC_WINDOW_MS * 2);
        if let Ok(mut recent) = self.recent.lock() {
            recent.extend(seen);
            recent.retain(|_, version| *version >= horizon);
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, KnowledgeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| KnowledgeError::Task(e.to_string()))
}

fn corpus_fingerprint(catalog: &TemplateCatalog, docs: &[ShippedDoc]) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for doc in docs {
        for byte in doc.path.bytes().chain(doc.markdown.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3);
        }
    }
    format!(
        "{hash:x}-{}-text{}",
        catalog.fingerprint(),
        kb::TEXT_EXTRACTION_VERSION
    )
}

fn doc_document(doc: &ShippedDoc) -> KbDocument {
    let (title, text) = kb::markdown_to_title_and_text(&doc.markdown);
    let stem = doc
        .path
        .rsplit('/')
        .next()
        .unwrap_or(&doc.path)
        .trim_end_matches(".md");
    KbDocument {
        id: format!("doc:{stem}"),
        kind: DocKind::Doc,
        tenant: GLOBAL_TENANT.to_string(),
        title,
        body: text,
        link: doc.path.clone(),
    }
}

fn article_document(article: &Article) -> KbDocument {
    KbDocument {
        id: format!("article:{}", article.id),
        kind: DocKind::Article,
        tenant: GLOBAL_TENANT.to_string(),
        title: article.title.clone(),
        body: article.body.clone(),
        link: article.source.clone(),
    }
}

fn ticket_document(ticket: &Ticket) -> KbDocument {
    let zendesk = ticket
        .zendesk_id
        .map(|id| format!(", Zendesk #{id}"))
        .unwrap_or_default();
    KbDocument {
        id: format!("ticket:{}", ticket.id),
        kind: DocKind::Ticket,
        tenant: ticket.tenant_id.clone(),
        title: ticket.subject.clone(),
        body: format!(
            "{}\nStatus: {}. Priority: {}. Requested by {}.",
            ticket.description,
            ticket.status,
            ticket.priority.as_str(),
            ticket.requester_email
        ),
        link: format!("ticket {}{zendesk}", ticket.id),
    }
}
