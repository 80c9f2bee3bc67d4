-- The write path at scale: many rows in one call, ids that need no lock
-- until commit, transactions of any size (spilled to disk), PREPARE, and
-- who has_privilege answers for.
CREATE EXTENSION pg_engram;
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT engram.create_store('w', 2);
SELECT engram.create_store('v', 2);
-- Ids come from one sequence: increasing, across stores, never reused.
SELECT engram.insert('w', '{1,0}', 'a') < engram.insert('v', '{1,0}', 'b') AS increasing;

-- insert_many: keys one after another (array_agg of keys makes a 2-D array),
-- bodies and metas one per row; the ids come back in order.
CREATE TEMP TABLE src AS
SELECT i, ARRAY[cos(i)::real, sin(i)::real] AS key, 'item ' || i AS body,
       jsonb_build_object('namespace', 'ns' || (i % 4)) AS meta
FROM generate_series(1, 1000) AS i;
CREATE TEMP TABLE got AS
SELECT row_number() OVER () AS n, id
FROM engram.insert_many('w', (SELECT array_agg(key ORDER BY i) FROM src),
                        (SELECT array_agg(body ORDER BY i) FROM src),
                        (SELECT array_agg(meta ORDER BY i) FROM src)) AS id;
SELECT count(*) AS inserted, count(DISTINCT id) AS distinct_ids FROM got;
-- Each id holds its own row, in the tables and in the engine copy.
SELECT bool_and(r.body = 'item ' || g.n AND r.meta->>'namespace' = 'ns' || (g.n % 4)) AS tables_match
FROM got g JOIN engram.rows r ON r.store = 'w' AND r.id = g.id;
SELECT bool_and(e.body = 'item ' || g.n) AS engine_matches
FROM got g JOIN engram.scan('w') e ON e.id = g.id;
SELECT s->>'rows' AS rows, s->>'watermark' AS watermark, s->>'watermark' = s->>'engine_watermark' AS in_step
FROM engram.stats('w') s;
-- A flat array works too; bodies and metas may be left out.
SELECT count(*) AS flat FROM engram.insert_many('w', '{1,0, 0,1, 1,1}');
SELECT pg_temp.try($$SELECT * FROM engram.insert_many('w', '{1,0,1}')$$);
SELECT pg_temp.try($$SELECT * FROM engram.insert_many('w', '{1,0,0,1}', '{only one}')$$);
SELECT pg_temp.try($$SELECT * FROM engram.insert_many('w', '{1,0}', NULL, ARRAY['{"nope": 1}'::jsonb])$$);
SELECT pg_temp.try($$SELECT * FROM engram.insert_many('w', '{1,NULL}')$$);

-- A transaction larger than the spool's memory (16 MB) is spilled to disk
-- and published whole at commit, with the rows it deleted.
BEGIN;
SELECT count(*) AS big FROM engram.insert_many('w',
    (SELECT array_agg(ARRAY[1, i]::real[]) FROM generate_series(1, 2000) AS i),
    (SELECT array_agg(repeat(chr(65 + i % 26), 10000)) FROM generate_series(1, 2000) AS i));
SELECT engram.delete('w', id) FROM got WHERE n <= 3;
COMMIT;
SELECT s->>'rows' AS rows, s->>'watermark' = s->>'engine_watermark' AS in_step FROM engram.stats('w') s;
SELECT (SELECT array_agg(id ORDER BY id) FROM engram.rows WHERE store = 'w')
     = (SELECT array_agg(id ORDER BY id) FROM engram.scan('w')) AS engine_matches_tables;

-- Search filters by SQL id, and returns SQL ids.
SELECT count(*) AS by_id FROM engram.search('w', '{1,0}', 10, jsonb_build_object('ids', (SELECT jsonb_agg(id) FROM got WHERE n BETWEEN 10 AND 14))) s
WHERE s.id IN (SELECT id FROM got WHERE n BETWEEN 10 AND 14);

-- PREPARE TRANSACTION of a transaction that changed a store: 0A000.
BEGIN;
SELECT engram.insert('w', '{0,1}') IS NOT NULL AS inserted;
\set VERBOSITY sqlstate
PREPARE TRANSACTION 'engram';
\set VERBOSITY default
ROLLBACK;
SELECT count(*) AS prepared FROM pg_prepared_xacts;

-- has_privilege answers for the caller and the roles it belongs to only.
CREATE ROLE engram_carol;
CREATE ROLE engram_dave;
GRANT engram_dave TO engram_carol;
SELECT engram.grant('w', 'engram_dave', 'read');
SET ROLE engram_carol;
SELECT engram.has_privilege('w', 'read') AS carol_reads;
SELECT engram.has_privilege('w', 'read', 'engram_dave') AS dave_reads;
SELECT engram.has_privilege('w', 'write', 'engram_dave') AS dave_writes;
SELECT pg_temp.try($$SELECT engram.has_privilege('w', 'read', 'postgres')$$);
SELECT count(*) AS carol_sees FROM engram.rows WHERE store = 'w';
SELECT count(*) AS carol_sees_v FROM engram.rows WHERE store = 'v';
RESET ROLE;

SELECT engram.drop_store('w');
SELECT engram.drop_store('v');
DROP ROLE engram_carol;
DROP ROLE engram_dave;
DROP EXTENSION pg_engram;
