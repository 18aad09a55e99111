-- +goose Up
-- Canonical codes (docs/contracts.md, guarantee 6): every code, generated or vanity, is
-- stored in the one form every look-up uses, separators ('-', '_', '.') and
-- spaces removed and letters upper-cased (pkg/codes.Canonical), so one typed
-- string names at most one code. Rows written before are rewritten here.
--
-- Two existing codes with the same canonical form (a vanity "222M-5H4HJVD"
-- beside a generated "222M5H4HJVD", a vanity "ABC" beside a lower-case
-- generated "abc") cannot be merged without losing one's usage and owner:
-- the migration stops, naming them, and changes nothing. docs/store.md says
-- what to do.
--
-- No other row can take a rewritten code's new value (that row would be a
-- conflict found above), so the primary key never sees a transient duplicate.
-- codes.code is COLLATE "C": upper() maps ASCII letters only, as Canonical.
-- +goose StatementBegin
DO $$
DECLARE
    dup record;
BEGIN
    SELECT canon, min(code) AS a, max(code) AS b, count(*) AS n INTO dup
    FROM (SELECT code, upper(translate(code, '-_. ', '')) AS canon FROM codes) AS c
    GROUP BY canon
    HAVING count(*) > 1
    ORDER BY canon
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'canonical codes: the codes % and % (% codes in all) would become the same code %: '
            'separators (-_.) and spaces are ignored and case is folded, so they cannot both exist; '
            'nothing was changed. Remove or rename one of them, then migrate again (docs/store.md, '
            '"Canonical codes")', dup.a, dup.b, dup.n, dup.canon
            USING ERRCODE = 'unique_violation';
    END IF;
END
$$;
-- +goose StatementEnd

UPDATE codes SET code = upper(translate(code, '-_. ', ''))
WHERE code <> upper(translate(code, '-_. ', ''));

UPDATE promotions SET vanity_code = upper(translate(vanity_code, '-_. ', ''))
WHERE vanity_code IS NOT NULL AND vanity_code <> upper(translate(vanity_code, '-_. ', ''));

-- The audit trail names codes too (redemptions written by a release that had
-- migration 00002 but not this one).
UPDATE redemptions SET code = upper(translate(code, '-_. ', ''))
WHERE code <> upper(translate(code, '-_. ', ''));

-- +goose Down
-- Nothing to undo: the canonical form cannot be turned back into the one
-- each code had, and the canonical rows are still valid codes.
SELECT 1;
