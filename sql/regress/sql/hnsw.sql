-- HNSW through SQL: store settings, engram.optimize, recall against an
-- exact ORDER BY computed in SQL, a 1% tenant filter that still returns k
-- rows, deletes, and a rebuild that comes back with its graph.
CREATE EXTENSION pg_engram;
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.cosdist(a real[], b real[]) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT 1 - sum(x * y) / (sqrt(sum(x * x)) * sqrt(sum(y * y))) FROM unnest(a, b) AS t(x, y)
$$;
-- A 16-d vector around one of 12 centres, from a seed.
CREATE FUNCTION pg_temp.vec(seed int) RETURNS real[] LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg((sin((seed % 12) * 7.1 + d * 1.3) + 0.45 * sin(seed * 12.9898 + d * 78.233))::real ORDER BY d)
    FROM generate_series(1, 16) AS d
$$;

-- Bad settings are refused.
SELECT pg_temp.try($$SELECT engram.create_store('g', 16, settings => '{"m": 1}')$$);
SELECT pg_temp.try($$SELECT engram.create_store('g', 16, settings => '{"ef_construction": "many"}')$$);
SELECT pg_temp.try($$SELECT engram.create_store('g', 16, settings => '{"colour": 3}')$$);
SELECT pg_temp.try($$SELECT engram.create_store('g', 16, settings => '[]')$$);

SELECT engram.create_store('g', 16, settings => '{"m": 8, "ef_construction": 64}');
SELECT count(engram.insert('g', pg_temp.vec(i), 'row ' || i,
                           jsonb_build_object('namespace', 'tenant' || (i % 100))))
FROM generate_series(0, 2999) AS i;
SELECT (engram.stats('g'))->>'indexed_rows' AS indexed_before;
SELECT r->>'segments_out' AS segments_out, r->>'indexed_rows' AS indexed_rows,
       (r->>'index_bytes')::bigint > 0 AS has_graph
FROM engram.optimize('g') AS r;

-- Recall@10 against the exact top 10 of 30 queries.
CREATE TEMP TABLE queries AS SELECT q, pg_temp.vec(100000 + q) AS v FROM generate_series(1, 30) AS q;
SELECT sum(hits) >= 0.95 * 300 AS recall_at_least_0_95
FROM (
    SELECT (SELECT count(*) FROM
               (SELECT id FROM engram.search('g', q.v, 10, ef => 64)) s
               JOIN (SELECT id FROM engram.rows r WHERE r.store = 'g'
                     ORDER BY pg_temp.cosdist(r.key, q.v), id LIMIT 10) e USING (id)) AS hits
    FROM queries q
) per_query;

-- A 1% tenant: k rows every time, all of the tenant, the exact top 10.
SELECT min(n) AS min_rows, bool_and(ok) AS all_tenant7, sum(hits) >= 0.95 * 300 AS filtered_recall_ok
FROM (
    SELECT (SELECT count(*) FROM engram.search('g', q.v, 10, '{"namespace": "tenant7"}')) AS n,
           (SELECT bool_and(meta->>'namespace' = 'tenant7') FROM engram.search('g', q.v, 10, '{"namespace": "tenant7"}')) AS ok,
           (SELECT count(*) FROM
               (SELECT id FROM engram.search('g', q.v, 10, '{"namespace": "tenant7"}')) s
               JOIN (SELECT id FROM engram.rows r WHERE r.store = 'g' AND r.meta->>'namespace' = 'tenant7'
                     ORDER BY pg_temp.cosdist(r.key, q.v), id LIMIT 10) e USING (id)) AS hits
    FROM queries q
) per_query;

-- search_ids returns the same rows, without decoding them.
SELECT bool_and(a = b) AS search_ids_matches
FROM (SELECT array(SELECT id FROM engram.search('g', q.v, 10)) AS a,
             array(SELECT id FROM engram.search_ids('g', q.v, 10)) AS b FROM queries q) x;

-- Deleted rows are skipped by the graph, and dropped by a merge: the merge
-- policy's (a third of the segment is deleted, past its 30% limit; run by a
-- background worker after the commit) or, at the latest, optimize's.
SELECT count(engram.delete('g', id)) AS deleted FROM (SELECT generate_series(0, 2999, 3) AS id) d;
SELECT count(*) AS deleted_returned
FROM queries q, LATERAL engram.search('g', q.v, 10) s WHERE s.id % 3 = 0;
SELECT r->>'indexed_rows' AS indexed_rows FROM engram.optimize('g') AS r;
SELECT s->>'deleted_rows' AS deleted_rows, s->>'rows' AS live_rows FROM engram.stats('g') AS s;

-- A rebuilt copy comes back with its graph.
SELECT engram.rebuild('g') AS rebuilt_rows;
SELECT (engram.stats('g'))->>'indexed_rows' AS indexed_after_rebuild;
SELECT engram.drop_store('g');

-- Commits that fill the memtable flush it, and every flushed segment gets
-- its own graph without engram.optimize; searches across the graphs keep
-- recall. (With background merges off, the committing backend builds each
-- graph before its COMMIT returns, so the state below is certain; with them
-- on, a worker builds them: tests/tests/pg_store.rs.)
SET engram.memtable_size = '256kB';
SET engram.background_merges = off;
SELECT engram.create_store('f', 16, settings => '{"m": 8, "ef_construction": 64}');
SELECT format($$SELECT count(engram.insert('f', pg_temp.vec(i), 'row ' || i)) FROM generate_series(%s, %s) AS i$$,
              b * 500, b * 500 + 499)
FROM generate_series(0, 11) AS b \gexec
SELECT (s->>'segments')::int >= 3 AS several_segments,
       s->>'indexed_rows' = s->>'segment_rows' AS every_segment_has_a_graph,
       (s->>'segment_rows')::int + (s->>'memtable_rows')::int AS rows
FROM engram.stats('f') AS s;
SELECT sum(hits) >= 0.95 * 300 AS recall_at_least_0_95
FROM (
    SELECT (SELECT count(*) FROM
               (SELECT id FROM engram.search_ids('f', q.v, 10)) s
               JOIN (SELECT id FROM engram.rows r WHERE r.store = 'f'
                     ORDER BY pg_temp.cosdist(r.key, q.v), id LIMIT 10) e USING (id)) AS hits
    FROM queries q
) per_query;
RESET engram.memtable_size;
RESET engram.background_merges;
SELECT engram.drop_store('f');
DROP EXTENSION pg_engram;
