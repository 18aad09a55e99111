//go:build integration

package app

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
)

// TestAdversarialRequestCost sends every shopper endpoint of the API (a
// process of its own, SQLite) bodies of about the body limit in the shapes
// a stranger can choose (whitespace, one long string, escapes, a huge
// array of segments, metadata with many members or a long array, duplicate
// keys; a validation's query string of many segments), and requires that a
// request costs the API at most a small constant times its size in
// allocations (go_memstats_alloc_bytes_total over the requests), and that
// none is answered 5xx.
func TestAdversarialRequestCost(t *testing.T) {
	brokers := kafkatest.Broker(t)
	db := burstBackend(t, "sqlite")
	list := seedCodes(t, db, 10)
	api := startAPIProcess(t, burstAPI{DB: db, Brokers: brokers, Secret: burstSecret})
	base := "http://" + api.addr
	const size = 1_000_000 // under the default 1 MiB body limit
	fill := func(prefix, unit, suffix string) string {
		n := (size - len(prefix) - len(suffix)) / len(unit)
		return prefix + strings.Repeat(unit, n) + suffix
	}
	shapes := []struct{ name, body string }{
		{"whitespace", fill(`{"userId":"u"`, " ", `}`)},
		{"long string", fill(`{"userId":"`, "a", `"}`)},
		{"long string of nulls", fill(`{"userId":"`, "null", `"}`)},                     // no null literal: the null rule reads nothing
		{"metadata nulls", fill(`{"userId":"u","metadata":{"a":[`, `null,`, `null]}}`)}, // the null rule skips metadata
		{"escapes", fill(`{"userId":"`, `\u00e9`, `"}`)},
		{"segments", fill(`{"userId":"u","segments":[`, `"a",`, `"a"]}`)},
		{"metadata members", fill(`{"userId":"u","metadata":{`, `"k":0,`, `"k":0}}`)},
		{"metadata array", fill(`{"userId":"u","metadata":{"a":[`, `0,`, `0]}}`)},
		{"duplicate keys", fill(`{`, `"userId":"u",`, `"userId":"u"}`)},
		{"orderId", fill(`{"orderId":"`, "o", `"}`)},
	}
	// A reservation to confirm, and a redemption to roll back.
	post := func(path, body string) (int, string) {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	idOf := func(body string) string {
		i := strings.Index(body, `"id":"`)
		if i < 0 {
			t.Fatalf("no id in %s", body)
		}
		rest := body[i+6:]
		return rest[:strings.IndexByte(rest, '"')]
	}
	st, b := post("/v1/codes/"+list[0]+"/reservations", `{"userId":"r"}`)
	if st != http.StatusCreated {
		t.Fatalf("reserve: %d %s", st, b)
	}
	resID := idOf(b)
	st, b = post("/v1/codes/"+list[1]+"/redemptions", `{"userId":"r2"}`)
	if st != http.StatusCreated {
		t.Fatalf("redeem: %d %s", st, b)
	}
	redID := idOf(b)
	endpoints := []struct{ method, path string }{
		{"POST", "/v1/codes/" + list[2] + "/redemptions"},
		{"POST", "/v1/codes/" + list[2] + "/reservations"},
		{"POST", "/v1/reservations/" + resID + "/confirm"},
		{"POST", "/v1/redemptions/" + redID + "/rollback"},
		{"DELETE", "/v1/reservations/" + resID},
		{"POST", "/v1/promotions/1/issuances"},
	}
	const reqs = 8
	worst := 0.0
	for _, ep := range endpoints {
		for _, sh := range shapes {
			before := allocated(t, base)
			statuses := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range reqs {
				wg.Go(func() {
					req, _ := http.NewRequest(ep.method, base+ep.path, strings.NewReader(sh.body))
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Errorf("%s %s %s: %v", ep.method, ep.path, sh.name, err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mu.Lock()
					statuses[resp.StatusCode]++
					mu.Unlock()
					if resp.StatusCode >= 500 {
						t.Errorf("%s %s with %s: %d", ep.method, ep.path, sh.name, resp.StatusCode)
					}
				})
			}
			wg.Wait()
			per := float64(allocated(t, base)-before) / reqs / float64(len(sh.body))
			worst = max(worst, per)
			t.Logf("%s %s, %s (%d bytes): %.1f × its size allocated per request; answers %v",
				ep.method, ep.path[:min(len(ep.path), 24)], sh.name, len(sh.body), per, statuses)
			if per > 12 {
				t.Errorf("%s %s with %s: %.1f × the body's size allocated per request, want ≤ 12", ep.method, ep.path, sh.name, per)
			}
		}
	}
	// A validation's query string: as many segments as the header limit
	// lets through, comma-separated or as repeated parameters, and as many
	// parameters (repeated, or each of another name) on every GET.
	queries := []struct{ name, path, q string }{
		{"segments=a,a,…", "/v1/codes/" + list[3], "segments=" + strings.Repeat("a,", 400_000)},
		{"segments=a&segments=a&…", "/v1/codes/" + list[3], strings.Repeat("segments=a&", 80_000) + "segments=a"},
		{"a&a&…", "/v1/codes/" + list[3], strings.Repeat("a&", 400_000) + "a"},
		{"1&2&3…", "/v1/codes/" + list[3], manyNames(800_000)},
		{"a&a&… on a list", "/v1/users/u/redemptions", strings.Repeat("a&", 400_000) + "a"},
		{"1&2&3… on a list", "/v1/users/u/redemptions", manyNames(800_000)},
	}
	for _, c := range queries {
		before := allocated(t, base)
		resp, err := http.Get(base + c.path + "?" + c.q)
		if err != nil {
			t.Fatalf("GET with %s: %v", c.name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		per := float64(allocated(t, base)-before) / float64(len(c.q))
		worst = max(worst, per)
		t.Logf("GET %s?%s (%d bytes): %d, %.1f × its size allocated", c.path[:min(len(c.path), 24)], c.name, len(c.q), resp.StatusCode, per)
		if resp.StatusCode >= 500 || per > 12 {
			t.Errorf("GET %s with %s (%d bytes): %d, %.1f × its size allocated, want < 500 and ≤ 12", c.path, c.name, len(c.q),
				resp.StatusCode, per)
		}
	}
	outcome := fmt.Sprintf("worst %.1f × a request's size allocated per request, no 5xx", worst)
	if t.Failed() {
		outcome = "FAILED: " + outcome
	}
	t.Logf("adversarial: request cost on every shopper endpoint [sqlite]: %s", outcome)
}

// manyNames is a query string of about n bytes of distinct empty parameters.
func manyNames(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(strconv.Itoa(i))
	}
	return b.String()
}

// allocated is the API process's go_memstats_alloc_bytes_total.
func allocated(t *testing.T, base string) int64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_alloc_bytes_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics: %q: %v", v, err)
			}
			return int64(f)
		}
	}
	t.Fatalf("metrics: no go_memstats_alloc_bytes_total")
	return 0
}
