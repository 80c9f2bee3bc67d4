//! The umbrella error type. Every fallible engine call returns [`Result`].

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in the engine.
///
/// Variants say what to fix: a corruption names the file and byte offset, a
/// version mismatch names the versions this build reads.
///
/// ```
/// use engram::Error;
/// let e = Error::InvalidArgument("k must be positive".into());
/// assert!(e.to_string().contains("k must be positive"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a file of the store.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file's contents fail validation (checksum, bounds, structure).
    #[error("{path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The corrupt file.
        path: PathBuf,
        /// Byte offset of the first bad byte or structure.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The file does not start with the expected magic number.
    #[error("{path} is not an engram {expected} file (bad magic number)")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Which kind of file was expected.
        expected: &'static str,
    },
    /// The file was written by a format version this build cannot read.
    #[error(
        "{path} has {what} format version {found}; this build reads versions {oldest} to {current}: \
         open it with an engram release that supports version {found}, or rebuild the store"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Which kind of file (WAL, manifest, segment, patch).
        what: &'static str,
        /// Version found in the file.
        found: u32,
        /// Oldest version this build reads.
        oldest: u32,
        /// Newest version this build reads and writes.
        current: u32,
    },
    /// Another process or handle holds the store's writer lock.
    #[error("store {path} is locked by another writer (waited {waited:?}); retry later or open read-only")]
    WriterLocked {
        /// The store directory.
        path: PathBuf,
        /// How long this call waited for the lock.
        waited: Duration,
    },
    /// A write was attempted through a read-only handle.
    #[error("store is open read-only; open it with Mode::Writer to write")]
    ReadOnly,
    /// No store exists at the path.
    #[error("no engram store at {0}")]
    NotFound(PathBuf),
    /// A store already exists at the path.
    #[error("an engram store already exists at {0}")]
    AlreadyExists(PathBuf),
    /// The named table does not exist.
    #[error("no table named {0:?} in this store")]
    NoSuchTable(String),
    /// The table has no column of this name.
    #[error("no column named {0:?}")]
    NoSuchColumn(String),
    /// A column was asked for as a type it is not.
    #[error("column {column:?} is not a {expected} column")]
    ColumnType {
        /// The column.
        column: String,
        /// What the caller asked for.
        expected: String,
    },
    /// A live row already holds this value of the table's unique column.
    #[error("table {table:?} already has a row with this {column:?} (row {existing}); use upsert")]
    Duplicate {
        /// The table.
        table: String,
        /// The unique column.
        column: String,
        /// The live row that holds the value.
        existing: u64,
    },
    /// A table with this name already exists.
    #[error("table {0:?} already exists")]
    TableExists(String),
    /// A vector's dimension differs from its table's.
    #[error("vector has dimension {found}, but table {table:?} stores dimension {expected}")]
    DimensionMismatch {
        /// The table.
        table: String,
        /// The table's dimension.
        expected: u32,
        /// The vector's dimension.
        found: u32,
    },
    /// A vector holds NaN or an infinity.
    #[error("{what} component {index} is {value}: vectors must be finite")]
    NonFinite {
        /// Which vector or field.
        what: &'static str,
        /// Index of the bad component.
        index: usize,
        /// The bad value.
        value: f32,
    },
    /// A model directory cannot be used: a file is missing, unreadable or
    /// not what a Model2Vec model holds.
    #[error("model {path}: {reason}")]
    Model {
        /// The model's directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument is out of its domain.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An earlier write failed after it may have reached the disk (a failed
    /// WAL write or fsync, or a manifest publish that failed part-way): its
    /// outcome is unknown, so this handle refuses further writes.
    #[error("an earlier write failed ({0}); its outcome is unknown: reopen the store to recover")]
    WriterFailed(String),
    /// A state the engine never produces: a bug, or files changed behind its
    /// back. The message names no file path (it may reach unprivileged
    /// clients); the server log gets the details.
    #[error("internal error: {0}")]
    Internal(String),
    /// The operation was cancelled by its caller.
    #[error("operation cancelled")]
    Cancelled,
    /// A row or a write is larger than one log record may be.
    #[error("{what} of about {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

pub(crate) fn corrupt(path: &std::path::Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}
