-- Vector search through SQL: against an exact ORDER BY computed in SQL,
-- with filters, joined with a relational table, and with bad input.
CREATE EXTENSION pg_engram;
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- The reference: cosine distance computed in plain SQL.
CREATE FUNCTION pg_temp.cosdist(a real[], b real[]) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT 1 - sum(x * y) / (sqrt(sum(x * x)) * sqrt(sum(y * y))) FROM unnest(a, b) AS t(x, y)
$$;

SELECT engram.create_store('vecs', 4);
SELECT count(engram.insert('vecs',
           ARRAY[cos(i), sin(i), cos(i * 0.37), (i % 7) / 7.0]::real[],
           'row ' || i,
           jsonb_build_object('namespace', 'ns' || (i % 4), 'timestamp', i * 1000)))
FROM generate_series(0, 299) AS i;

-- Top 10 by engram equals the exact top 10, for 20 queries.
CREATE TEMP TABLE queries AS
SELECT q, ARRAY[cos(q * 1.7), sin(q * 0.9), cos(q), 0.5]::real[] AS v FROM generate_series(1, 20) AS q;
SELECT count(*) AS queries, sum(hits) AS matching_of_200
FROM (
    SELECT q.q,
           (SELECT count(*) FROM
               (SELECT id FROM engram.search('vecs', q.v, 10)) s
               JOIN (SELECT id FROM engram.rows r WHERE r.store = 'vecs'
                     ORDER BY pg_temp.cosdist(r.key, q.v), id LIMIT 10) e USING (id)) AS hits
    FROM queries q
) per_query;

-- Distances are the exact cosine distances, nearest first.
SELECT s.id, round(s.distance::numeric, 4) AS distance,
       round(pg_temp.cosdist(r.key, '{1,0,1,0.5}')::numeric, 4) AS reference
FROM engram.search('vecs', '{1,0,1,0.5}', 5) s
JOIN engram.rows r ON r.store = 'vecs' AND r.id = s.id;

-- Filters: every result passes, and the filtered top 10 is the exact one.
SELECT count(*) AS results, bool_and(meta->>'namespace' = 'ns2') AS all_ns2
FROM engram.search('vecs', '{1,0,1,0.5}', 10, '{"namespace": "ns2"}');
SELECT array_agg(id ORDER BY id) = (
    SELECT array_agg(id ORDER BY id) FROM (
        SELECT id FROM engram.rows r WHERE store = 'vecs' AND (meta->>'timestamp')::bigint BETWEEN 50000 AND 149999
        ORDER BY pg_temp.cosdist(key, '{0,1,0,0}'), id LIMIT 10) e) AS filtered_exact
FROM engram.search('vecs', '{0,1,0,0}', 10, '{"time_from": 50000, "time_to": 150000}');
SELECT id FROM engram.search('vecs', '{0,1,0,0}', 10, '{"ids": [3, 5, 8]}') ORDER BY id;
SELECT count(*) AS none FROM engram.search('vecs', '{0,1,0,0}', 10, '{"namespace": "nobody"}');
-- k beyond the matching rows returns them all.
SELECT count(*) AS all_ns1 FROM engram.search('vecs', '{0,1,0,0}', 1000, '{"namespace": "ns1"}');

-- Join with relational tables.
CREATE TEMP TABLE favourites (user_name text, probe real[]);
INSERT INTO favourites VALUES ('ada', '{1,0,0,0}'), ('alan', '{0,1,0,0}');
SELECT f.user_name, n.id, n.body
FROM favourites f
CROSS JOIN LATERAL engram.search('vecs', f.probe, 2, '{"namespace": "ns0"}') n
ORDER BY f.user_name, n.distance, n.id;

-- ef from the setting, or per call; other metrics.
SET engram.ef_search = 10;
SHOW engram.ef_search;
SELECT count(*) FROM engram.search('vecs', '{1,0,0,0}', 3, ef => 200);
SELECT count(*) FROM engram.search('vecs', '{1,0,0,0}', 3, metric => 'l2');
RESET engram.ef_search;
-- Deleted rows are never returned.
SELECT id AS nearest FROM engram.search('vecs', '{1,0,1,0.5}', 1) \gset
SELECT engram.delete('vecs', :nearest);
SELECT count(*) AS deleted_row_returned FROM engram.search('vecs', '{1,0,1,0.5}', 10) WHERE id = :nearest;
SELECT count(*) AS results_after_delete FROM engram.search('vecs', '{1,0,1,0.5}', 10);

-- Bad input: ERROR 22023 (or 22004 for NULL), never a crash.
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,0,0}', 10)$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,NaN,0,0}', 10)$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,-Infinity,0,0}', 10)$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,NULL,0,0}', 10)$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,0,0,0}', 0)$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,0,0,0}', -3)$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,0,0,0}', 5, ef => 0)$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,0,0,0}', 5, '{"colour": "red"}')$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,0,0,0}', 5, '{"ids": [-1]}')$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('vecs', '{1,0,0,0}', 5, metric => 'manhattan')$$);
SELECT pg_temp.try($$SELECT * FROM engram.search('missing', '{1,0,0,0}', 5)$$);
SELECT engram.drop_store('vecs');
DROP EXTENSION pg_engram;
