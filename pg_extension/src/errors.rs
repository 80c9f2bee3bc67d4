//! Engine errors as PostgreSQL errors with SQLSTATEs.

use engram::Error;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

/// The SQLSTATE for an engine error.
pub fn sqlstate(e: &Error) -> Code {
    match e {
        Error::InvalidArgument(_) | Error::DimensionMismatch { .. } | Error::NonFinite { .. } => {
            Code::ERRCODE_INVALID_PARAMETER_VALUE
        }
        Error::ColumnType { .. } => Code::ERRCODE_INVALID_PARAMETER_VALUE,
        Error::NoSuchTable(_) | Error::NotFound(_) | Error::NoSuchColumn(_) => Code::ERRCODE_UNDEFINED_OBJECT,
        Error::TableExists(_) | Error::AlreadyExists(_) => Code::ERRCODE_DUPLICATE_OBJECT,
        Error::Duplicate { .. } => Code::ERRCODE_UNIQUE_VIOLATION,
        Error::WriterLocked { .. } => Code::ERRCODE_LOCK_NOT_AVAILABLE,
        Error::Cancelled => Code::ERRCODE_QUERY_CANCELED,
        Error::TooLarge { .. } => Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        Error::Corrupt { .. } | Error::BadMagic { .. } | Error::UnsupportedVersion { .. } => {
            Code::ERRCODE_DATA_CORRUPTED
        }
        Error::Io { .. } | Error::WriterFailed(_) => Code::ERRCODE_IO_ERROR,
        // A model the settings name but the server cannot use.
        Error::Model { .. } => Code::ERRCODE_CONFIG_FILE_ERROR,
        // `Internal`, `ReadOnly` and anything newer: states engram never
        // produces on its own.
        _ => Code::ERRCODE_INTERNAL_ERROR,
    }
}

/// `msg` with the server's data directory replaced by `$PGDATA`: engine
/// messages name files, and clients need not learn where the server keeps
/// them.
pub fn scrub(msg: &str) -> String {
    let dir = crate::backend::data_dir();
    let dir = dir.to_string_lossy();
    if dir.is_empty() {
        return msg.to_string();
    }
    msg.replace(dir.as_ref(), "$PGDATA")
}

/// Raise `e` as an ERROR (does not return). The server log gets the message
/// with its paths; the client, the message with `$PGDATA` for them.
pub fn raise(e: Error) -> ! {
    let full = format!("engram: {e}");
    let shown = scrub(&full);
    if shown != full {
        log!("{full}");
    }
    ereport!(PgLogLevel::ERROR, sqlstate(&e), shown);
    unreachable!("ereport(ERROR) returned")
}

/// Raise a user error with a SQLSTATE.
pub fn user_error(code: Code, msg: impl Into<String>) -> ! {
    ereport!(PgLogLevel::ERROR, code, msg.into());
    unreachable!("ereport(ERROR) returned")
}

/// Unwrap an engine result or raise it.
pub trait OrRaise<T> {
    /// The value, or an ERROR.
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for engram::Result<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| raise(e))
    }
}
