//go:build integration

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeCommands runs every command the README shows, as a newcomer
// would, against real processes: the README's ```sh blocks, each marked with
// an HTML comment on the line before it:
//
//	<!-- readme-test: dev -->         run against `make run` (promocodes dev on SQLite)
//	<!-- readme-test: postgres -->    the PostgreSQL multi-process scenario
//	<!-- readme-test: skip REASON --> not run here (Docker, the test commands themselves)
//
// A sh block without a marker fails the test, so a new README command is
// either tested or skipped with a stated reason. Blocks of one scenario run in
// README order, one command at a time, in a scratch directory holding bin/
// (the binary) and configs/ (the repository's). A command ending in `&` is a
// server: it runs in the background and the next command waits until its
// /readyz (--http-addr, or http.addr for dev) or --listen port answers.
// `export K=V` lines set the scenario's environment.
//
// The only rewrites are the ones that let the test run beside others on a
// shared machine: the README's ports (8080-8099, 9092) become free ports, the
// README's PostgreSQL DSN becomes the test server with a schema of its own,
// and `make run` becomes the command it runs after building. readmeExpect
// adds what the output must say, where exit status 0 is not enough.
func TestReadmeCommands(t *testing.T) {
	blocks := readmeBlocks(t)
	scenarios := map[string][]readmeCmd{}
	for _, b := range blocks {
		if b.skip != "" {
			for _, c := range b.cmds {
				t.Logf("README:%d not run (%s): %s", c.line, b.skip, c.text)
			}
			continue
		}
		scenarios[b.scenario] = append(scenarios[b.scenario], b.cmds...)
	}
	for name := range scenarios {
		if readmeScenarios[name] == nil {
			t.Errorf("README marks blocks with scenario %q, which TestReadmeCommands does not know (known: dev, postgres)", name)
		}
	}
	for _, name := range []string{"dev", "postgres"} {
		cmds := scenarios[name]
		if len(cmds) == 0 {
			t.Errorf("README has no %q commands", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			sc := newReadmeScenario(t)
			readmeScenarios[name](t, sc)
			for _, c := range cmds {
				sc.run(c)
				if t.Failed() {
					return
				}
			}
		})
	}
}

// readmeScenarios set up each scenario's environment.
var readmeScenarios = map[string]func(t *testing.T, sc *readmeScenario){
	"dev": func(t *testing.T, sc *readmeScenario) {
		// `make run` listens on http.addr and kafka.brokers[0] of configs/dev.yaml.
		sc.env = append(sc.env, "PROMOCODES_HTTP_ADDR="+sc.port("8080"), "PROMOCODES_KAFKA_BROKERS="+sc.port("9092"),
			"PROMOCODES_CLIENT_URL=http://"+sc.port("8080"))
	},
	"postgres": func(t *testing.T, sc *readmeScenario) {
		// The walk waits for the API's /readyz itself: run it as written,
		// without the test's own waits after each process it starts.
		sc.readmeWaits = true
		// What `createdb promocodes` is in the README: an empty place for the schema.
		sc.rewrites = append(sc.rewrites, [2]string{readmePostgresDSN, postgresSchemaDSN(t)})
		// The API's address in configs/postgres.yaml, so the CLI's --config finds it.
		sc.env = append(sc.env, "PROMOCODES_HTTP_ADDR="+sc.port("8080"), "PROMOCODES_KAFKA_BROKERS="+sc.port("9092"))
	},
}

// readmePostgresDSN is the DSN the README's PostgreSQL section exports.
const readmePostgresDSN = "postgres://postgres@127.0.0.1:5432/promocodes?sslmode=disable"

// readmeExpect: a command matching the pattern must print the text.
var readmeExpect = []struct {
	pattern *regexp.Regexp
	want    string
}{
	{regexp.MustCompile(`promotions create .*--wait`), "completed"},
	{regexp.MustCompile(`promotions status 1`), "completed"},
	{regexp.MustCompile(`promotions export .*-o winter\.csv`), "exported 200,000 codes"},
	{regexp.MustCompile(`promotions export .*-o spring\.csv`), "exported 200,000 codes"},
	{regexp.MustCompile(`Idempotency-Key: winter-2026`), `"id":"1"`},             // the same promotion, not a second one
	{regexp.MustCompile(`Idempotency-Key: winter-2026`), `"status":"completed"`}, // as it is now, not "pending"
	{regexp.MustCompile(`"code":"MEGADETH21"`), `"id":"2"`},
	{regexp.MustCompile(`/v1/promotions/1/codes`), "code\n"},
	{regexp.MustCompile(`codes check wntr_k92d-tn4k.vna`), "WNTRK92DTN4KVNA"},
	{regexp.MustCompile(`codes preview --config configs/dev.yaml`), "WNTR-K92D-TN4K-VNA"},
	{regexp.MustCompile(`/readyz`), `"status":"ok"`},
	{regexp.MustCompile(`topics inspect`), "0 events"},
	{regexp.MustCompile(`topics replay`), "would replay (dry run) 0 events"},
	{regexp.MustCompile(`reconcile`), "0 incomplete batches"},
	{regexp.MustCompile(`migrate --config configs/dev\.yaml`), "nothing to apply"},
	{regexp.MustCompile(`migrate --config configs/postgres\.yaml`), "applied "},
}

// readmeSkip: commands not run, with why.
var readmeSkip = []struct {
	pattern *regexp.Regexp
	why     string
}{
	{regexp.MustCompile(`^make (test|test-integration|bench|fuzz)\b`), "the tests themselves"},
	{regexp.MustCompile(`^make (up|down)\b|^docker |^watch `), "needs a Docker engine"},
}

type readmeCmd struct {
	line int
	text string
}

type readmeBlock struct {
	scenario, skip string
	cmds           []readmeCmd
}

var readmeMarker = regexp.MustCompile(`^<!--\s*readme-test:\s*(.*?)\s*-->$`)

// readmeBlocks parses the README's shell blocks and their markers.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var blocks []readmeBlock
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if fence != "```sh" && fence != "```bash" && fence != "```shell" && fence != "```console" {
			continue
		}
		prev := ""
		for j := i - 1; j >= 0; j-- {
			if strings.TrimSpace(lines[j]) != "" {
				prev = strings.TrimSpace(lines[j])
				break
			}
		}
		var blk readmeBlock
		m := readmeMarker.FindStringSubmatch(prev)
		switch {
		case m == nil:
			t.Errorf("README:%d: a shell block without a <!-- readme-test: SCENARIO --> (or skip REASON) marker", i+1)
		case strings.HasPrefix(m[1], "skip"):
			blk.skip = strings.TrimSpace(strings.TrimPrefix(m[1], "skip"))
			if blk.skip == "" {
				t.Errorf("README:%d: readme-test skip without a reason", i+1)
			}
		default:
			blk.scenario = m[1]
		}
		var cur strings.Builder
		start := 0
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			l := lines[i]
			if cur.Len() == 0 {
				if s := strings.TrimSpace(l); s == "" || strings.HasPrefix(s, "#") {
					continue
				}
				start = i + 1
			}
			if strings.HasSuffix(l, "\\") {
				cur.WriteString(strings.TrimSuffix(l, "\\"))
				continue
			}
			cur.WriteString(l)
			blk.cmds = append(blk.cmds, readmeCmd{line: start, text: strings.TrimSpace(cur.String())})
			cur.Reset()
		}
		blocks = append(blocks, blk)
	}
	if len(blocks) == 0 {
		t.Fatal("no shell blocks in README.md")
	}
	return blocks
}

// readmeScenario is one scenario's scratch directory, environment and
// background processes.
type readmeScenario struct {
	t        *testing.T
	dir      string
	env      []string
	ports    map[string]string // README port → free port
	rewrites [][2]string
	bg       []*exec.Cmd
	logs     []string
	// readmeWaits: the scenario's commands wait for the processes they
	// start themselves, so the test does not wait after a background start.
	readmeWaits bool
}

func newReadmeScenario(t *testing.T) *readmeScenario {
	dir := t.TempDir()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{abs, filepath.Join(dir, "bin", "promocodes")}, {filepath.Join(root, "configs"), filepath.Join(dir, "configs")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	sc := &readmeScenario{t: t, dir: dir, env: cleanEnv(), ports: map[string]string{}}
	t.Cleanup(sc.stop)
	return sc
}

// port maps a README port to this scenario's free port ("127.0.0.1:N").
func (sc *readmeScenario) port(p string) string {
	if a, ok := sc.ports[p]; ok {
		return a
	}
	a := freePort(sc.t)
	sc.ports[p] = a
	return a
}

var readmePort = regexp.MustCompile(`(?:127\.0\.0\.1|localhost):(80[0-9][0-9]|9092)\b`)

func (sc *readmeScenario) rewrite(s string) string {
	for _, r := range sc.rewrites {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return readmePort.ReplaceAllStringFunc(s, func(m string) string {
		return sc.port(m[strings.LastIndexByte(m, ':')+1:])
	})
}

var (
	readmeExport   = regexp.MustCompile(`^export ([A-Z_][A-Z0-9_]*)=(.*)$`)
	readmeHTTPAddr = regexp.MustCompile(`--http-addr (\S+)`)
	readmeListen   = regexp.MustCompile(`--listen (\S+)`)
)

func (sc *readmeScenario) run(c readmeCmd) {
	t := sc.t
	text := c.text
	for _, s := range readmeSkip {
		if s.pattern.MatchString(text) {
			t.Logf("README:%d not run (%s): %s", c.line, s.why, text)
			return
		}
	}
	if strings.HasPrefix(text, "kcat ") {
		if _, err := exec.LookPath("kcat"); err != nil {
			t.Logf("README:%d not run (kcat is not installed here): %s", c.line, text)
			return
		}
	}
	if strings.HasPrefix(text, "make run") {
		// make run = make build, then this (the test runs the built binary)
		text = "bin/promocodes dev --config configs/dev.yaml &"
	}
	text = sc.rewrite(text)
	if m := readmeExport.FindStringSubmatch(text); m != nil {
		sc.env = append(sc.env, m[1]+"="+strings.Trim(m[2], `'"`))
		return
	}
	if bg, ok := strings.CutSuffix(text, "&"); ok {
		sc.background(c, strings.TrimSpace(bg))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", text)
	cmd.Dir, cmd.Env = sc.dir, sc.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("README:%d %s (%s)\n%s", c.line, c.text, time.Since(start).Round(time.Millisecond), tail(string(out), 8))
	if err != nil { // (bash without pipefail, as a user's shell: `| head` is the pipe's status)
		t.Errorf("README:%d failed (%v): %s\n%s", c.line, err, c.text, out)
		return
	}
	for _, e := range readmeExpect {
		if e.pattern.MatchString(c.text) && !strings.Contains(string(out), e.want) {
			t.Errorf("README:%d: output lacks %q: %s\n%s", c.line, e.want, c.text, out)
		}
	}
}

func (sc *readmeScenario) background(c readmeCmd, text string) {
	t := sc.t
	logPath := filepath.Join(sc.dir, fmt.Sprintf("bg-%d.log", c.line))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("bash", "-c", "exec "+text)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = sc.dir, sc.env, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("README:%d: %v", c.line, err)
	}
	sc.bg = append(sc.bg, cmd)
	sc.logs = append(sc.logs, logPath)
	t.Logf("README:%d started in the background: %s", c.line, c.text)
	switch {
	case sc.readmeWaits:
	case readmeListen.MatchString(text):
		waitTCP(t, readmeListen.FindStringSubmatch(text)[1], time.Minute)
	case readmeHTTPAddr.MatchString(text):
		sc.waitReady(c, "http://"+readmeHTTPAddr.FindStringSubmatch(text)[1]+"/readyz")
	default: // dev: http.addr from the environment
		sc.waitReady(c, "http://"+sc.port("8080")+"/readyz")
	}
}

func (sc *readmeScenario) waitReady(c readmeCmd, url string) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	sc.t.Fatalf("README:%d: %s not ready after 2m: %s", c.line, url, c.text)
}

func (sc *readmeScenario) stop() {
	for i := len(sc.bg) - 1; i >= 0; i-- {
		cmd := sc.bg[i]
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if sc.t.Failed() {
		for _, l := range sc.logs {
			b, _ := os.ReadFile(l)
			sc.t.Logf("---- %s (last 40 lines) ----\n%s", filepath.Base(l), tail(string(b), 40))
		}
	}
}
