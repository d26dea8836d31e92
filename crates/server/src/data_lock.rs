//! One server per embedded database. SQLite serves a single server process: its writer
//! thread is the only one that writes, and the money set aside for model calls in flight is
//! held in that process. A second server on the same data dir is refused at start-up, with a
//! message saying what to do instead; several servers share state through PostgreSQL.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use anyhow::{bail, Context};

/// Held for as long as the server runs; the operating system lets go of it when the process
/// ends, however it ends (a `kill -9` included).
pub struct DataDirLock {
    _file: File,
}

/// Takes the data dir's server lock, or says which other server holds it.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<DataDirLock> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    let path = dir.join("server.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(TryLockError::WouldBlock) => bail!(
            "another Integrator Agent server is running on the data dir {}: the embedded SQLite \
             database serves one server process; stop it, use another --data-dir, or run several \
             servers against PostgreSQL (INTEGRATOR_DATABASE_URL)",
            dir.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}
