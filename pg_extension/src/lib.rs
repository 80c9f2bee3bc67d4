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
mod generation;
mod gucs;
mod handles;
mod memory;
mod merges;
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
-- Whether a role may read or write a store. It answers only about the
-- calling role, or a role the caller is a member of (engram.privilege_check,
-- which sees who calls it, raises 42501 otherwise): who may do what with
-- someone else's store is its owner's business.
CREATE FUNCTION engram.has_privilege(store text, privilege text, role regrole DEFAULT current_user::regrole)
RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT engram.privilege_check($1, $2, $3::oid) $$;
COMMENT ON FUNCTION engram.has_privilege(text, text, regrole) IS 'Whether role (default: the current user; otherwise a role the caller is a member of) may read or write the store: superusers, members of the owner role, and grantees.';
COMMENT ON FUNCTION engram.privilege_check(text, text, oid) IS 'The check behind engram.has_privilege; use that.';

-- Truth tables are readable only where the store is; they are written only
-- through engram's functions, which check rights and keep the engine in step.
ALTER TABLE engram.stores ENABLE ROW LEVEL SECURITY;
ALTER TABLE engram.grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE engram.rows ENABLE ROW LEVEL SECURITY;
ALTER TABLE engram.documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY stores_visible ON engram.stores FOR SELECT USING (engram.has_privilege(name, 'read'));
CREATE POLICY grants_visible ON engram.grants FOR SELECT USING (engram.has_privilege(store, 'read'));
CREATE POLICY rows_visible ON engram.rows FOR SELECT USING (engram.has_privilege(store, 'read'));
CREATE POLICY documents_visible ON engram.documents FOR SELECT USING (engram.has_privilege(store, 'read'));

CREATE FUNCTION engram.list_stores()
RETURNS TABLE (name text, owner regrole, kind text, dim integer, settings jsonb, created timestamptz, watermark bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.name, s.owner, s.kind, s.dim, s.settings, s.created, s.watermark
    FROM engram.stores s
    WHERE engram.has_privilege(s.name, 'read')
    ORDER BY s.name
$$;
COMMENT ON FUNCTION engram.list_stores() IS 'The stores the current user may read.';
"#,
    name = "privileges",
    requires = [api::privilege_check]
);

extension_sql!(
    r#"
COMMENT ON SCHEMA engram IS 'engram: memory that can speak';
COMMENT ON FUNCTION engram.version() IS 'Version of the pg_engram extension.';
COMMENT ON FUNCTION engram.format_version() IS 'Format version of the segment files the engram engine writes (WAL and manifest carry their own; see docs/design.md §9).';
COMMENT ON FUNCTION engram.create_store(text, integer, text, jsonb) IS 'create_store(name, dim, kind => ''rows'', settings => ''{}''): create a store of dim-dimensional keys owned by the current user. Names: 1 to 63 letters, digits, _ or -. settings: m (2 to 128, default 16) and ef_construction (1 to 4096, default 200) of the HNSW graphs built for its rows (by a background worker after the commits that flush them, and by engram.optimize).';
COMMENT ON FUNCTION engram.drop_store(text) IS 'drop_store(name): drop a store with its rows and grants (owner only); its engine copy is removed at commit.';
COMMENT ON FUNCTION engram.insert(text, real[], text, jsonb) IS 'insert(store, key, body => '''', meta => ''{}''): add a row to engram.rows and, at commit, to the engine copy; returns the row id (from sequence engram.row_id: increasing, never given out twice). meta keys: namespace, session, scope, kind, tier, timestamp, order, access_count, token_count, authority, confidence, decay_rate, anchor_density.';
COMMENT ON FUNCTION engram.insert_many(text, real[], text[], jsonb[]) IS 'insert_many(store, keys, bodies => NULL, metas => NULL): insert one row per key (keys one after another, e.g. array_agg(key) of a query); bodies and metas, if given, hold one element per row. Returns the rows'' ids in order; the engine copy receives them at commit, as one change however many.';
COMMENT ON FUNCTION engram.delete(text, bigint) IS 'delete(store, id): delete a row from engram.rows and, at commit, from the engine copy; returns whether it existed.';
COMMENT ON FUNCTION engram.get(text, bigint) IS 'get(store, id): the row as the engine copy holds it (no row if absent).';
COMMENT ON FUNCTION engram.scan(text) IS 'scan(store): every row of the engine copy in id order, for joins and checks against engram.rows.';
COMMENT ON FUNCTION engram.stats(text) IS 'stats(store): watermark of the tables and of the engine copy, row, segment and byte counts.';
COMMENT ON FUNCTION engram.rebuild(text) IS 'rebuild(store): rebuild the engine copy from engram.rows; returns the number of rows.';
COMMENT ON FUNCTION engram.grant(text, text, text) IS 'grant(store, role, privilege): let role read or write the store (owner only); write implies read.';
COMMENT ON FUNCTION engram.search(text, real[], integer, jsonb, text, integer) IS 'search(store, query, k => 10, filter => ''{}'', metric => ''cosine'', ef => engram.ef_search): the k rows nearest to query (id, distance, body, meta), nearest first. filter keys: any meta key (equality), time_from, time_to (microseconds, half-open), ids. metric: cosine, dot or l2. Joins with tables through JOIN LATERAL.';
COMMENT ON FUNCTION engram.search_ids(text, real[], integer, jsonb, text, integer) IS 'search_ids(store, query, k => 10, filter => ''{}'', metric => ''cosine'', ef => engram.ef_search): like search, returning only (id, distance); the fast path when joining engram.rows or your own tables.';
COMMENT ON FUNCTION engram.optimize(text) IS 'optimize(store): flush the engine copy and merge it into one segment with an HNSW graph (settings m, ef_construction), dropping deleted rows; returns what was done. Needs write; other commits go on meanwhile.';
COMMENT ON FUNCTION engram.create_generator(text, jsonb) IS 'create_generator(name, settings => ''{}''): create a generator store (a language model made of search) owned by the current user. settings: levels (context lengths, default [1, 2, 3, 4, 6, 8]), embedder (''hashed'', the built-in hashed n-gram embedder, the default; ''model2vec'', the Model2Vec model installed with the extension, distilled from all-MiniLM-L6-v2, 128 dimensions; or ''model2vec:/absolute/model/directory'' holding tokenizer.json and model.safetensors), dim (of the hashed embedder, default 64), key_decay (0.8), seed (0), heldout_fraction (0.1) and heldout_tokens (20000) of the slice engram.fit holds out; k, tau, ef and alpha of the balanced retrieval strategy and beta of the level weights (defaults 8, 0.2, 64, 0.05, 1). engram.fit adds params.';
COMMENT ON FUNCTION engram.learn(text, text, jsonb) IS 'learn(store, body, meta => ''{}''): add a document to engram.documents; the engine copy learns its patterns at commit (ROLLBACK leaves no trace). Returns its id. Works over a table in one transaction: SELECT engram.learn(''lit'', body) FROM books;';
COMMENT ON FUNCTION engram.fit(text) IS 'fit(store): fit the mixture parameters (discounts, beta, level weights, each strategy''s alpha and tau, the strategy of each energy bin) on a held-out slice of the learned documents (chosen by a seeded hash of their ids), recording them in the store''s settings (params); returns the slice''s bits per character before and after. Progress NOTICEs; cancel honoured.';
COMMENT ON FUNCTION engram.generate(text, text, integer, double precision, integer, double precision, double precision, bigint, text[]) IS 'generate(store, prompt, max_tokens => 64, temperature => 0, top_k => 0, top_p => 1, repetition_penalty => 1, seed => NULL, stop => NULL): continue prompt with tokens retrieved from what the store learned. temperature 0 is greedy; the same seed and store give the same text (NULL: a new seed); generation stops before a stop string.';
COMMENT ON FUNCTION engram.generate_trace(text, text, integer, double precision, integer, double precision, double precision, bigint, text[]) IS 'generate_trace(...the arguments of generate...): one row per generated token: step, token, probability, confidence (exp(-energy)), strategy (precise, balanced, broad, fallback) and sources, a jsonb array of the patterns it came from ({level, document, position, similarity, share}); document is an id of engram.documents.';
COMMENT ON FUNCTION engram.score(text, text, boolean) IS 'score(store, body, adaptive => false): the log2-probability of exactly body, every character included (unknown words are spelled by a character model): chars, tokens, bits, bits_per_char, perplexity (per token). adaptive learns each token once scored, for the rest of the call only. Progress NOTICEs; cancel honoured.';
COMMENT ON FUNCTION engram.levels(text) IS 'levels(store): one row per pattern level: its context length, patterns counted, distinct contexts, bytes on disk, and graph state (built, partial, none, empty).';
COMMENT ON FUNCTION engram.hybrid_score(double precision, double precision, text, text, double precision, double precision, double precision, double precision, double precision) IS 'hybrid_score(cosine, age_seconds, scope, kind => ''turn'', decay_rate => 0, alpha => 0.7, beta => 0.2, gamma => 0.1, delta => 0.5): the hybrid score of a memory, (alpha cos + beta R + gamma S) x Q in [0, 1]: cos clamped to [0, 1]; R = engram.recency(age_seconds, scope); S = 1, 0.6, 0.3 for scope session, namespace, global; Q = 1 - delta x decay_rate for kind summary, else 1 (kind: turn, summary, authored). alpha, beta, gamma are clamped to [0, 1] and rescaled to sum to 1; delta and decay_rate clamped to [0, 1].';
COMMENT ON FUNCTION engram.recency(double precision, text) IS 'recency(age_seconds, scope): exp(-rate x age_seconds) in (0, 1], the rate being engram.recency_session, engram.recency_namespace or engram.recency_global (scope session, namespace, global); a negative age counts as 0.';
COMMENT ON FUNCTION engram.estimate_tokens(text) IS 'estimate_tokens(body): the estimated model tokens of body, ceil(sum over its characters of 1 / chi), chi being 1.6 for CJK, 2.5 for Cyrillic, Arabic and Hebrew, 4 otherwise (characters are code points).';
COMMENT ON FUNCTION engram.fit_budget(text[], integer) IS 'fit_budget(bodies, budget): how many leading items of bodies (in rank order) fit together in budget estimated tokens (engram.estimate_tokens; NULL items cost 0); an item that does not fit ends the prefix.';
COMMENT ON FUNCTION engram.revoke(text, text, text) IS 'revoke(store, role, privilege): take back a right given by engram.grant (owner only).';
"#,
    name = "comments",
    requires = [
        version,
        format_version,
        api::create_store,
        api::drop_store,
        api::insert,
        api::insert_many,
        api::delete,
        api::get,
        api::scan,
        api::stats,
        api::rebuild,
        api::optimize,
        api::grant,
        api::revoke,
        generation::create_generator,
        generation::learn,
        generation::fit,
        generation::generate,
        generation::generate_trace,
        generation::score,
        generation::levels,
        memory::hybrid_score,
        memory::recency,
        memory::estimate_tokens,
        memory::fit_budget
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
