-- Stores: lifecycle, commit-time publish, rollback, savepoints, rebuild,
-- errors with SQLSTATEs, and rights of two roles.
CREATE EXTENSION pg_engram;
-- Errors are shown as SQLSTATE: message, and never end the session.
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT engram.create_store('notes', 3);
SELECT engram.insert('notes', '{1,0,0}', 'first', '{"namespace": "a", "kind": "turn"}');
SELECT engram.insert('notes', '{0,1,0}', 'second');
-- The engine copy answers what the tables hold.
SELECT * FROM engram.get('notes', 0);
SELECT id, key, body, meta FROM engram.scan('notes');
SELECT id, key, body, meta FROM engram.rows WHERE store = 'notes' ORDER BY id;

-- ROLLBACK leaves no trace in the engine.
BEGIN;
SELECT engram.insert('notes', '{0,0,1}', 'rolled back');
ROLLBACK;
SELECT id, body FROM engram.scan('notes');

-- ROLLBACK TO SAVEPOINT undoes only what followed the savepoint.
BEGIN;
SELECT engram.insert('notes', '{0,0,2}', 'kept');
SAVEPOINT s;
SELECT engram.insert('notes', '{0,0,3}', 'undone');
SELECT engram.delete('notes', 1);
ROLLBACK TO SAVEPOINT s;
SAVEPOINT t;
SELECT engram.delete('notes', 0);
RELEASE SAVEPOINT t;
-- Not published before commit.
SELECT id, body FROM engram.scan('notes');
COMMIT;
SELECT id, body FROM engram.scan('notes');
-- A row inserted and deleted in one transaction never reaches the engine.
BEGIN;
SELECT engram.insert('notes', '{5,5,5}', 'ephemeral') AS id \gset
SELECT engram.delete('notes', :id);
COMMIT;
SELECT engram.delete('notes', 12345) AS deleted_nothing;
SELECT (SELECT array_agg(id ORDER BY id) FROM engram.rows WHERE store = 'notes')
     = (SELECT array_agg(id ORDER BY id) FROM engram.scan('notes')) AS engine_matches_tables;
SELECT s->>'watermark' = s->>'engine_watermark' AS in_step, s->'rows' AS rows
FROM engram.stats('notes') AS s;

-- Rebuild gives identical answers.
SELECT engram.rebuild('notes');
SELECT id, key, body, meta FROM engram.scan('notes');

-- Bad input: an ERROR with a SQLSTATE, never a crash.
SELECT pg_temp.try($$SELECT engram.create_store('../x', 3)$$);
SELECT pg_temp.try($$SELECT engram.create_store('a/b', 3)$$);
SELECT pg_temp.try($$SELECT engram.create_store('', 3)$$);
SELECT pg_temp.try($$SELECT engram.create_store(repeat('x', 64), 3)$$);
SELECT pg_temp.try($$SELECT engram.insert('notes', '{1,1,1}', repeat('x', 70000000))$$);
SELECT pg_temp.try($$SELECT engram.create_store('ctl' || chr(1), 3)$$);
SELECT pg_temp.try($$SELECT engram.create_store('notes', 3)$$);
SELECT pg_temp.try($$SELECT engram.create_store('d0', 0)$$);
SELECT pg_temp.try($$SELECT engram.create_store('k', 3, 'graph')$$);
SELECT pg_temp.try($$SELECT engram.insert('notes', '{1,2}')$$);
SELECT pg_temp.try($$SELECT engram.insert('notes', '{1,NaN,0}')$$);
SELECT pg_temp.try($$SELECT engram.insert('notes', '{1,Infinity,0}')$$);
SELECT pg_temp.try($$SELECT engram.insert('notes', '{1,NULL,0}')$$);
SELECT pg_temp.try($$SELECT engram.insert('notes', '{1,0,0}', 'x', '{"bogus": 1}')$$);
SELECT pg_temp.try($$SELECT engram.insert('notes', '{1,0,0}', 'x', '{"scope": "planet"}')$$);
SELECT pg_temp.try($$SELECT engram.insert('nope', '{1}')$$);
SELECT pg_temp.try($$SELECT engram.get('nope', 1)$$);
SELECT pg_temp.try($$SELECT engram.grant('notes', 'no_such_role', 'read')$$);
SELECT pg_temp.try($$SELECT engram.grant('notes', current_user, 'admin')$$);
SELECT pg_temp.try($$INSERT INTO engram.stores (name, owner, dim, uid) VALUES ('../y', 'postgres', 1, 'u')$$);
SELECT count(*) AS rows_after_errors FROM engram.scan('notes');

-- Two roles: each is denied the other's store, then granted, then revoked.
CREATE ROLE engram_alice;
CREATE ROLE engram_bob;
SET ROLE engram_alice;
SELECT engram.create_store('alice_notes', 2);
SELECT engram.insert('alice_notes', '{1,1}', 'alice''s secret');
RESET ROLE;
SET ROLE engram_bob;
SELECT engram.create_store('bob_notes', 2);
SELECT pg_temp.try($$SELECT * FROM engram.scan('alice_notes')$$);
SELECT pg_temp.try($$SELECT engram.insert('alice_notes', '{2,2}')$$);
SELECT pg_temp.try($$SELECT engram.grant('alice_notes', 'engram_bob', 'write')$$);
SELECT pg_temp.try($$INSERT INTO engram.rows (store, id, key) VALUES ('alice_notes', 99, '{1,1}')$$);
SELECT count(*) AS alice_rows_bob_sees FROM engram.rows WHERE store = 'alice_notes';
SELECT name FROM engram.list_stores();
RESET ROLE;
SET ROLE engram_alice;
SELECT pg_temp.try($$SELECT * FROM engram.scan('bob_notes')$$);
SELECT engram.grant('alice_notes', 'engram_bob', 'read');
RESET ROLE;
SET ROLE engram_bob;
SELECT body FROM engram.scan('alice_notes');
SELECT count(*) AS alice_rows_bob_sees FROM engram.rows WHERE store = 'alice_notes';
SELECT pg_temp.try($$SELECT engram.insert('alice_notes', '{2,2}')$$);
RESET ROLE;
SET ROLE engram_alice;
SELECT engram.revoke('alice_notes', 'engram_bob', 'read');
RESET ROLE;
SET ROLE engram_bob;
SELECT pg_temp.try($$SELECT * FROM engram.scan('alice_notes')$$);
SELECT pg_temp.try($$SELECT engram.drop_store('alice_notes')$$);
RESET ROLE;

-- Rights are those of the role PostgreSQL runs the call as, never of a more
-- privileged session behind it: bob's SECURITY DEFINER function acts as bob
-- when the superuser calls it, and so does bob's index expression when the
-- superuser's ANALYZE evaluates it (as bob, the table's owner).
CREATE SCHEMA bob AUTHORIZATION engram_bob;
SET ROLE engram_bob;
CREATE TABLE bob.bob_flag (armed boolean);
INSERT INTO bob.bob_flag VALUES (false);
CREATE FUNCTION bob.bob_plant(s text) RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog AS $$
BEGIN PERFORM engram.insert(s, '{9,9}', 'planted by a definer function'); RETURN 'planted'; END $$;
CREATE FUNCTION bob.bob_probe(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog AS $$
BEGIN
    IF (SELECT armed FROM bob.bob_flag) THEN
        PERFORM engram.insert('alice_notes', '{8,8}', 'planted by an index expression');
    END IF;
    RETURN x;
END $$;
CREATE TABLE bob.bob_table (x int);
INSERT INTO bob.bob_table SELECT generate_series(1, 10);
CREATE INDEX ON bob.bob_table (bob.bob_probe(x));
UPDATE bob.bob_flag SET armed = true;
RESET ROLE;
SELECT pg_temp.try($$SELECT bob.bob_plant('alice_notes')$$);
SELECT pg_temp.try($$ANALYZE bob.bob_table$$);
SELECT count(*) AS planted FROM engram.rows WHERE body LIKE 'planted%';
DROP SCHEMA bob CASCADE;

-- A store dropped and recreated in one transaction cannot be used again
-- before commit (its engine copy would otherwise see uncommitted rows).
SELECT engram.create_store('phoenix', 2);
SELECT engram.insert('phoenix', '{1,1}', 'old');
BEGIN;
SELECT engram.insert('phoenix', '{2,2}', 'pending');
SELECT engram.drop_store('phoenix');
SELECT engram.create_store('phoenix', 2);
SELECT pg_temp.try($$SELECT engram.insert('phoenix', '{3,3}', 'new')$$);
ROLLBACK;
SELECT id, body FROM engram.scan('phoenix');
SELECT engram.drop_store('phoenix');

-- Drop removes rows and grants.
SELECT engram.drop_store('alice_notes');
SELECT engram.drop_store('bob_notes');
SELECT engram.drop_store('notes');
SELECT count(*) AS rows_left FROM engram.rows;
SELECT pg_temp.try($$SELECT * FROM engram.scan('notes')$$);
DROP ROLE engram_alice;
DROP ROLE engram_bob;
DROP EXTENSION pg_engram;
