//! The user documentation shipped inside the binary: the knowledge base's own corpus.

use agent::ShippedDoc;
use include_dir::{include_dir, Dir};

static DOCS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../docs");

/// Every Markdown page of `docs/`, with its path as a link.
pub fn shipped_docs() -> Vec<ShippedDoc> {
    let mut docs = Vec::new();
    collect(&DOCS, &mut docs);
    docs.sort_by(|a, b| a.path.cmp(&b.path));
    docs
}

fn collect(dir: &Dir<'_>, out: &mut Vec<ShippedDoc>) {
    for file in dir.files() {
        let path = file.path().display().to_string();
        if !path.ends_with(".md") || path.ends_with("index.md") {
            continue;
        }
        if let Some(markdown) = file.contents_utf8() {
            out.push(ShippedDoc {
                path: format!("docs/{path}"),
                markdown: markdown.to_string(),
            });
        }
    }
    for sub in dir.dirs() {
        collect(sub, out);
    }
}
