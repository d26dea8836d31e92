//! Knowledge-base articles imported by operators (`kb import`): the database is their source
//! of truth, every replica's search index follows it.

use sqlx::Row;

use crate::write::args;
use crate::{new_id, now_millis, Store, StoreError};

/// The markup an article was imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArticleFormat {
    Markdown,
    Html,
    Text,
}

impl ArticleFormat {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ArticleFormat::Markdown => "markdown",
            ArticleFormat::Html => "html",
            ArticleFormat::Text => "text",
        }
    }

    fn parse(s: &str) -> ArticleFormat {
        match s {
            "markdown" => ArticleFormat::Markdown,
            "html" => ArticleFormat::Html,
            _ => ArticleFormat::Text,
        }
    }
}

/// An imported article, already reduced to plain searchable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    pub id: String,
    /// Where it came from (the imported path); re-importing the same source updates it.
    pub source: String,
    pub title: String,
    pub body: String,
    pub format: ArticleFormat,
    pub updated_at: i64,
}

/// An article to import.
#[derive(Debug, Clone)]
pub struct NewArticle {
    pub source: String,
    pub title: String,
    pub body: String,
    pub format: ArticleFormat,
}

fn article_from_row(row: &sqlx::any::AnyRow) -> Result<Article, StoreError> {
    let format: String = row.try_get("format")?;
    Ok(Article {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        format: ArticleFormat::parse(&format),
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Inserts the article, or updates the one imported earlier from the same source.
    pub async fn upsert_article(&self, new: &NewArticle) -> Result<Article, StoreError> {
        if new.title.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "article '{}' has no title",
                new.source
            )));
        }
        let now = now_millis();
        let new_article_id = new_id();
        let (source, title, body, format) = (
            new.source.clone(),
            new.title.clone(),
            new.body.clone(),
            new.format.as_str(),
        );
        let id = self
            .write(move |tx| {
                Box::pin(async move {
                    let existing = tx
                        .fetch_optional(
                            "SELECT id FROM kb_articles WHERE source = $1",
                            args![&source],
                        )
                        .await?;
                    match existing {
                        Some(row) => {
                            let id = row.text(0)?;
                            tx.execute(
                                "UPDATE kb_articles SET title = $1, body = $2, format = $3, updated_at = $4 WHERE id = $5",
                                args![title, body, format, now, &id],
                            )
                            .await?;
                            Ok(id)
                        }
                        None => {
                            tx.execute(
                                "INSERT INTO kb_articles (id, source, title, body, format, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                                args![&new_article_id, source, title, body, format, now],
                            )
                            .await?;
                            Ok(new_article_id)
                        }
                    }
                })
            })
            .await?;
        Ok(Article {
            id,
            source: new.source.clone(),
            title: new.title.clone(),
            body: new.body.clone(),
            format: new.format,
            updated_at: now,
        })
    }

    /// Articles changed after the position `(updated_at, id)`, in that order, at most `limit`:
    /// page through changes by passing the last row's position.
    pub async fn articles_changed_after(
        &self,
        updated_at: i64,
        id: &str,
        limit: i64,
    ) -> Result<Vec<Article>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, source, title, body, format, updated_at FROM kb_articles \
             WHERE updated_at > $1 OR (updated_at = $1 AND id > $2) ORDER BY updated_at, id LIMIT $3",
        )
        .bind(updated_at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(article_from_row).collect()
    }
}
