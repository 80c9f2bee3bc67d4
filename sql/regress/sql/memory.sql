-- Agent memory's scalar laws over ordinary tables: the hybrid score and
-- recency against the formula computed in plain SQL, token estimates and
-- budget packing, and bad input as SQLSTATE errors.
CREATE EXTENSION pg_engram;
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TEMP TABLE notes (id int, body text, cosine float8, age float8, scope text, kind text, decay float8);
INSERT INTO notes VALUES
    (1, 'the user prefers tea', 0.82, 60, 'session', 'turn', 0),
    (2, 'summary of the trip planning', 0.75, 7200, 'namespace', 'summary', 0.3),
    (3, 'always answer in French', 0.40, 864000, 'global', 'authored', 0),
    (4, 'negative similarity counts as zero', -0.2, 0, 'session', 'turn', 0);

-- The formula by hand, with the default rates and weights.
SELECT id,
       round(engram.hybrid_score(cosine, age, scope, kind, decay)::numeric, 12) AS score,
       abs(engram.hybrid_score(cosine, age, scope, kind, decay)
           - (0.7 * greatest(cosine, 0)
              + 0.2 * exp(-(CASE scope WHEN 'session' THEN 1e-4 WHEN 'namespace' THEN 1e-5 ELSE 2e-6 END) * age)
              + 0.1 * (CASE scope WHEN 'session' THEN 1.0 WHEN 'namespace' THEN 0.6 ELSE 0.3 END))
             * (CASE kind WHEN 'summary' THEN 1 - 0.5 * decay ELSE 1 END)) < 1e-12 AS matches
FROM notes ORDER BY score DESC;

-- Half-lives: ln 2 / rate.
SELECT s, round(engram.recency(ln(2) / r, s)::numeric, 12) AS half
FROM (VALUES ('session', 1e-4), ('namespace', 1e-5), ('global', 2e-6)) AS t(s, r);
SET engram.recency_session = 0.001;
SELECT round(engram.recency(ln(2) / 0.001, 'session')::numeric, 12) AS half_at_the_new_rate;
RESET engram.recency_session;

-- Token estimates and the longest ranked prefix within a budget.
SELECT body, engram.estimate_tokens(body) FROM notes ORDER BY id;
SELECT engram.estimate_tokens('привет мир') AS cyrillic, engram.estimate_tokens('長期記憶') AS cjk;
SELECT b AS budget, engram.fit_budget(array_agg(body ORDER BY engram.hybrid_score(cosine, age, scope, kind, decay) DESC), b) AS fitting
FROM notes, (VALUES (0), (5), (12), (100)) AS t(b) GROUP BY b ORDER BY b;

-- Bad input.
SELECT pg_temp.try($$SELECT engram.hybrid_score(0.5, 0, 'user')$$);
SELECT pg_temp.try($$SELECT engram.hybrid_score(0.5, 0, 'session', kind => 'note')$$);
SELECT pg_temp.try($$SELECT engram.hybrid_score('NaN', 0, 'session')$$);
SELECT pg_temp.try($$SELECT engram.hybrid_score(0.5, 0, 'session', alpha => 0, beta => 0, gamma => 0)$$);
SELECT pg_temp.try($$SELECT engram.recency('Infinity', 'session')$$);
SELECT pg_temp.try($$SELECT engram.fit_budget(ARRAY['a'], -1)$$);
SELECT pg_temp.try($$SET engram.recency_global = -1$$);
DROP EXTENSION pg_engram;
