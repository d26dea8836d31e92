//! The schema migrations, embedded in the binary and handed to sqlx's migrator as they are on
//! disk (`migrations/<backend>/<version>_<description>.sql`), parsed the way sqlx's own
//! `migrate!` macro parses them, so databases migrated by earlier builds see the same
//! versions, descriptions and checksums. (Doing it here, not with the macro, spares every build
//! sqlx's compile-time macro crates and a second build of the database drivers for them.)

use std::borrow::Cow;

use futures::future::BoxFuture;
use include_dir::{include_dir, Dir};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::db::Backend;
use crate::StoreError;

static SQLITE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/migrations/sqlite");
static POSTGRES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/migrations/postgres");

/// The migrations of one backend, in version order.
#[derive(Debug)]
struct Embedded(&'static Dir<'static>);

/// One migration from its file name and text, as sqlx reads a migrations folder.
fn migration(file_name: &str, sql: &'static str) -> Option<Migration> {
    let (version, rest) = file_name.split_once('_')?;
    if !rest.ends_with(".sql") {
        return None;
    }
    let version: i64 = version.parse().ok()?;
    let migration_type = MigrationType::from_filename(rest);
    let description = rest
        .trim_end_matches(migration_type.suffix())
        .replace('_', " ");
    Some(Migration::new(
        version,
        Cow::Owned(description),
        migration_type,
        Cow::Borrowed(sql),
        sql.starts_with("-- no-transaction"),
    ))
}

fn migrations(dir: &'static Dir<'static>) -> Vec<Migration> {
    let mut found: Vec<Migration> = dir
        .files()
        .filter_map(|file| {
            let name = file.path().file_name()?.to_str()?;
            migration(name, file.contents_utf8()?)
        })
        .collect();
    found.sort_by_key(|m| m.version);
    found
}

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(migrations(self.0)) })
    }
}

/// The migrator of a backend.
pub(crate) async fn migrator(backend: Backend) -> Result<Migrator, StoreError> {
    let dir = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    Ok(Migrator::new(Embedded(dir)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_a_migration_numbered_without_gaps() {
        for dir in [&SQLITE, &POSTGRES] {
            let found = migrations(dir);
            assert_eq!(found.len(), dir.files().count());
            let versions: Vec<i64> = found.iter().map(|m| m.version).collect();
            assert_eq!(versions, (1..=found.len() as i64).collect::<Vec<_>>());
        }
    }

    /// What sqlx reads from the folders (as its `migrate!` macro did for earlier builds) is
    /// what is embedded: databases migrated before find the same versions and checksums.
    #[tokio::test]
    async fn the_embedded_migrations_are_those_sqlx_reads_from_the_folders() {
        for (backend, folder) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(folder);
            let from_disk = Migrator::new(path).await.expect("the folder");
            let embedded = migrator(backend).await.expect("embedded");
            let describe = |m: &Migrator| {
                m.iter()
                    .map(|m| {
                        (
                            m.version,
                            m.description.to_string(),
                            m.checksum.to_vec(),
                            m.no_tx,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(describe(&embedded), describe(&from_disk), "{folder}");
        }
    }

    #[test]
    fn names_and_checksums_are_those_sqlx_gives() {
        let first = migration("0001_initial_schema.sql", "CREATE TABLE t (x INTEGER);")
            .expect("a migration");
        assert_eq!(first.version, 1);
        assert_eq!(first.description, "initial schema");
        assert_eq!(first.migration_type, MigrationType::Simple);
        // SHA-384 of the text, as sqlx stores it in _sqlx_migrations.
        assert_eq!(first.checksum.len(), 48);
        assert!(migration("README.md", "").is_none());
    }
}
