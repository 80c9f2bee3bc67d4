-- A store through SQL: the demo of `make demo`.
\echo '== create a store of 3-dimensional keys and write to it'
SELECT engram.create_store('demo', 3);
SELECT engram.insert('demo', '{1,0,0}', 'In the beginning was the word.', '{"namespace": "genesis", "kind": "turn"}');
SELECT engram.insert('demo', '{0,1,0}', 'Memory that can speak remembers what it read.');
BEGIN;
SELECT engram.insert('demo', '{0,0,1}', 'This row is rolled back and never reaches the engine.');
ROLLBACK;
\echo '== the engine copy answers what the truth table holds'
SELECT id, key, body, meta FROM engram.scan('demo');
SELECT id, body FROM engram.rows WHERE store = 'demo' ORDER BY id;
\echo '== nearest rows to a query vector'
SELECT id, round(distance::numeric, 4) AS distance, body FROM engram.search('demo', '{0.9,0.1,0}', 2);
\echo '== a store of 500 rows, indexed by an HNSW graph, searched with a tenant filter'
SELECT engram.create_store('points', 8, settings => '{"m": 12, "ef_construction": 100}');
SELECT count(engram.insert('points',
           ARRAY(SELECT sin(i * d * 0.7 + d)::real FROM generate_series(1, 8) d),
           'point ' || i, jsonb_build_object('namespace', 'tenant' || (i % 10))))
FROM generate_series(1, 500) i;
SELECT engram.optimize('points');
SELECT s.id, round(s.distance::numeric, 4) AS distance, s.meta->>'namespace' AS tenant
FROM engram.search('points', '{1,0,1,0,1,0,1,0}', 3, '{"namespace": "tenant3"}') s;
SELECT engram.drop_store('points');
\echo '== join the store with a relational table'
CREATE TEMP TABLE authors (row_id bigint, author text);
INSERT INTO authors VALUES (0, 'Moses'), (1, 'engram');
SELECT a.author, s.body FROM authors a JOIN LATERAL engram.get('demo', a.row_id) s ON true ORDER BY a.row_id;
\echo '== statistics, and a rebuild from the tables gives the same rows'
SELECT engram.stats('demo');
SELECT engram.rebuild('demo') AS rows_rebuilt;
SELECT id, body FROM engram.scan('demo');
SELECT engram.drop_store('demo');
