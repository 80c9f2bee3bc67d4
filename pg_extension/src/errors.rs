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
        Error::NoSuchTable(_) | Error::NotFound(_) => Code::ERRCODE_UNDEFINED_OBJECT,
        Error::TableExists(_) | Error::AlreadyExists(_) => Code::ERRCODE_DUPLICATE_OBJECT,
        Error::WriterLocked { .. } => Code::ERRCODE_LOCK_NOT_AVAILABLE,
        Error::Cancelled => Code::ERRCODE_QUERY_CANCELED,
        Error::TooLarge { .. } => Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        Error::Corrupt { .. } | Error::BadMagic { .. } | Error::UnsupportedVersion { .. } => {
            Code::ERRCODE_DATA_CORRUPTED
        }
        Error::Io { .. } | Error::WriterFailed(_) => Code::ERRCODE_IO_ERROR,
        _ => Code::ERRCODE_INTERNAL_ERROR,
    }
}

/// Raise `e` as an ERROR (does not return).
pub fn raise(e: Error) -> ! {
    ereport!(PgLogLevel::ERROR, sqlstate(&e), format!("engram: {e}"));
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
