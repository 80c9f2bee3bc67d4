//! `pg_engram`: the PostgreSQL face of the engram engine.
//!
//! This crate only adapts: it converts SQL arguments, calls the `engram`
//! crate, and maps engine errors to SQLSTATEs. Every object lives in schema
//! `engram`, which `CREATE EXTENSION pg_engram` creates.

use pgrx::prelude::*;

mod api;
mod backend;
mod catalog;
mod convert;
mod engine_copy;
mod errors;
mod gucs;
mod search;
mod txn;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("schema.sql", name = "schema", bootstrap);

/// Called by PostgreSQL when the library is loaded.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
}

/// The extension's version, e.g. `SELECT engram.version();`.
#[pg_extern(immutable, parallel_safe)]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The format version of the segment files the engine writes, e.g.
/// `SELECT engram.format_version();`.
#[pg_extern(immutable, parallel_safe)]
fn format_version() -> i32 {
    engram::storage::SegmentVersion::CURRENT as i32
}

extension_sql!(
    r#"
COMMENT ON SCHEMA engram IS 'engram: memory that can speak';
COMMENT ON FUNCTION engram.version() IS 'Version of the pg_engram extension.';
COMMENT ON FUNCTION engram.format_version() IS 'Format version of the segment files the engram engine writes (WAL and manifest carry their own; see docs/design.md §9).';
COMMENT ON FUNCTION engram.create_store(text, integer, text, jsonb) IS 'create_store(name, dim, kind => ''rows'', settings => ''{}''): create a store of dim-dimensional keys owned by the current user. Names: 1 to 63 letters, digits, _ or -. settings: m (2 to 128, default 16) and ef_construction (1 to 4096, default 200) of the HNSW graphs that engram.optimize builds.';
COMMENT ON FUNCTION engram.drop_store(text) IS 'drop_store(name): drop a store with its rows and grants (owner only); its engine copy is removed at commit.';
COMMENT ON FUNCTION engram.insert(text, real[], text, jsonb) IS 'insert(store, key, body => '''', meta => ''{}''): add a row to engram.rows and, at commit, to the engine copy; returns the row id. meta keys: namespace, session, scope, kind, tier, timestamp, order, access_count, token_count, authority, confidence, decay_rate, anchor_density.';
COMMENT ON FUNCTION engram.delete(text, bigint) IS 'delete(store, id): delete a row from engram.rows and, at commit, from the engine copy; returns whether it existed.';
COMMENT ON FUNCTION engram.get(text, bigint) IS 'get(store, id): the row as the engine copy holds it (no row if absent).';
COMMENT ON FUNCTION engram.scan(text) IS 'scan(store): every row of the engine copy in id order, for joins and checks against engram.rows.';
COMMENT ON FUNCTION engram.stats(text) IS 'stats(store): watermark of the tables and of the engine copy, row, segment and byte counts.';
COMMENT ON FUNCTION engram.rebuild(text) IS 'rebuild(store): rebuild the engine copy from engram.rows; returns the number of rows.';
COMMENT ON FUNCTION engram.grant(text, text, text) IS 'grant(store, role, privilege): let role read or write the store (owner only); write implies read.';
COMMENT ON FUNCTION engram.search(text, real[], integer, jsonb, text, integer) IS 'search(store, query, k => 10, filter => ''{}'', metric => ''cosine'', ef => engram.ef_search): the k rows nearest to query (id, distance, body, meta), nearest first. filter keys: any meta key (equality), time_from, time_to (microseconds, half-open), ids. metric: cosine, dot or l2. Joins with tables through JOIN LATERAL.';
COMMENT ON FUNCTION engram.search_ids(text, real[], integer, jsonb, text, integer) IS 'search_ids(store, query, k => 10, filter => ''{}'', metric => ''cosine'', ef => engram.ef_search): like search, returning only (id, distance); the fast path when joining engram.rows or your own tables.';
COMMENT ON FUNCTION engram.optimize(text) IS 'optimize(store): flush the engine copy and merge it into one segment with an HNSW graph (settings m, ef_construction), dropping deleted rows; returns what was done. Needs write.';
COMMENT ON FUNCTION engram.revoke(text, text, text) IS 'revoke(store, role, privilege): take back a right given by engram.grant (owner only).';
"#,
    name = "comments",
    requires = [
        version,
        format_version,
        api::create_store,
        api::drop_store,
        api::insert,
        api::delete,
        api::get,
        api::scan,
        api::stats,
        api::rebuild,
        api::optimize,
        api::grant,
        api::revoke
    ],
    finalize
);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn extension_lives_in_schema_engram() {
        let schema = Spi::get_one::<String>(
            "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.extname = 'pg_engram'",
        );
        assert_eq!(schema, Ok(Some("engram".to_string())));
    }

    #[pg_test]
    fn version_functions_answer() {
        assert_eq!(
            Spi::get_one::<String>("SELECT engram.version()"),
            Ok(Some(env!("CARGO_PKG_VERSION").to_string()))
        );
        assert_eq!(
            Spi::get_one::<i32>("SELECT engram.format_version()"),
            Ok(Some(engram::storage::SegmentVersion::CURRENT as i32))
        );
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    /// One-off setup before the tests.
    pub fn setup(_options: Vec<&str>) {}

    /// postgresql.conf settings for the test cluster.
    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
