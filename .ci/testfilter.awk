# Filters `go test -v` output down to what a reader of CI needs: package
# results, and the whole output (log lines, reason) of every skipped or
# failed test. Passing tests' logs are dropped, except lines matching the
# optional pattern `keep` (awk -v keep=REGEX: figures worth seeing). Exit
# status comes from go test itself (the Makefile runs with pipefail).
keep != "" && $0 ~ keep     { print }
/^=== (RUN|CONT|PAUSE|NAME)/ { n = 0; next }
/^ *--- (SKIP|FAIL)/        { for (i = 0; i < n; i++) print buf[i]; print; n = 0; next }
/^ *--- PASS/               { n = 0; next }
/^(FAIL|panic)/             { for (i = 0; i < n; i++) print buf[i]; print; n = 0; next }
/^(ok|PASS|\?)/             { print; n = 0; next }
                            { if (n < 2000) buf[n++] = $0 }
