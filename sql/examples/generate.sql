-- A language model made of search, through SQL: the demo of `make demo`,
-- third part. Run with `psql -v sample=DIR` where DIR is
-- tests/data/kjv-sample: 2,000 verses of the King James Bible, learned as
-- 40 passages of 50 verses, and 100 held-out verses to score.
\echo '== learn 2,000 KJV verses (40 passages) into a generator, in one transaction'
CREATE TEMP TABLE kjv (n serial PRIMARY KEY, body text NOT NULL);
CREATE TEMP TABLE heldout (n serial PRIMARY KEY, body text NOT NULL);
\set texts :sample '/texts.txt'
\set qtexts :sample '/queries.txt'
COPY kjv (body) FROM :'texts';
COPY heldout (body) FROM :'qtexts';
CREATE TEMP TABLE passages AS
    SELECT (n - 1) / 50 + 1 AS passage, string_agg(body, E'\n' ORDER BY n) || E'\n' AS body,
           min(n) AS first_verse
    FROM kjv GROUP BY (n - 1) / 50;

SELECT engram.create_generator('kjv');
\timing on
BEGIN;
SELECT count(engram.learn('kjv', body, jsonb_build_object('passage', passage, 'first_verse', first_verse)))
    AS learned FROM passages;
COMMIT;
\timing off
-- Graphs are built by a background worker after the commit; optimize
-- merges each level into one segment with one graph now.
SELECT engram.optimize('kjv') IS NOT NULL AS optimized;
SELECT level, patterns, contexts, pg_size_pretty(bytes) AS size, graph FROM engram.levels('kjv');

\echo '== fit the mixture on a held-out slice of the training text'
SELECT jsonb_pretty(engram.fit('kjv'));

\echo '== three continuations, with their settings'
SELECT 'greedy' AS settings, engram.generate('kjv', 'And God said,', 24, stop => ARRAY[E'\n']) AS continuation
UNION ALL
SELECT 'temperature 0.8, top_p 0.9, seed 3',
       engram.generate('kjv', 'And the LORD', 24, temperature => 0.8, top_p => 0.9, seed => 3, stop => ARRAY[E'\n'])
UNION ALL
SELECT 'temperature 1, top_k 20, repetition_penalty 1.3, seed 11',
       engram.generate('kjv', 'In the beginning', 24, temperature => 1, top_k => 20,
                       repetition_penalty => 1.3, seed => 11, stop => ARRAY[E'\n']);

\echo '== the trace of one generated token, joined back to the passage it came from'
SELECT t.step, t.token, round(t.probability::numeric, 3) AS p, t.strategy,
       round(t.confidence::numeric, 2) AS confidence,
       (s->>'level')::int AS level, (s->>'document')::bigint AS document,
       (d.meta->>'passage')::int AS passage, round((s->>'share')::numeric, 3) AS share,
       left(d.body, 60) AS passage_begins
FROM engram.generate_trace('kjv', 'And God said,', 6) t
CROSS JOIN LATERAL jsonb_array_elements(t.sources) WITH ORDINALITY AS src(s, rank)
JOIN engram.documents d ON d.store = 'kjv' AND d.id = (s->>'document')::bigint
WHERE t.step = 4 AND rank <= 3
ORDER BY rank;

\echo '== 100 held-out verses scored: every character, unknown words spelled'
SELECT 'static' AS mode, chars, tokens, round(bits_per_char::numeric, 3) AS bits_per_char,
       round(perplexity::numeric, 1) AS perplexity
FROM engram.score('kjv', (SELECT string_agg(body, E'\n' ORDER BY n) || E'\n' FROM heldout))
UNION ALL
SELECT 'adaptive', chars, tokens, round(bits_per_char::numeric, 3), round(perplexity::numeric, 1)
FROM engram.score('kjv', (SELECT string_agg(body, E'\n' ORDER BY n) || E'\n' FROM heldout), adaptive => true);
SELECT engram.drop_store('kjv');
