//go:build integration

package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/kafka/kafkatest"
	"github.com/promocodes/promocodes/pkg/promo"
)

// TestAdversarialRedemptionEventsAPIKilled: the API process (production
// wiring, its redemption outbox relay inside) is SIGKILLed again and again
// while shoppers redeem, at a random moment: mid-request, mid-commit,
// between the relay's publish and its mark. A last process is then left to
// drain. As the docs promise (at-least-once, consumers de-duplicate on
// eventId): every redemption in the audit trail has its event on the topic,
// no event names a redemption the audit trail lacks, every 201 a shopper
// received is in the audit trail, and no code is used twice. Duplicates are
// counted, not refused.
func TestAdversarialRedemptionEventsAPIKilled(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			// A broker of its own: the backends seed the same code strings, so
			// on a shared topic one's events would read as the other's phantoms.
			brokers := kafkatest.Broker(t)
			const rounds, perRound = 5, 60
			db := burstBackend(t, backend)
			list := seedCodes(t, db, rounds*perRound)
			inList := map[string]bool{}
			for _, c := range list {
				inList[c] = true
			}
			spec := burstAPI{DB: db, Brokers: brokers, Secret: burstSecret}
			acked := map[string]string{} // redemption id -> code, answered 201
			var mu sync.Mutex
			killedMid := 0
			for round := range rounds {
				p := startKillableAPI(t, spec)
				var wg sync.WaitGroup
				for i := range perRound {
					code := list[round*perRound+i]
					wg.Go(func() {
						c := &http.Client{Timeout: 10 * time.Second}
						resp, err := c.Post("http://"+p.addr+"/v1/codes/"+code+"/redemptions", "application/json",
							strings.NewReader(fmt.Sprintf(`{"userId":"k-%s"}`, code)))
						if err != nil {
							return // killed under it: unknown outcome
						}
						defer resp.Body.Close()
						b, _ := io.ReadAll(resp.Body)
						if resp.StatusCode == http.StatusCreated {
							var r struct{ ID string }
							if json.Unmarshal(b, &r) == nil {
								mu.Lock()
								acked[r.ID] = code
								mu.Unlock()
							}
						} else if resp.StatusCode >= 500 {
							t.Errorf("redeem %s: %d %s", code, resp.StatusCode, b)
						}
					})
				}
				time.Sleep(time.Duration(5+rand.IntN(60)) * time.Millisecond)
				p.kill(t)
				wg.Wait()
				killedMid++
			}
			// The last process drains what the killed ones left (their leases
			// run out first: relay.Lease).
			p := startKillableAPI(t, spec)
			defer p.stop(t)
			base := "http://" + p.addr
			trail := map[string]string{} // redemption id -> code, in the audit trail
			resp, err := http.Get(base + "/v1/promotions/1/redemptions?limit=1000")
			if err != nil {
				t.Fatal(err)
			}
			var page struct {
				Redemptions []struct{ ID, Code string }
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			perCode := map[string]int{}
			for _, r := range page.Redemptions {
				trail[r.ID] = r.Code
				perCode[r.Code]++
			}
			for code, n := range perCode {
				if n > 1 {
					t.Errorf("code %s redeemed %d times (maxUsagePerCode 1)", code, n)
				}
			}
			lost := 0
			for id, code := range acked {
				if _, ok := trail[id]; !ok {
					lost++
					t.Errorf("redemption %s of %s was answered 201 but is not in the audit trail", id, code)
				}
			}
			kc := kafka.Config{Brokers: brokers, ClientID: "killed-relay-test"}
			topic := Defaults().Kafka.Topics.Redemptions
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var seen map[string]int
			var phantom []string
			deadline := time.Now().Add(90 * time.Second)
			for {
				seen, phantom = readRedemptionEvents(t, ctx, kc, topic, inList, trail)
				missing := 0
				for id := range trail {
					if seen[id] == 0 {
						missing++
					}
				}
				if missing == 0 || time.Now().After(deadline) {
					if missing > 0 {
						t.Errorf("%d of %d redemptions in the audit trail have no event on the topic after %s", missing,
							len(trail), 90*time.Second)
					}
					break
				}
				time.Sleep(time.Second)
			}
			if len(phantom) > 0 {
				t.Errorf("%d events name redemptions the audit trail lacks: %v", len(phantom), phantom[:min(5, len(phantom))])
			}
			dups := 0
			for _, n := range seen {
				dups += n - 1
			}
			outcome := fmt.Sprintf("%d kills mid-traffic; %d redemptions in the audit trail (%d answered 201, none lost), each "+
				"with its event on the topic, %d duplicate events (at-least-once), no phantom event, no code used twice",
				killedMid, len(trail), len(acked), dups)
			if t.Failed() {
				outcome = "FAILED: " + outcome
			}
			t.Logf("adversarial: redemption events with the API SIGKILLed mid-publish [%s]: %s", backend, outcome)
		})
	}
}

// readRedemptionEvents reads the whole redemptions topic: how many events
// each redemption of the audit trail has, and the redemption ids of events
// for codes of inList that the trail lacks.
func readRedemptionEvents(t *testing.T, ctx context.Context, kc kafka.Config, topic string, inList map[string]bool,
	trail map[string]string) (map[string]int, []string) {
	t.Helper()
	c := kafka.NewClient(kc)
	defer c.Close()
	seen := map[string]int{}
	var phantom []string
	low, high, err := c.Offsets(ctx, topic)
	if err != nil {
		t.Logf("offsets of %s: %v", topic, err)
		return seen, nil
	}
	for part, hi := range high {
		if err := c.ReadRange(ctx, topic, part, low[part], hi, func(m kafka.Message) error {
			var ev promo.RedemptionEvent
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				return fmt.Errorf("event %s: %w", m.Value, err)
			}
			if !inList[ev.Redemption.Code] || ev.Type != promo.EventRedeemed {
				return nil // another test's, or a rollback (none here)
			}
			if _, ok := trail[ev.Redemption.ID]; !ok {
				phantom = append(phantom, ev.Redemption.ID)
			}
			seen[ev.Redemption.ID]++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return seen, phantom
}

// killableAPI is the API in a process of its own that the test may SIGKILL.
type killableAPI struct {
	addr  string
	cmd   *exec.Cmd
	stdin io.Closer
	done  chan struct{}
}

func startKillableAPI(t *testing.T, spec burstAPI) *killableAPI {
	t.Helper()
	cmd, stdin, stdout, addr := spawnAPI(t, spec)
	p := &killableAPI{addr: addr, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *killableAPI) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill API process: %v", err)
	}
	<-p.done
}

func (p *killableAPI) stop(t *testing.T) {
	t.Helper()
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("API process did not stop within 30s")
	}
}
