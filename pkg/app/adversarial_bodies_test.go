//go:build integration

package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
)

// TestAdversarialManyLargeBodies: one client opens many connections at once,
// each sending a redemption padded with whitespace to the body limit, as
// fast as loopback takes it. The API (a process of its own, SQLite, the
// shipped defaults) must answer every one (201/409, 429 past the address's
// look-ups in flight, or 503 with Retry-After; no 500, no connection error)
// and, run as the shipped deployment runs it (GOMEMLIMIT 450MiB), its peak
// resident memory must stay under the shipped container's 512 MiB (1,000
// connections: 1,547 MiB before request bodies past 16 KiB took a slot).
func TestAdversarialManyLargeBodies(t *testing.T) {
	const conns = 2000
	raiseOpenFiles(t, conns+200)
	brokers := kafkatest.Broker(t)
	db := burstBackend(t, "sqlite")
	list := seedCodes(t, db, 10)
	// As the shipped deployment runs it (deploy/k8s/api-deployment.yaml).
	t.Setenv("GOMEMLIMIT", "450MiB")
	api := startAPIProcess(t, burstAPI{DB: db, Brokers: brokers, Secret: burstSecret})
	rss0, _ := memory(t, api.pid)
	const size = 1_000_000
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	pad := strings.Repeat(" ", size-32) + "}" // shared: the client holds one copy
	for i := range conns {
		wg.Go(func() {
			prefix := fmt.Sprintf(`{"userId":"u%d"`, i)
			prefix += strings.Repeat(" ", 31-len(prefix))
			<-start
			c, err := net.DialTimeout("tcp", api.addr, time.Minute)
			if err != nil {
				mu.Lock()
				counts["dial error"]++
				mu.Unlock()
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
			req := "POST /v1/codes/" + list[i%len(list)] + "/redemptions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
				"Content-Length: " + strconv.Itoa(len(prefix)+len(pad)) + "\r\nConnection: close\r\n\r\n"
			// The body is sent while the answer is read: a refusal may come
			// (and the connection close) before the body is all sent.
			sent := make(chan error, 1)
			go func() {
				_, err := io.WriteString(c, req+prefix)
				if err == nil {
					_, err = io.WriteString(c, pad)
				}
				sent <- err
			}()
			key := ""
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
				key = "read error"
				if serr := <-sent; serr != nil {
					key = "send error"
				}
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				key = strconv.Itoa(resp.StatusCode)
				if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
					key = "503 without Retry-After"
				}
			}
			mu.Lock()
			counts[key]++
			mu.Unlock()
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	_, peak := memory(t, api.pid)
	t.Logf("%d connections × %d-byte bodies: %s, answers %v; API RSS %.0f MiB before, peak %.0f MiB (+%.0f MiB); load average %s",
		conns, size, time.Since(t0).Round(time.Millisecond), counts, rss0, peak, peak-rss0, loadAverage())
	for k, n := range counts {
		if k != "201" && k != "409" && k != "429" && k != "503" {
			t.Errorf("%d answers %q", n, k)
		}
	}
	outcome := fmt.Sprintf("%d connections at the body limit: answers %v, peak RSS +%.0f MiB", conns, counts, peak-rss0)
	if peak >= 512 {
		t.Errorf("peak RSS %.0f MiB, want under the shipped container's 512 MiB", peak)
	}
	if t.Failed() {
		outcome = "FAILED: " + outcome
	}
	t.Logf("adversarial: many connections with bodies at the limit [sqlite]: %s", outcome)
}
