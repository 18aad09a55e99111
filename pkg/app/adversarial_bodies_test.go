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

// TestAdversarialSlowloris: one client holds thousands of connections open,
// each sending its request (headers, then a declared 1 MB body) a few bytes
// at a time. Meanwhile a shopper redeems from another address: she must be
// answered 201 quickly, the API's memory must grow by a small constant per
// held connection, and when http.readTimeout cuts the slow ones nothing is
// left behind.
func TestAdversarialSlowloris(t *testing.T) {
	const conns = 4000
	raiseOpenFiles(t, conns+200)
	brokers := kafkatest.Broker(t)
	db := burstBackend(t, "sqlite")
	list := seedCodes(t, db, 10)
	t.Setenv("GOMEMLIMIT", "450MiB")
	api := startAPIProcess(t, burstAPI{DB: db, Brokers: brokers, Secret: burstSecret})
	rss0, _ := memory(t, api.pid)
	var (
		wg     sync.WaitGroup
		held   sync.WaitGroup
		mu     sync.Mutex
		counts = map[string]int{}
		stop   = make(chan struct{})
	)
	held.Add(conns)
	for i := range conns {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", api.addr, time.Minute)
			if err != nil {
				held.Done()
				mu.Lock()
				counts["dial error"]++
				mu.Unlock()
				return
			}
			defer c.Close()
			// Half of them dribble headers, half a body.
			var msg string
			if i%2 == 0 {
				msg = "POST /v1/codes/" + list[0] + "/redemptions HTTP/1.1\r\nHost: x\r\nX-Slow: "
			} else {
				msg = "POST /v1/codes/" + list[0] + "/redemptions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
					"Content-Length: 1000000\r\n\r\n{\"userId\":\"slow\","
			}
			_, _ = io.WriteString(c, msg)
			held.Done()
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := io.WriteString(c, " "); err != nil {
						mu.Lock()
						counts["cut by the server"]++
						mu.Unlock()
						return
					}
				}
			}
		})
	}
	held.Wait()
	time.Sleep(time.Second)
	_, peak := memory(t, api.pid)
	// A shopper meanwhile.
	t0 := time.Now()
	resp, err := http.Post("http://"+api.addr+"/v1/codes/"+list[1]+"/redemptions", "application/json",
		strings.NewReader(`{"userId":"shopper"}`))
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("the shopper: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || took > 2*time.Second {
		t.Errorf("the shopper was answered %d in %s, want 201 within 2s", resp.StatusCode, took)
	}
	perConn := (peak - rss0) * 1024 / conns
	t.Logf("%d slow connections held: API RSS %.0f MiB before, peak %.0f MiB (%.0f KiB per connection); the shopper: %d in %s; load average %s",
		conns, rss0, peak, perConn, resp.StatusCode, took.Round(time.Millisecond), loadAverage())
	if perConn > 64 {
		t.Errorf("%.0f KiB per held connection, want at most 64", perConn)
	}
	close(stop)
	wg.Wait()
	outcome := fmt.Sprintf("%d slow connections: %.0f KiB each, a shopper answered %d in %s", conns, perConn,
		resp.StatusCode, took.Round(time.Millisecond))
	if t.Failed() {
		outcome = "FAILED: " + outcome
	}
	t.Logf("adversarial: slowloris [sqlite]: %s", outcome)
}
