//! The knowledge base: a tantivy full-text index over shipped docs, imported articles,
//! support tickets and templates, answering ranked, highlighted, tenant-filtered searches.
//!
//! Architecture invariant: the index is a rebuildable cache. The database and the shipped
//! files are the truth; the index records in its commit payload how far it has followed them.

mod index;
mod stemming;
mod text;

pub use index::{DocKind, KbDocument, KbError, KnowledgeBase, SearchHit, SyncMarks, GLOBAL_TENANT};
pub use text::{html_to_title_and_text, markdown_to_title_and_text, TEXT_EXTRACTION_VERSION};
