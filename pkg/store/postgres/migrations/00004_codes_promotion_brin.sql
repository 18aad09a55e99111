-- +goose Up
-- The b-tree on codes (promotion_id) cost a WAL record and a leaf-page write
-- per generated code, for a column whose values arrive in long runs (a
-- promotion's codes are inserted together, in heap order). A BRIN index
-- summarises each range of heap pages by the promotion ids it holds: it is
-- touched once per page range, not once per row, and it is a few pages for
-- 100,000,000 rows. "Codes of a promotion" (export, stats) becomes a bitmap
-- heap scan of the ranges that can hold the promotion, which for a generated
-- promotion are its own pages. minmax_multi keeps several values and
-- intervals per range, so a vanity code or a promotion generated at the same
-- time as another widens a range's summary by a point, not an interval.
-- autosummarize: ranges filled since the last vacuum are summarised by
-- autovacuum as soon as they are full (an unsummarised range is always
-- scanned, so results are right either way). See docs/performance.md.
DROP INDEX codes_promotion_id;
CREATE INDEX codes_promotion_id_brin ON codes USING brin (promotion_id int8_minmax_multi_ops)
    WITH (pages_per_range = 32, autosummarize = on);

-- +goose Down
DROP INDEX codes_promotion_id_brin;
CREATE INDEX codes_promotion_id ON codes (promotion_id);
