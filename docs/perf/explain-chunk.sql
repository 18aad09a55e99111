\timing off
DROP SCHEMA IF EXISTS perfx CASCADE;
CREATE SCHEMA perfx; SET search_path = perfx;
-- 3,000,000 existing rows of promotion 1 and 2 chunks of 10,000 new rows of promotion 2, random 13-byte codes.
CREATE TABLE old AS SELECT 'E2E' || upper(substr(md5(i::text), 1, 13)) COLLATE "C" AS code FROM generate_series(1, 3000000) i;
CREATE TABLE new1 AS SELECT 'E2E' || upper(substr(md5('n' || i::text), 1, 10)) COLLATE "C" AS code FROM generate_series(1, 10000) i;
CREATE TABLE new2 AS SELECT 'E2E' || upper(substr(md5('m' || i::text), 1, 10)) COLLATE "C" AS code FROM generate_series(1, 10000) i;
CREATE TABLE t_unique (code text COLLATE "C" PRIMARY KEY, promotion_id bigint NOT NULL, used integer NOT NULL DEFAULT 0);
CREATE TABLE t_btree (LIKE t_unique INCLUDING ALL); CREATE INDEX ON t_btree (promotion_id);
CREATE TABLE t_brin (LIKE t_unique INCLUDING ALL); CREATE INDEX ON t_brin USING brin (promotion_id int8_minmax_multi_ops) WITH (pages_per_range = 32, autosummarize = on);
INSERT INTO t_unique SELECT code, 1 FROM old ORDER BY md5(code);
INSERT INTO t_btree SELECT code, 1 FROM old ORDER BY md5(code);
INSERT INTO t_brin SELECT code, 1 FROM old ORDER BY md5(code);
VACUUM ANALYZE t_unique; VACUUM ANALYZE t_btree; VACUUM ANALYZE t_brin;
SELECT relname, pg_size_pretty(pg_relation_size(oid)) FROM pg_class WHERE relnamespace = 'perfx'::regnamespace AND relkind = 'i';
CHECKPOINT;
\echo === first chunk after a checkpoint
EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) INSERT INTO t_unique SELECT code, 2 FROM new1 ORDER BY code;
EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) INSERT INTO t_btree SELECT code, 2 FROM new1 ORDER BY code;
EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) INSERT INTO t_brin SELECT code, 2 FROM new1 ORDER BY code;
\echo === second chunk, same checkpoint cycle
EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) INSERT INTO t_unique SELECT code, 2 FROM new2 ORDER BY code;
EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) INSERT INTO t_btree SELECT code, 2 FROM new2 ORDER BY code;
EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) INSERT INTO t_brin SELECT code, 2 FROM new2 ORDER BY code;
\echo === unsorted chunk (same checkpoint cycle)
CREATE TABLE new3 AS SELECT 'E2E' || upper(substr(md5('k' || i::text), 1, 10)) COLLATE "C" AS code FROM generate_series(1, 10000) i;
EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF) INSERT INTO t_unique SELECT code, 2 FROM new3;
\echo === codes of promotion 2 (export path)
VACUUM ANALYZE t_btree; VACUUM ANALYZE t_brin;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT code FROM t_btree WHERE promotion_id = 2;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT code FROM t_brin WHERE promotion_id = 2;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT count(*) FROM t_brin WHERE promotion_id = 1;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM t_brin WHERE code = 'E2E' || upper(substr(md5('n5'), 1, 10));
DROP SCHEMA perfx CASCADE;
