-- The extension installs into schema engram and answers its version calls.
CREATE EXTENSION pg_engram;
SELECT extname, extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'pg_engram';
SELECT engram.format_version();
SELECT engram.version() = (SELECT extversion FROM pg_extension WHERE extname = 'pg_engram') AS version_matches;
-- Every function of the extension is documented.
SELECT p.proname
FROM pg_proc p
WHERE p.pronamespace = 'engram'::regnamespace
  AND obj_description(p.oid, 'pg_proc') IS NULL
ORDER BY 1;
DROP EXTENSION pg_engram;
SELECT count(*) FROM pg_namespace WHERE nspname = 'engram';
