# Filters `go test -v` output down to what a reader of CI needs: package
# results, and the whole output (log lines, reason) of every skipped or
# failed test. Log lines are kept per test (the "=== RUN/CONT/NAME" header
# says whose they are), so a subtest's reason is shown with its SKIP line
# even though go test prints the parent's result in between. A skip whose
# reason was already shown (e.g. "PostgreSQL tests skipped: ... is not set"
# for every PostgreSQL subtest) is not repeated: it is counted, and the
# counts are printed at the end. Passing tests' logs are dropped, except
# lines matching the optional pattern `keep` (awk -v keep=REGEX: figures
# worth seeing). Exit status comes from go test itself (the Makefile runs
# with pipefail). POSIX awk.
function reason(name,   i, r) {
    for (i = cnt[name]; i >= 1; i--) {
        r = logs[name, i]
        if (r ~ /^[ \t]*[A-Za-z0-9_.\/-]+\.go:[0-9]+: /) {
            sub(/^[ \t]*[A-Za-z0-9_.\/-]+\.go:[0-9]+: /, "", r)
            return r
        }
    }
    return ""
}
function flush(name,   i) {
    for (i = 1; i <= cnt[name]; i++) { print logs[name, i]; delete logs[name, i] }
    cnt[name] = 0
}
function drop(name,   i) {
    for (i = 1; i <= cnt[name]; i++) delete logs[name, i]
    cnt[name] = 0
}
keep != "" && $0 ~ keep        { print }
/^=== (RUN|CONT|NAME) /         { cur = $3; if (!(cur in cnt)) { cnt[cur] = 0; names[++nnames] = cur }; next }
/^=== PAUSE /                   { next }
/^ *--- SKIP: /                 { r = reason($3)
                                  if (r != "" && (r in shown)) { again[r]++; drop($3); next }
                                  if (r != "") { shown[r] = 1; order[++reasons] = r }
                                  flush($3); print; next }
/^ *--- FAIL: /                 { flush($3); print; next }
/^ *--- PASS: /                 { drop($3); next }
/^(FAIL|panic)/                 { for (k = 1; k <= nnames; k++) flush(names[k]); print; next }
/^(ok|PASS$|\?)/                { if ($0 != "PASS") print
                                  for (k = 1; k <= nnames; k++) drop(names[k]); next }
                                { if (cnt[cur] < 2000) logs[cur, ++cnt[cur]] = $0 }
END                             { for (i = 1; i <= reasons; i++) {
                                      r = order[i]
                                      if (again[r] > 0) {
                                          if (length(r) > 100) r = substr(r, 1, 100) "..."
                                          printf "skipped %d more tests for the reason shown above: %s\n", again[order[i]], r
                                      }
                                  } }
