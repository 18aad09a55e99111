//go:build integration

package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
)

// The end-to-end tests run the real promocodes binary as separate OS
// processes: an embedded broker process, the API and generator processes on
// PostgreSQL, the shovel. Set PROMOCODES_TEST_BINARY to a built binary
// (make test-integration does); otherwise TestMain builds one.
//
// A process started with a PROMOCODES_FAULT_* variable runs the binary
// built with -tags faults instead (the fault injection hooks of
// pkg/app/faults.go, which the shipped binary does not have):
// PROMOCODES_TEST_FAULT_BINARY (make test-integration builds
// bin/promocodes-faults), otherwise it is built the first time a test needs
// it.

var (
	binary string
	// buildDir holds the binaries built here; removed when the tests end.
	buildDir string

	faultOnce   sync.Once
	faultBinary string
	faultErr    error
)

func TestMain(m *testing.M) {
	var err error
	if buildDir, err = os.MkdirTemp("", "promocodes-e2e"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = os.Getenv("PROMOCODES_TEST_BINARY")
	if binary == "" {
		if binary, err = buildBinary(); err != nil {
			fmt.Fprintln(os.Stderr, "build promocodes:", err)
			os.RemoveAll(buildDir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

// buildBinary builds promocodes with the given build tags into buildDir.
func buildBinary(tags ...string) (string, error) {
	out := filepath.Join(buildDir, "promocodes")
	args := []string{"build", "-o"}
	if len(tags) > 0 {
		out += "-" + strings.Join(tags, "-")
		args = append(args, out, "-tags", strings.Join(tags, ","), ".")
	} else {
		args = append(args, out, ".")
	}
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return out, build.Run()
}

// faultBin is the binary with the fault injection hooks.
func faultBin(t testing.TB) string {
	t.Helper()
	faultOnce.Do(func() {
		if faultBinary = os.Getenv("PROMOCODES_TEST_FAULT_BINARY"); faultBinary == "" {
			faultBinary, faultErr = buildBinary("faults")
		}
	})
	if faultErr != nil {
		t.Fatalf("build promocodes -tags faults: %v", faultErr)
	}
	return faultBinary
}

// binaryFor is the binary a process with the extra environment runs: the
// fault binary when it asks for a fault.
func binaryFor(t testing.TB, extra []string) string {
	for _, e := range extra {
		if strings.HasPrefix(e, "PROMOCODES_FAULT_") {
			return faultBin(t)
		}
	}
	return binary
}

const (
	testSecret = "e2e-test-secret-0123456789abcdef0123456789"
	testToken  = "e2e-admin-token-0123456789"
)

// proc is one running promocodes process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// stack is one test's system: its own broker process, PostgreSQL schema,
// topic names and consumer groups, so tests can run side by side.
type stack struct {
	t          testing.TB
	dir        string
	brokerAddr string
	dsn        string
	schema     string
	topics     kafka.Topics
	env        []string
	apiURL     string
	mu         sync.Mutex
	procs      []*proc
	broker     *proc
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newStack(t testing.TB) *stack {
	t.Helper()
	dsn := postgrestest.DSN(t)
	schema := postgrestest.Schema(t)
	s := &stack{t: t, dir: t.TempDir(), dsn: dsn, schema: schema, brokerAddr: freePort(t)}
	// Create and migrate the schema first; the processes find it through
	// search_path in their DSN.
	ctx := context.Background()
	st, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	s.topics = kafka.Topics{Batches: kafkatest.Name(t, "batches"), Retry: kafkatest.Name(t, "retry"),
		Error: kafkatest.Name(t, "error"), Dead: kafkatest.Name(t, "dead")}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	s.env = []string{
		"PROMOCODES_ENV=production",
		"PROMOCODES_LOG_FORMAT=json",
		"PROMOCODES_LOG_LEVEL=info",
		"PROMOCODES_DB_DRIVER=postgres",
		"PROMOCODES_DB_DSN=" + dsn + sep + "search_path=" + schema,
		"PROMOCODES_KAFKA_BROKERS=" + s.brokerAddr,
		"PROMOCODES_KAFKA_PARTITIONS=4",
		"PROMOCODES_KAFKA_TOPICS_BATCHES=" + s.topics.Batches,
		"PROMOCODES_KAFKA_TOPICS_RETRY=" + s.topics.Retry,
		"PROMOCODES_KAFKA_TOPICS_ERROR=" + s.topics.Error,
		"PROMOCODES_KAFKA_TOPICS_DEAD=" + s.topics.Dead,
		"PROMOCODES_CODES_SECRET=" + testSecret,
		"PROMOCODES_AUTH_ADMINTOKENS=" + testToken,
		"PROMOCODES_GENERATOR_GROUPID=" + kafkatest.Name(t, "generator"),
		"PROMOCODES_SHOVEL_GROUPID=" + kafkatest.Name(t, "shovel"),
	}
	t.Cleanup(s.stopAll)
	return s
}

// start runs `promocodes args...` with the stack's env plus extra (the
// fault binary when extra asks for a fault).
func (s *stack) start(name string, extra []string, args ...string) *proc {
	s.t.Helper()
	return s.startBinary(binaryFor(s.t, extra), name, extra, args...)
}

// startBinary runs bin as start does.
func (s *stack) startBinary(bin, name string, extra []string, args ...string) *proc {
	s.t.Helper()
	logPath := filepath.Join(s.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(append([]string{}, os.Environ()...), s.env...), extra...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p
}

func (s *stack) startBroker() {
	s.t.Helper()
	s.broker = s.start("broker", nil, "broker", "--data-dir", filepath.Join(s.dir, "kafka"), "--listen", s.brokerAddr)
	waitTCP(s.t, s.brokerAddr, 20*time.Second)
}

func (s *stack) startAPI() {
	s.t.Helper()
	addr := freePort(s.t)
	s.start("api", []string{"PROMOCODES_HTTP_ADDR=" + addr}, "api")
	s.apiURL = "http://" + addr
	waitHTTP(s.t, s.apiURL+"/readyz", 30*time.Second)
}

func (s *stack) startGenerator(name string, extra ...string) *proc {
	s.t.Helper()
	addr := freePort(s.t)
	p := s.start(name, append([]string{"PROMOCODES_HTTP_ADDR=" + addr}, extra...), "generator")
	waitHTTP(s.t, "http://"+addr+"/readyz", 30*time.Second)
	return p
}

func (s *stack) startShovel(name string, extra ...string) *proc {
	s.t.Helper()
	addr := freePort(s.t)
	return s.start(name, append([]string{"PROMOCODES_HTTP_ADDR=" + addr}, extra...), "shovel")
}

// run runs a one-shot command and returns its combined output.
func (s *stack) run(args ...string) (string, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append([]string{}, os.Environ()...), s.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// signal sends sig and waits for the process to end.
func (p *proc) stop(t testing.TB, sig syscall.Signal, within time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(within):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within %s of %v", p.name, within, sig)
	}
}

// logged reports whether the process's log holds substr.
func (p *proc) logged(substr string) bool {
	b, err := os.ReadFile(p.log)
	return err == nil && strings.Contains(string(b), substr)
}

func (s *stack) stopAll() {
	s.mu.Lock()
	procs := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if s.t.Failed() {
		for _, p := range procs {
			b, _ := os.ReadFile(p.log)
			s.t.Logf("---- %s log (last 60 lines) ----\n%s", p.name, tail(string(b), 60))
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func waitTCP(t testing.TB, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %s", addr, within)
}

func waitHTTP(t testing.TB, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s", url, within)
}

func (s *stack) do(method, path, body string) (int, []byte) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.apiURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// create asks for a promotion of n codes and returns its id.
func (s *stack) create(n int) string {
	s.t.Helper()
	code, body := s.do("POST", "/v1/promotions", fmt.Sprintf(
		`{"name":"e2e","codeCount":%d,"format":{"charset":"alnum","length":10,"prefix":"E2E-","separator":"-","groupSize":4}}`, n))
	if code != http.StatusAccepted {
		s.t.Fatalf("create: %d %s", code, body)
	}
	var r struct{ ID string }
	if err := json.Unmarshal(body, &r); err != nil {
		s.t.Fatal(err)
	}
	return r.ID
}

type status struct {
	Status         string
	CodeCount      int64
	GeneratedCount int64
	Batches        struct{ Total, Completed, Retrying, Parked int }
	Summary        string
}

func (s *stack) status(id string) status {
	s.t.Helper()
	code, body := s.do("GET", "/v1/promotions/"+id, "")
	if code != http.StatusOK {
		s.t.Fatalf("status: %d %s", code, body)
	}
	var st status
	if err := json.Unmarshal(body, &st); err != nil {
		s.t.Fatal(err)
	}
	return st
}

// waitFor polls the promotion until cond holds.
func (s *stack) waitFor(id string, within time.Duration, what string, cond func(status) bool) status {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var st status
	for time.Now().Before(deadline) {
		st = s.status(id)
		if cond(st) {
			return st
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.t.Fatalf("promotion %s: %s not reached within %s; last status %+v", id, what, within, st)
	return st
}

func (s *stack) waitCompleted(id string, within time.Duration) status {
	return s.waitFor(id, within, "completed", func(st status) bool { return st.Status == "completed" })
}

// rowCount counts the codes rows of a promotion in the database itself.
func (s *stack) rowCount(id string) (rows, distinct int64) {
	s.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(ctx)
	q := fmt.Sprintf(`SELECT count(*), count(DISTINCT code) FROM %s.codes WHERE promotion_id = $1`, pgx.Identifier{s.schema}.Sanitize())
	pid, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, q, pid).Scan(&rows, &distinct); err != nil {
		s.t.Fatal(err)
	}
	return rows, distinct
}

// rowsAndProgress reads a promotion's codes rows and its batches' summed
// progress in one statement, hence from one snapshot: they must be equal at
// every instant, since a chunk commits both or neither.
func (s *stack) rowsAndProgress(id string) (rows, progress int64) {
	s.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := pgx.Identifier{s.schema}.Sanitize()
	pid, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		s.t.Fatal(err)
	}
	q := `SELECT (SELECT count(*) FROM ` + schema + `.codes WHERE promotion_id = $1),
		(SELECT COALESCE(sum(done), 0)::bigint FROM ` + schema + `.batches WHERE promotion_id = $1)`
	if err := conn.QueryRow(ctx, q, pid).Scan(&rows, &progress); err != nil {
		s.t.Fatal(err)
	}
	return rows, progress
}

// assertExact checks the outcome users care about: exactly n rows in SQL,
// n distinct codes, and an export with n distinct codes plus the header.
func (s *stack) assertExact(id string, n int64) {
	s.t.Helper()
	rows, distinct := s.rowCount(id)
	if rows != n || distinct != n {
		s.t.Fatalf("promotion %s: %d rows, %d distinct in SQL; want exactly %d", id, rows, distinct, n)
	}
	req, _ := http.NewRequest("GET", s.apiURL+"/v1/promotions/"+id+"/codes", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	r := csv.NewReader(bufio.NewReaderSize(resp.Body, 1<<16))
	header, err := r.Read()
	if err != nil || header[0] != "code" {
		s.t.Fatalf("export header %v, err %v", header, err)
	}
	seen := make(map[string]struct{}, n)
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.t.Fatal(err)
		}
		seen[rec[0]] = struct{}{}
	}
	if int64(len(seen)) != n {
		s.t.Fatalf("export has %d distinct codes; want %d", len(seen), n)
	}
	s.t.Logf("promotion %s: %d rows, %d distinct in SQL; export %d distinct codes + header", id, rows, distinct, len(seen))
}

// events reads every message of topic.
func (s *stack) events(topic string) []kafka.Message {
	s.t.Helper()
	ctx := context.Background()
	c := kafka.NewClient(kafka.Config{Brokers: []string{s.brokerAddr}})
	defer c.Close()
	low, high, err := c.Offsets(ctx, topic)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []kafka.Message
	for p, hw := range high {
		if err := c.ReadRange(ctx, topic, p, low[p], hw, func(m kafka.Message) error {
			out = append(out, m)
			return nil
		}); err != nil {
			s.t.Fatal(err)
		}
	}
	return out
}
