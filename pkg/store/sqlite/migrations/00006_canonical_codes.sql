-- +goose Up
-- Canonical codes (docs/contracts.md, guarantee 6): every code, generated or vanity, is
-- stored in the one form every look-up uses, separators ('-', '_', '.') and
-- spaces removed and letters upper-cased (pkg/codes.Canonical), so one typed
-- string names at most one code. Rows written before are rewritten here.
--
-- Two existing codes with the same canonical form (a vanity "222M-5H4HJVD"
-- beside a generated "222M5H4HJVD", a vanity "ABC" beside a lower-case
-- generated "abc") cannot be merged without losing one's usage and owner:
-- the migration stops, naming them, and changes nothing (goose runs it in one
-- transaction). docs/store.md says what to do. SQLite has RAISE only in
-- triggers, hence the temporary table whose trigger turns a found conflict
-- into an error carrying the message.
--
-- No other row can take a rewritten code's new value (that row would be a
-- conflict found above), so the primary key never sees a transient duplicate.
-- SQLite's upper() maps ASCII letters only, as Canonical.
CREATE TEMP TABLE canonical_codes_conflict (msg TEXT NOT NULL);

-- +goose StatementBegin
CREATE TEMP TRIGGER canonical_codes_conflict_abort BEFORE INSERT ON canonical_codes_conflict
BEGIN
    SELECT RAISE(ABORT, NEW.msg);
END;
-- +goose StatementEnd

INSERT INTO canonical_codes_conflict (msg)
SELECT 'canonical codes: the codes ' || min(code) || ' and ' || max(code) || ' (' || count(*) ||
       ' codes in all) would become the same code ' || canon ||
       ': separators (-_.) and spaces are ignored and case is folded, so they cannot both exist; ' ||
       'nothing was changed. Remove or rename one of them, then migrate again (docs/store.md, "Canonical codes")'
FROM (SELECT code, upper(replace(replace(replace(replace(code, '-', ''), '_', ''), '.', ''), ' ', '')) AS canon FROM codes)
GROUP BY canon
HAVING count(*) > 1
ORDER BY canon
LIMIT 1;

DROP TRIGGER canonical_codes_conflict_abort;
DROP TABLE canonical_codes_conflict;

UPDATE codes SET code = upper(replace(replace(replace(replace(code, '-', ''), '_', ''), '.', ''), ' ', ''))
WHERE code <> upper(replace(replace(replace(replace(code, '-', ''), '_', ''), '.', ''), ' ', ''));

UPDATE promotions SET vanity_code = upper(replace(replace(replace(replace(vanity_code, '-', ''), '_', ''), '.', ''), ' ', ''))
WHERE vanity_code IS NOT NULL
  AND vanity_code <> upper(replace(replace(replace(replace(vanity_code, '-', ''), '_', ''), '.', ''), ' ', ''));

-- The audit trail names codes too (redemptions written by a release that had
-- migration 00002 but not this one).
UPDATE redemptions SET code = upper(replace(replace(replace(replace(code, '-', ''), '_', ''), '.', ''), ' ', ''))
WHERE code <> upper(replace(replace(replace(replace(code, '-', ''), '_', ''), '.', ''), ' ', ''));

-- +goose Down
-- Nothing to undo: the canonical form cannot be turned back into the one
-- each code had, and the canonical rows are still valid codes.
SELECT 1;
