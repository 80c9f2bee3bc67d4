-- engram catalog and truth tables. What users write lives here, in ordinary
-- WAL-logged tables (replicated, dumped by pg_dump, governed by MVCC and
-- privileges). Engine directories under $PGDATA/pg_engram/<database oid>/<store> hold only
-- what can be derived from these rows, and are rebuilt from them on demand.

CREATE TABLE engram.stores (
    name      text        PRIMARY KEY,
    owner     regrole     NOT NULL,
    kind      text        NOT NULL DEFAULT 'rows',
    dim       integer     NOT NULL,
    settings  jsonb       NOT NULL DEFAULT '{}',
    created   timestamptz NOT NULL DEFAULT now(),
    uid       text        NOT NULL,
    watermark bigint      NOT NULL DEFAULT 0,
    CONSTRAINT store_name_is_valid CHECK (name ~ '^[A-Za-z0-9_-]{1,63}$'),
    CONSTRAINT store_dim_is_valid CHECK (dim BETWEEN 1 AND 65536),
    CONSTRAINT store_kind_is_valid CHECK (kind IN ('rows', 'generator'))
);
COMMENT ON TABLE engram.stores IS 'One row per store: its owner, kind, key dimension, settings, and watermark (the number of committed transactions that changed it, counted at commit; each engine copy records the watermark it reflects).';

-- Row ids of every store: increasing, never given out twice (a rolled-back
-- insert leaves a gap). A sequence rather than a counter in engram.stores,
-- so that writers do not lock a catalog row until they commit.
CREATE SEQUENCE engram.row_id MINVALUE 0 START 0;
COMMENT ON SEQUENCE engram.row_id IS 'Row ids of engram stores, taken by engram.insert and engram.insert_many.';

CREATE TABLE engram.grants (
    store     text    NOT NULL REFERENCES engram.stores (name) ON DELETE CASCADE,
    grantee   regrole NOT NULL,
    privilege text    NOT NULL CHECK (privilege IN ('read', 'write')),
    PRIMARY KEY (store, grantee, privilege)
);
COMMENT ON TABLE engram.grants IS 'Rights on stores granted by their owners with engram.grant(); write implies read.';

CREATE TABLE engram.rows (
    store text   NOT NULL REFERENCES engram.stores (name) ON DELETE CASCADE,
    id    bigint NOT NULL,
    key   real[] NOT NULL,
    body  text   NOT NULL DEFAULT '',
    meta  jsonb  NOT NULL DEFAULT '{}',
    PRIMARY KEY (store, id)
);
COMMENT ON TABLE engram.rows IS 'The truth of generic stores: every row written with engram.insert(). Read it with plain SQL and join it; write it through engram.insert() and engram.delete().';

CREATE TABLE engram.documents (
    store text   NOT NULL REFERENCES engram.stores (name) ON DELETE CASCADE,
    id    bigint NOT NULL,
    body  text   NOT NULL,
    meta  jsonb  NOT NULL DEFAULT '{}',
    PRIMARY KEY (store, id)
);
COMMENT ON TABLE engram.documents IS 'The truth of generator stores: every document learned with engram.learn(), by id (from engram.row_id). Traces of generated tokens name these ids: join engram.generate_trace(...) sources back to this table.';

-- pg_dump includes the contents of extension tables only when asked to.
SELECT pg_catalog.pg_extension_config_dump('engram.stores', '');
SELECT pg_catalog.pg_extension_config_dump('engram.grants', '');
SELECT pg_catalog.pg_extension_config_dump('engram.rows', '');
SELECT pg_catalog.pg_extension_config_dump('engram.documents', '');
SELECT pg_catalog.pg_extension_config_dump('engram.row_id', '');

-- The rule of who may do what, in one place. PL/pgSQL because it caches the
-- plan of its query for the session: a SQL function with an EXISTS subquery
-- is planned again on every call, which dominated the cost of a search. Not
-- callable by PUBLIC: it reads the catalog as whoever calls it.
CREATE FUNCTION engram.privilege_of(store text, privilege text, role regrole)
RETURNS boolean LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1 FROM engram.stores s
        WHERE s.name = privilege_of.store
          AND ((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = privilege_of.role)
               OR pg_catalog.pg_has_role(privilege_of.role, s.owner, 'MEMBER')
               OR EXISTS (SELECT 1 FROM engram.grants g
                          WHERE g.store = s.name
                            AND pg_catalog.pg_has_role(privilege_of.role, g.grantee, 'MEMBER')
                            AND (g.privilege = 'write' OR g.privilege = privilege_of.privilege))));
END
$$;
REVOKE ALL ON FUNCTION engram.privilege_of(text, text, regrole) FROM PUBLIC;
COMMENT ON FUNCTION engram.privilege_of(text, text, regrole) IS 'privilege_of(store, privilege, role): the rule behind has_privilege, for engram''s own functions (not granted to PUBLIC).';

REVOKE ALL ON engram.stores, engram.grants, engram.rows, engram.documents FROM PUBLIC;
GRANT SELECT ON engram.stores, engram.grants, engram.rows, engram.documents TO PUBLIC;
GRANT USAGE ON SCHEMA engram TO PUBLIC;

-- engram.has_privilege, the row-level security policies that use it and
-- engram.list_stores are created after the extension's functions (lib.rs,
-- block "privileges"): has_privilege checks who calls it, in Rust.
