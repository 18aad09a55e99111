-- +goose Up
-- Canonical codes (docs/contracts.md, guarantee 6): every code, generated or vanity, is
-- stored in the one form every look-up uses, separators ('-', '_', '.') and
-- spaces removed and letters upper-cased (pkg/codes.Canonical), so one typed
-- string names at most one code. Rows written before are rewritten here.
--
-- Two existing codes with the same canonical form (a vanity "222M-5H4HJVD"
-- beside a generated "222M5H4HJVD", a vanity "ABC" beside a lower-case
-- generated "abc") cannot be merged without losing one's usage and owner:
-- the batch THROWs, naming them, before anything is changed. docs/store.md
-- says what to do.
--
-- The columns have the binary collation Latin1_General_100_BIN2, so "<>"
-- tells case apart and REPLACE matches bytes; UPPER maps the ASCII letters
-- codes are made of. SQL Server checks the primary key at the end of the
-- UPDATE statement, and no other row can hold a rewritten code's new value
-- anyway (that would be a conflict found first).
-- +goose StatementBegin
DECLARE @canon varchar(128), @a varchar(128), @b varchar(128), @n int;
SELECT TOP (1) @canon = canon, @a = MIN(code), @b = MAX(code), @n = COUNT(*)
FROM (SELECT code, UPPER(REPLACE(REPLACE(REPLACE(REPLACE(code, '-', ''), '_', ''), '.', ''), ' ', '')) AS canon
      FROM codes) AS c
GROUP BY canon
HAVING COUNT(*) > 1
ORDER BY canon;
IF @canon IS NOT NULL
BEGIN
    DECLARE @msg nvarchar(2048) = CONCAT(N'canonical codes: the codes ', @a, N' and ', @b, N' (', @n,
        N' codes in all) would become the same code ', @canon,
        N': separators (-_.) and spaces are ignored and case is folded, so they cannot both exist; ',
        N'nothing was changed. Remove or rename one of them, then migrate again (docs/store.md, "Canonical codes")');
    THROW 50006, @msg, 1;
END;

UPDATE codes SET code = UPPER(REPLACE(REPLACE(REPLACE(REPLACE(code, '-', ''), '_', ''), '.', ''), ' ', ''))
WHERE code <> UPPER(REPLACE(REPLACE(REPLACE(REPLACE(code, '-', ''), '_', ''), '.', ''), ' ', ''));

UPDATE promotions SET vanity_code = UPPER(REPLACE(REPLACE(REPLACE(REPLACE(vanity_code, '-', ''), '_', ''), '.', ''), ' ', ''))
WHERE vanity_code IS NOT NULL
  AND vanity_code <> UPPER(REPLACE(REPLACE(REPLACE(REPLACE(vanity_code, '-', ''), '_', ''), '.', ''), ' ', ''));

-- The audit trail names codes too (redemptions written by a release that had
-- migration 00002 but not this one).
UPDATE redemptions SET code = UPPER(REPLACE(REPLACE(REPLACE(REPLACE(code, '-', ''), '_', ''), '.', ''), ' ', ''))
WHERE code <> UPPER(REPLACE(REPLACE(REPLACE(REPLACE(code, '-', ''), '_', ''), '.', ''), ' ', ''));
-- +goose StatementEnd

-- +goose Down
-- Nothing to undo: the canonical form cannot be turned back into the one
-- each code had, and the canonical rows are still valid codes.
SELECT 1;
