//go:build integration

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// startAPIAt starts one more API process and returns its base URL (the
// stack's own API, s.apiURL, stays what it was).
func (s *stack) startAPIAt(name string, extra ...string) string {
	s.t.Helper()
	addr := freePort(s.t)
	s.start(name, append([]string{"PROMOCODES_HTTP_ADDR=" + addr}, extra...), "api")
	url := "http://" + addr
	waitHTTP(s.t, url+"/readyz", 30*time.Second)
	return url
}

// Two API replicas publish the same outbox: each batch event reaches the
// batches topic once in the normal case (claims with a lease), however the
// creates are spread over the two.
func TestTwoAPIProcessesPublishEachBatchEventOnce(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	small := "PROMOCODES_API_BATCHCODECOUNT=100" // many batches per promotion: long outbox rounds
	urls := []string{s.startAPIAt("api-1", small), s.startAPIAt("api-2", small)}
	const promotions, codes = 12, 20_000 // 200 batches each
	var wg sync.WaitGroup
	ids := make([]string, promotions)
	for i := 0; i < promotions; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := urls[i%2]
			body := fmt.Sprintf(`{"name":"replicas-%d","codeCount":%d,"format":{"charset":"alnum","length":10}}`, i, codes)
			req, _ := http.NewRequest("POST", url+"/v1/promotions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("create on %s: %d", url, resp.StatusCode)
			}
			ids[i] = resp.Header.Get("Location")
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	const want = promotions * codes / 100
	deadline := time.Now().Add(time.Minute)
	n := 0
	for time.Now().Before(deadline) {
		if n = len(s.events(s.topics.Batches)); n >= want {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a late duplicate would show up by now (both outboxes poll every second)
	keys := map[string]int{}
	for _, m := range s.events(s.topics.Batches) {
		keys[string(m.Key)]++
	}
	dups := 0
	for k, c := range keys {
		if c > 1 {
			dups++
			if dups <= 5 {
				t.Errorf("batch %s published %d times", k, c)
			}
		}
	}
	if len(keys) != want || dups != 0 {
		t.Fatalf("%d distinct batch events (want %d), %d published more than once", len(keys), want, dups)
	}
	t.Logf("%d promotions created over 2 API processes: %d batch events, each published once", promotions, len(keys))
}

// A generator started with another codes.secret than the API's refuses the
// promotion's batches with a clear error and stops; nothing is written,
// committed or parked, and a generator with the right key then completes the
// promotion exactly.
func TestGeneratorWithAnotherKeyRefusesAndParksNothing(t *testing.T) {
	s := newStack(t)
	s.startBroker()
	s.startAPI()
	wrong := s.startGenerator("generator-wrong-key", "PROMOCODES_CODES_SECRET=another-secret-0123456789abcdef-0123456789")
	id := s.create(100_000)
	select {
	case <-wrong.done:
	case <-time.After(45 * time.Second):
		t.Fatal("the generator with the wrong key is still running")
	}
	if wrong.err == nil {
		t.Fatal("the generator with the wrong key exited 0")
	}
	logText, _ := os.ReadFile(wrong.log)
	if !strings.Contains(string(logText), "codes.secret differs from the key the promotion was created under") {
		t.Fatalf("its log does not say why:\n%s", tail(string(logText), 20))
	}
	if rows, _ := s.rowCount(id); rows != 0 {
		t.Fatalf("%d codes written under the wrong key", rows)
	}
	for _, topic := range []string{s.topics.Error, s.topics.Dead, s.topics.Retry} {
		if n := len(s.events(topic)); n != 0 {
			t.Fatalf("%s holds %d events; the refusal must park nothing", topic, n)
		}
	}
	t.Logf("wrong-key generator: %v; %s", wrong.err, lastMatching(string(logText), "codes.secret differs"))
	s.startGenerator("generator")
	s.waitCompleted(id, 2*time.Minute)
	s.assertExact(id, 100_000)
}

func lastMatching(text, sub string) string {
	lines := strings.Split(text, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			return lines[i]
		}
	}
	return ""
}

// probeBody GETs url and returns the status code and body ("" when nothing
// answers).
func probeBody(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The API and a generator started while the database and the broker are
// down do not exit: they stay up (healthz 200), not ready (readyz 503 naming
// what they wait for), and carry on once both are there.
func TestServicesWaitForDatabaseAndBrokerDownAtStart(t *testing.T) {
	s := newStack(t)
	proxy, viaProxy := s.dbProxy()
	proxy.Cut()
	apiAddr, genAddr := freePort(t), freePort(t)
	api := s.start("api", []string{"PROMOCODES_HTTP_ADDR=" + apiAddr, viaProxy}, "api")
	gen := s.start("generator", []string{"PROMOCODES_HTTP_ADDR=" + genAddr, viaProxy}, "generator")
	s.apiURL = "http://" + apiAddr
	expect := func(what, waitingFor string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			for _, p := range []*proc{api, gen} {
				select {
				case <-p.done:
					t.Fatalf("%s exited (%v) while %s", p.name, p.err, what)
				default:
				}
			}
			ok := true
			for _, addr := range []string{apiAddr, genAddr} {
				hc, _ := probeBody("http://" + addr + "/healthz")
				rc, body := probeBody("http://" + addr + "/readyz")
				ok = ok && hc == http.StatusOK && rc == http.StatusServiceUnavailable && strings.Contains(body, waitingFor)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				_, body := probeBody("http://" + apiAddr + "/readyz")
				t.Fatalf("%s: probes do not say alive and waiting for %q (api readyz %q)", what, waitingFor, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	expect("the database is down", "database", 20*time.Second)
	time.Sleep(5 * time.Second) // several failed attempts: still up, still waiting
	expect("the database is still down", "database", 5*time.Second)
	proxy.Restore()
	expect("the broker is down", "kafka", time.Minute)
	s.startBroker()
	waitHTTP(t, "http://"+apiAddr+"/readyz", time.Minute)
	waitHTTP(t, "http://"+genAddr+"/readyz", time.Minute)
	id := s.create(100_000)
	s.waitCompleted(id, 2*time.Minute)
	s.assertExact(id, 100_000)
}
