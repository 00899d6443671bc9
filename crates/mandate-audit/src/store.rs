//! Which log a folder holds: a [`FileLog`] (the default for new stores) or
//! a [`SledLog`] (stores created before segment files existed, kept
//! readable and writable).

use std::path::Path;
use std::sync::Arc;

use crate::file_log::FileLog;
use crate::log::AuditLog;
use crate::sled_log::SledLog;
use crate::{Error, Result};

/// Whether `path` holds a sled log (its `db` file).
fn holds_sled(path: &Path) -> bool {
    path.join("db").is_file()
}

/// Opens the log in `path` to write: the sled log it holds, or else a file
/// log (created when the folder holds none).
///
/// # Errors
/// [`Error::Storage`] when it cannot be opened (another process writes it).
pub fn open(path: &Path) -> Result<Arc<dyn AuditLog>> {
    if holds_sled(path) {
        return Ok(Arc::new(SledLog::open(path)?));
    }
    Ok(Arc::new(FileLog::open(path)?))
}

/// Opens an existing log to read; a folder holding none is an error. A file
/// log can be read while a server writes it; a sled log cannot.
///
/// # Errors
/// [`Error::Storage`] when `path` holds no audit log or cannot be opened.
pub fn open_existing(path: &Path) -> Result<Arc<dyn AuditLog>> {
    if FileLog::holds_log(path) {
        return Ok(Arc::new(FileLog::open_existing(path)?));
    }
    if holds_sled(path) {
        return Ok(Arc::new(SledLog::open_existing(path)?));
    }
    Err(Error::storage(
        "opening the audit store",
        format!("{} holds no audit log", path.display()),
    ))
}
