//! `pg_engram`: the PostgreSQL face of the engram engine.
//!
//! This crate only adapts: it converts SQL arguments, calls the `engram`
//! crate, and maps engine errors to SQLSTATEs. Every object lives in schema
//! `engram`, which `CREATE EXTENSION pg_engram` creates.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

/// The extension's version, e.g. `SELECT engram.version();`.
#[pg_extern(immutable, parallel_safe)]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The on-disk format version the engine writes, e.g.
/// `SELECT engram.format_version();`.
#[pg_extern(immutable, parallel_safe)]
fn format_version() -> i32 {
    engram::storage::FormatVersion::CURRENT as i32
}

extension_sql!(
    r#"
COMMENT ON SCHEMA engram IS 'engram: memory that can speak';
COMMENT ON FUNCTION engram.version() IS 'Version of the pg_engram extension.';
COMMENT ON FUNCTION engram.format_version() IS 'On-disk format version written by the engram engine.';
"#,
    name = "comments",
    requires = [version, format_version],
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
        assert_eq!(Spi::get_one::<i32>("SELECT engram.format_version()"), Ok(Some(1)));
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
