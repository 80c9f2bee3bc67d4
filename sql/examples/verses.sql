-- Real text through SQL: the demo of `make demo`, second part.
-- Run with `psql -v sample=DIR` where DIR is tests/data/kjv-sample: 2,000
-- verses of the King James Bible (Genesis, then Exodus) and 100 held-out
-- verses, embedded by all-MiniLM-L6-v2 (384-d).
\echo '== 2,000 KJV verses and their sentence embeddings, loaded into relational tables'
CREATE TEMP TABLE verses (n serial PRIMARY KEY, body text NOT NULL, book text);
CREATE TEMP TABLE verse_keys (n serial PRIMARY KEY, line text NOT NULL);
CREATE TEMP TABLE questions (n serial PRIMARY KEY, body text NOT NULL);
CREATE TEMP TABLE question_keys (n serial PRIMARY KEY, line text NOT NULL);
\set texts :sample '/texts.txt'
\set keys 'od -An -f -v -w1536 ' :sample '/base.f32'
\set qtexts :sample '/queries.txt'
\set qkeys 'od -An -f -v -w1536 ' :sample '/queries.f32'
-- Read by the server (the demo connects as a superuser).
COPY verses (body) FROM :'texts';
COPY verse_keys (line) FROM PROGRAM :'keys';
COPY questions (body) FROM :'qtexts';
COPY question_keys (line) FROM PROGRAM :'qkeys';
-- od prints each key as one line of 384 floats.
CREATE FUNCTION pg_temp.floats(line text) RETURNS real[] LANGUAGE sql IMMUTABLE
    AS $$ SELECT string_to_array(btrim(regexp_replace(line, '\s+', ' ', 'g')), ' ')::real[] $$;
-- Genesis has 1,533 verses, 15 of them held out as questions.
UPDATE verses SET book = CASE WHEN n <= 1518 THEN 'Genesis' ELSE 'Exodus' END;
SELECT book, count(*) AS verses FROM verses GROUP BY book ORDER BY min(n);

\echo '== a store of the verses; the relational table keeps the book'
SELECT engram.create_store('verses', 384);
-- Rows get ids in insertion order from 0: verse n is row n - 1.
SELECT count(engram.insert('verses', pg_temp.floats(r.line), r.body,
                           jsonb_build_object('namespace', r.book)))
FROM (SELECT n, v.body, v.book, k.line FROM verses v JOIN verse_keys k USING (n) ORDER BY n) r;
SELECT count(*) AS rows_in_verse_order
FROM engram.rows r JOIN verse_keys k ON k.n = r.id + 1
WHERE r.store = 'verses' AND r.key = pg_temp.floats(k.line);
SELECT engram.optimize('verses') AS optimized;

\echo '== which verses are nearest to a verse the store has never seen?'
SELECT body AS question FROM questions WHERE n = 1;
SELECT round(s.distance::numeric, 3) AS distance, v.book, v.body
FROM question_keys q
CROSS JOIN LATERAL engram.search_ids('verses',
    pg_temp.floats(q.line), 3) s
JOIN verses v ON v.n = s.id + 1
WHERE q.n = 1
ORDER BY s.distance;

\echo '== the same question, only among the verses of Exodus (a filter on the row metadata)'
SELECT round(s.distance::numeric, 3) AS distance, s.meta->>'namespace' AS book, s.body
FROM question_keys q
CROSS JOIN LATERAL engram.search('verses',
    pg_temp.floats(q.line), 3,
    '{"namespace": "Exodus"}') s
WHERE q.n = 1
ORDER BY s.distance;

\echo '== for each of three questions, the book of its nearest verse'
SELECT q.n, left(qt.body, 60) AS question, v.book, left(v.body, 60) AS nearest
FROM question_keys q
JOIN questions qt USING (n)
CROSS JOIN LATERAL engram.search_ids('verses',
    pg_temp.floats(q.line), 1) s
JOIN verses v ON v.n = s.id + 1
WHERE q.n IN (2, 40, 90)
ORDER BY q.n;
SELECT engram.drop_store('verses');
