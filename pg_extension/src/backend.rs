//! The few facts read straight from the backend's C globals.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::CStr;
use std::path::PathBuf;

use pgrx::pg_sys;
use pgrx::{ereport, PgLogLevel};

/// `$PGDATA` of this server.
pub fn data_dir() -> PathBuf {
    // SAFETY: DataDir is set by the postmaster to a NUL-terminated string
    // before any backend runs SQL, and is never changed or freed afterwards.
    let dir = unsafe { CStr::from_ptr(pg_sys::DataDir) };
    PathBuf::from(dir.to_string_lossy().into_owned())
}

/// Where the installed extension keeps its files:
/// `$(pg_config --sharedir)/extension/pg_engram` of this server.
pub fn extension_share_dir() -> PathBuf {
    let mut buf = [0 as std::ffi::c_char; pg_sys::MAXPGPATH as usize];
    // SAFETY: my_exec_path is set by the postmaster before any backend runs
    // SQL and never changed afterwards; get_share_path writes at most
    // MAXPGPATH bytes, NUL-terminated, into `buf`.
    let share = unsafe {
        pg_sys::get_share_path((&raw const pg_sys::my_exec_path).cast(), buf.as_mut_ptr());
        CStr::from_ptr(buf.as_ptr())
    };
    PathBuf::from(share.to_string_lossy().into_owned()).join("extension/pg_engram")
}

thread_local! {
    /// The role whose call is being served, while `as_owner` runs.
    static CALLER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// The role that called the engram function being served: the current user
/// id at the call, which is what PostgreSQL's own privilege checks use. It
/// is the table owner inside an index expression or autovacuum, and the
/// function's owner inside another role's SECURITY DEFINER function — never
/// a more privileged session role behind them.
pub fn caller() -> pg_sys::Oid {
    CALLER.with(Cell::get).unwrap_or_else(current_user)
}

fn current_user() -> pg_sys::Oid {
    // SAFETY: a plain getter of backend state, valid in any transaction.
    unsafe { pg_sys::GetUserId() }
}

thread_local! {
    /// The extension's oid and its owner, as last read.
    static OWNER: Cell<Option<(pg_sys::Oid, pg_sys::Oid)>> = const { Cell::new(None) };
}

/// The role that owns the installed extension, and so its tables. Read once
/// per installation of the extension (its oid changes if it is recreated).
fn extension_owner() -> pg_sys::Oid {
    // SAFETY: a catalog lookup by name, valid in a transaction; missing_ok
    // makes it return InvalidOid instead of raising.
    let ext = unsafe { pg_sys::get_extension_oid(c"pg_engram".as_ptr(), true) };
    if let Some((oid, owner)) = OWNER.with(Cell::get) {
        if oid == ext {
            return owner;
        }
    }
    let owner = pgrx::Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE oid = $1",
        &[ext.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        // Raised here rather than through `errors`, which uses this module.
        ereport!(
            PgLogLevel::ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "extension pg_engram is not installed in this database"
        );
        unreachable!("ereport(ERROR) returned")
    });
    OWNER.with(|o| o.set(Some((ext, owner))));
    owner
}

/// Run `f` — one catalog or truth-table statement, nothing user-defined — as
/// the extension's owner, which is the only role that may touch engram's
/// tables directly; `caller()` keeps naming the role that called engram. The functions are SECURITY
/// INVOKER and switch here rather than being SECURITY DEFINER, because a
/// definer function cannot see which role called it, only the session's.
/// The switch is undone on return and on error (and a transaction abort
/// resets it too).
pub fn as_owner<T>(f: impl FnOnce() -> T) -> T {
    let (mut user, mut context) = (pg_sys::InvalidOid, 0i32);
    // SAFETY: writes the current user id and security context to the two
    // locals; valid in any transaction.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    let owner = extension_owner();
    struct Restore {
        user: pg_sys::Oid,
        context: i32,
        outer: Option<pg_sys::Oid>,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores the values read above, as fmgr does after a
            // SECURITY DEFINER call.
            unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
            CALLER.with(|c| c.set(self.outer));
        }
    }
    // Nested, the caller stays the one the outermost switch recorded (the
    // current user is the owner by then).
    let _restore = Restore {
        user,
        context,
        outer: CALLER.with(|c| {
            let outer = c.get();
            c.set(Some(outer.unwrap_or(user)));
            outer
        }),
    };
    // SAFETY: the same call fmgr makes for SECURITY DEFINER functions: a
    // local user id change, flagged so that SET ROLE and friends are refused
    // while it is in effect.
    unsafe { pg_sys::SetUserIdAndSecContext(owner, context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32) };
    f()
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

/// Let the postmaster signal this background worker, keeping PostgreSQL's
/// default handlers (SIGTERM: exit at once).
pub fn unblock_worker_signals() {
    // SAFETY: called at the start of a background worker's main function,
    // where PostgreSQL expects it, before anything else.
    unsafe { pg_sys::BackgroundWorkerUnblockSignals() }
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

/// Run `f` with the transaction's snapshot active: SQL run from a
/// transaction callback (pre-commit) has none of its own.
pub fn with_snapshot<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: inside a live transaction (the pre-commit callback), taking
    // the transaction snapshot and pushing it is what a portal does before
    // it runs a query; it is popped on return and on error (an error aborts
    // the transaction, whose cleanup pops every active snapshot too).
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            // SAFETY: pops the snapshot pushed above.
            unsafe { pg_sys::PopActiveSnapshot() };
        }
    }
    let _pop = Pop;
    f()
}
