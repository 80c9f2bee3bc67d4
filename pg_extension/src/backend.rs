//! The few facts read straight from the backend's C globals.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::path::PathBuf;

use pgrx::pg_sys;

/// `$PGDATA` of this server.
pub fn data_dir() -> PathBuf {
    // SAFETY: DataDir is set by the postmaster to a NUL-terminated string
    // before any backend runs SQL, and is never changed or freed afterwards.
    let dir = unsafe { CStr::from_ptr(pg_sys::DataDir) };
    PathBuf::from(dir.to_string_lossy().into_owned())
}

/// The role that called us: the session's role (or SET ROLE), unaffected by
/// the SECURITY DEFINER switch of engram's own functions.
pub fn outer_user() -> pg_sys::Oid {
    // SAFETY: a plain getter of backend state, valid in any transaction.
    unsafe { pg_sys::GetOuterUserId() }
}

/// Nesting level of the current (sub)transaction: 1 at top level.
pub fn nest_level() -> i32 {
    // SAFETY: a plain getter of backend state, valid inside a transaction
    // and in transaction callbacks.
    unsafe { pg_sys::GetCurrentTransactionNestLevel() }
}

/// Whether a query cancel or termination is pending for this backend.
pub fn interrupt_pending() -> bool {
    // SAFETY: InterruptPending is a sig_atomic_t set by signal handlers; a
    // volatile read of it is what CHECK_FOR_INTERRUPTS does.
    unsafe { std::ptr::read_volatile(&raw const pg_sys::InterruptPending) != 0 }
}

/// The OID of the database this backend is connected to.
pub fn database_oid() -> u32 {
    // SAFETY: MyDatabaseId is set once at backend start-up, before any SQL
    // runs, and never changes for the life of the backend.
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

/// Whether the transaction reads from one snapshot taken at its start
/// (REPEATABLE READ or SERIALIZABLE) rather than a fresh one per statement.
pub fn uses_transaction_snapshot() -> bool {
    // SAFETY: XactIsoLevel is a plain int set at transaction start; this is
    // the IsolationUsesXactSnapshot() macro.
    unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 }
}
