# Shows the progress of a build on a cold cache: `go build -v` prints the
# import path of each package it compiles (nothing for cached ones); this
# prints the first, then a line every `every` packages (awk -v every=N,
# default 25) and a total at the end, and passes any other line (compile
# errors, "go: downloading ...") through at once. POSIX awk. The exit status
# is the build's (the Makefile runs with pipefail).
BEGIN                        { if (every == "") every = 25; if (what == "") what = "build" }
/^[A-Za-z0-9._~\/+-]+$/      { n++
                               if (n == 1 || n % every == 0) {
                                   printf "%s: %d package%s compiled (%s)\n", what, n, (n == 1 ? "" : "s"), $0
                                   fflush()
                               }
                               next }
                             { print; fflush() }
END                          { if (n > 0 && n % every != 0 && n != 1) printf "%s: %d packages compiled\n", what, n }
