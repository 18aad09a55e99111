//go:build integration

package redemption_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
)

// TestAdversarialHotCodeStorm is the standing adversarial suite's part for
// redemption at the floor: one hot vanity code hit at once by redemptions
// (combined into batches), redemptions with shopper fields (taken out of a
// batch), repeated and conflicting idempotency keys, reservations confirmed
// or released, rollbacks of earlier redemptions and clients that hang up
// mid-request, through one API or two APIs (two stores) on one database.
// After the storm the code's and users' counts must match the audit rows
// exactly, no answer may be a 5xx other than a 503 with Retry-After, and
// every 201 must be an audit row.
func TestAdversarialHotCodeStorm(t *testing.T) {
	cases := []struct {
		name                           string
		replicas                       int
		maxUsage, perUser, users, reqs int
	}{
		{"hot code storm, one API", 1, 60, 3, 40, 1000},
		{"hot code storm, two APIs on one database", 2, 60, 3, 40, 1000},
		{"hot code storm, per-user limits bind", 2, 10_000, 2, 12, 1000},
	}
	for _, c := range cases {
		for _, backend := range backends {
			t.Run(c.name+"/"+backend, func(t *testing.T) {
				hs := replicaHarnesses(t, backend, c.replicas)
				outcome := scenarioHotCodeStorm(t, hs, c.maxUsage, c.perUser, c.users, c.reqs)
				if t.Failed() {
					outcome = "FAILED: " + outcome
				}
				t.Logf("adversarial: %s [%s]: %s", c.name, backend, outcome)
			})
		}
	}
}

// replicaHarnesses opens n stores on one database, each with its own
// service and API server (the replicas of a deployment), as the shipped
// wiring sets them up for PostgreSQL: a pool of 8 connections (db.maxConns)
// and 128 admission slots, so that concurrent redemptions meet in the store
// (and group there when it groups them).
func replicaHarnesses(t *testing.T, backend string, n int) []*harness {
	t.Helper()
	ctx := context.Background()
	var open func() store
	switch backend {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "promocodes.db")
		open = func() store {
			st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
			if err != nil {
				t.Fatalf("sqlite.Open: %v", err)
			}
			t.Cleanup(st.Close)
			return st
		}
	case "postgres":
		dsn := postgrestest.DSN(t)
		schema := postgrestest.Schema(t)
		open = func() store {
			st, err := postgres.Open(ctx, postgres.Config{DSN: dsn, Schema: schema, MaxConns: 8})
			if err != nil {
				t.Fatalf("postgres.Open: %v", err)
			}
			t.Cleanup(st.Close)
			return st
		}
	}
	var hs []*harness
	for i := range n {
		st := open()
		if i == 0 {
			if err := st.(interface{ Migrate(context.Context) error }).Migrate(ctx); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
		}
		cfg := noGuessLimit
		cfg.AdmissionSlots = 128
		hs = append(hs, newHarnessOn(t, st, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))))
	}
	return hs
}

type stormTally struct {
	mu        sync.Mutex
	answers   map[string]int
	created   map[string]string // redemption id -> user, from 201 answers
	rolled    map[string]bool   // rolled back (200 from rollback)
	hungUp    int
	bad       []string
	keyOwners map[string]string // idempotency key -> the redemption it answered
}

func (s *stormTally) add(what string, r reply, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.answers[what+" transport error"]++
		return
	}
	s.answers[fmt.Sprintf("%s %d", what, r.status)]++
	if r.status >= 500 && (r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "") {
		s.bad = append(s.bad, fmt.Sprintf("%s: %d %s", what, r.status, r.body))
	}
}

// scenarioHotCodeStorm: see TestAdversarialHotCodeStorm. maxUsage uses of one
// code, perUser per user, users users, n requests from 48 clients.
func scenarioHotCodeStorm(t *testing.T, hs []*harness, maxUsage, perUser, users, n int) string {
	h0 := hs[0]
	code := "STORM" + fmt.Sprint(rand.IntN(1_000_000))
	pid := h0.vanity(code, maxUsage, perUser)
	tally := &stormTally{answers: map[string]int{}, created: map[string]string{}, rolled: map[string]bool{},
		keyOwners: map[string]string{}}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 48 {
		wg.Go(func() {
			for i := range work {
				h := hs[i%len(hs)]
				user := fmt.Sprintf("u%d", rand.IntN(users))
				switch k := i % 20; {
				case k < 9: // plain redemption, batched
					r, err := h.redeem(code, user, nil)
					tally.add("redeem", r, err)
					tally.record(t, r, err, user, "")
				case k < 11: // with an idempotency key from a small pool, same user for the key
					key := fmt.Sprintf("%s-key-%d", code, i%13)
					user = fmt.Sprintf("u%d", i%13)
					r, err := h.redeem(code, user, map[string]string{"Idempotency-Key": key})
					tally.add("redeem with key", r, err)
					tally.record(t, r, err, user, key)
				case k < 12: // the same key pool for another user: a conflict, never a use
					// (201 only if it came first: then the key's owner gets 409s.)
					key := fmt.Sprintf("%s-key-%d", code, i%13)
					user = fmt.Sprintf("x%d", i)
					r, err := h.redeem(code, user, map[string]string{"Idempotency-Key": key})
					tally.add("redeem with another's key", r, err)
					tally.record(t, r, err, user, key)
				case k < 14: // shopper fields: the statement path, out of the batch
					r, err := h.try("POST", "/v1/codes/"+code+"/redemptions", redeemToken,
						fmt.Sprintf(`{"userId":%q,"country":"DE"}`, user), nil)
					tally.add("redeem with shopper", r, err)
					tally.record(t, r, err, user, "")
				case k < 16: // reserve, then confirm or release
					r, err := h.reserve(code, user, "", nil)
					tally.add("reserve", r, err)
					if err != nil || r.status != http.StatusCreated {
						continue
					}
					var b reservationBody
					decode(t, r.body, &b)
					if i%3 == 0 {
						r, err := h.try("DELETE", "/v1/reservations/"+b.ID, redeemToken, "", nil)
						tally.add("release", r, err)
						continue
					}
					r, err = h.try("POST", "/v1/reservations/"+b.ID+"/confirm", redeemToken, `{"orderId":"o"}`, nil)
					tally.add("confirm", r, err)
					tally.record(t, r, err, user, "")
				case k < 18: // roll back an earlier redemption (twice, racing)
					id := tally.pick(i)
					if id == "" {
						continue
					}
					var rw sync.WaitGroup
					for range 2 {
						rw.Go(func() {
							r, err := hs[(i+1)%len(hs)].try("POST", "/v1/redemptions/"+id+"/rollback", redeemToken, `{}`, nil)
							tally.add("rollback", r, err)
							if err == nil && r.status == http.StatusOK && r.header.Get("Idempotent-Replayed") == "" {
								tally.mu.Lock()
								if tally.rolled[id] {
									t.Errorf("redemption %s rolled back twice (both not replayed)", id)
								}
								tally.rolled[id] = true
								tally.mu.Unlock()
							}
						})
					}
					rw.Wait()
				default: // a client that hangs up mid-request
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rand.IntN(20))*time.Millisecond)
					req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+"/v1/codes/"+code+"/redemptions",
						stringsReader(fmt.Sprintf(`{"userId":%q}`, user)))
					req.Header.Set("Authorization", "Bearer "+redeemToken)
					req.Header.Set("Content-Type", "application/json")
					resp, err := h.client.Do(req)
					if err != nil {
						tally.mu.Lock()
						tally.hungUp++
						tally.mu.Unlock()
					} else {
						rep := readReply(resp)
						tally.add("redeem, hung up", rep, nil)
						tally.record(t, rep, nil, user, "")
					}
					cancel()
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	// Let the hung-up requests finish on the server.
	time.Sleep(500 * time.Millisecond)
	for _, h := range hs {
		waitIdle(t, h)
	}
	return checkStorm(t, h0, code, pid, maxUsage, perUser, tally)
}

func (s *stormTally) record(t *testing.T, r reply, err error, user, key string) {
	if err != nil || r.status != http.StatusCreated {
		return
	}
	var red struct {
		ID     string `json:"id"`
		UserID string `json:"userId"`
	}
	decode(t, r.body, &red)
	s.mu.Lock()
	defer s.mu.Unlock()
	if red.UserID != user {
		t.Errorf("redemption %s answered for user %q, asked for %q", red.ID, red.UserID, user)
	}
	if key != "" {
		if prev, ok := s.keyOwners[key]; ok && prev != red.ID {
			t.Errorf("key %s answered two redemptions: %s and %s", key, prev, red.ID)
		}
		s.keyOwners[key] = red.ID
	}
	s.created[red.ID] = user
}

func (s *stormTally) pick(i int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.created {
		if !s.rolled[id] && i%2 == 0 {
			return id
		}
	}
	return ""
}

// waitIdle waits until h's service has no redemption in flight (the
// requests whose clients hung up).
func waitIdle(t *testing.T, h *harness) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := h.try("GET", "/v1/codes/NOSUCHCODE1", redeemToken, "", nil)
		if err == nil && r.status != http.StatusServiceUnavailable {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkStorm checks the invariants on the database after a storm.
func checkStorm(t *testing.T, h *harness, code, pidText string, maxUsage, perUser int, tally *stormTally) string {
	pid, err := promo.ParseID(pidText)
	if err != nil {
		t.Fatalf("promotion id %q: %v", pidText, err)
	}
	rows := allRedemptions(t, h, pid)
	live, perUserRows := 0, map[string]int{}
	ids := map[string]promo.Redemption{}
	for _, r := range rows {
		ids[r.ID] = r
		if r.RolledBackAt == nil {
			live++
			perUserRows[r.UserID]++
		}
	}
	st, err := h.st.CodeState(h.ctx, code, "")
	if err != nil {
		t.Fatalf("CodeState: %v", err)
	}
	if st.Used != live {
		t.Errorf("code used %d, live audit rows %d: must be equal", st.Used, live)
	}
	if st.Used > maxUsage {
		t.Errorf("code used %d > maxUsagePerCode %d", st.Used, maxUsage)
	}
	for u, n := range perUserRows {
		if n > perUser {
			t.Errorf("user %s has %d live redemptions > perUserLimit %d", u, n, perUser)
		}
		if perUser == 1<<30 { // unlimited: no allowance is kept
			continue
		}
		us, err := h.st.CodeState(h.ctx, code, u)
		if err != nil {
			t.Fatalf("CodeState(%s): %v", u, err)
		}
		if us.UserUsed != n {
			t.Errorf("user %s: allowance counts %d uses, live audit rows %d", u, us.UserUsed, n)
		}
	}
	tally.mu.Lock()
	defer tally.mu.Unlock()
	for id, u := range tally.created {
		r, ok := ids[id]
		if !ok {
			t.Errorf("201 for redemption %s (user %s) without an audit row", id, u)
		} else if r.UserID != u {
			t.Errorf("audit row %s is user %s's, answered to %s", id, r.UserID, u)
		}
	}
	// Rows that no 201 reported can only come from clients that hung up,
	// or from confirmations whose answer was a 201 as well (counted).
	if extra := len(rows) - len(tally.created); extra > tally.hungUp {
		t.Errorf("%d audit rows, %d answered 201, %d clients hung up: %d rows nobody was told of",
			len(rows), len(tally.created), tally.hungUp, extra)
	}
	for id := range tally.rolled {
		if r, ok := ids[id]; !ok || r.RolledBackAt == nil {
			t.Errorf("rollback of %s answered 200, audit row not rolled back", id)
		}
	}
	for _, b := range tally.bad {
		t.Errorf("bad answer: %s", b)
	}
	return fmt.Sprintf("used %d of %d, %d audit rows (%d live), %d users, %d hung up; answers %v",
		st.Used, maxUsage, len(rows), live, len(perUserRows), tally.hungUp, tally.answers)
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func readReply(resp *http.Response) reply {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestAdversarialSpreadStorm: a few users redeem, reserve and confirm,
// and roll back across many codes of one promotion at once (their
// allowance rows shared by every path), while one of its codes is hot
// (combined batches): every lock order of the one-statement functions,
// the statement path and group commit meets every other. No answer may be
// a 5xx other than a 503 with Retry-After, and every code's and user's
// count must match the audit rows.
func TestAdversarialSpreadStorm(t *testing.T) {
	cases := []struct {
		name                             string
		ncodes, maxUsage, perUser, users int
	}{
		{"spread storm, shared users across codes", 40, 1000, 1000, 6},
		{"spread storm, every limit binding", 40, 3, 4, 12},
	}
	for _, c := range cases {
		for _, backend := range backends {
			t.Run(c.name+"/"+backend, func(t *testing.T) {
				hs := replicaHarnesses(t, backend, 2)
				outcome := scenarioSpreadStorm(t, hs, c.ncodes, c.maxUsage, c.perUser, c.users, 1500)
				if t.Failed() {
					outcome = "FAILED: " + outcome
				}
				t.Logf("adversarial: %s [%s]: %s", c.name, backend, outcome)
			})
		}
	}
}

func scenarioSpreadStorm(t *testing.T, hs []*harness, ncodes, maxUsage, perUser, users, n int) string {
	h0 := hs[0]
	p, list := h0.seed(promotionSpec{n: ncodes, maxUsage: maxUsage, perUser: perUser})
	tally := &stormTally{answers: map[string]int{}, created: map[string]string{}, rolled: map[string]bool{},
		keyOwners: map[string]string{}}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 48 {
		wg.Go(func() {
			for i := range work {
				h := hs[i%len(hs)]
				user := fmt.Sprintf("u%d", rand.IntN(users))
				code := list[rand.IntN(len(list))]
				switch k := i % 10; {
				case k < 3: // spread redemption
					r, err := h.redeem(code, user, nil)
					tally.add("redeem", r, err)
					tally.record(t, r, err, user, "")
				case k < 4: // with a key from a small pool (one user per key, any code: a retry elsewhere conflicts)
					key := fmt.Sprintf("spread-key-%d", i%7)
					user = fmt.Sprintf("u%d", i%7%users)
					r, err := h.redeem(code, user, map[string]string{"Idempotency-Key": key})
					tally.add("redeem with key", r, err)
					tally.record(t, r, err, user, key)
				case k < 5: // the hot code
					r, err := h.redeem(list[0], user, nil)
					tally.add("redeem hot", r, err)
					tally.record(t, r, err, user, "")
				case k < 6: // statement path
					r, err := h.try("POST", "/v1/codes/"+code+"/redemptions", redeemToken,
						fmt.Sprintf(`{"userId":%q,"country":"DE"}`, user), nil)
					tally.add("redeem with shopper", r, err)
					tally.record(t, r, err, user, "")
				case k < 8: // reserve, confirm
					r, err := h.reserve(code, user, "", nil)
					tally.add("reserve", r, err)
					if err != nil || r.status != http.StatusCreated {
						continue
					}
					var b reservationBody
					decode(t, r.body, &b)
					r, err = hs[(i+1)%len(hs)].try("POST", "/v1/reservations/"+b.ID+"/confirm", redeemToken, `{"orderId":"o"}`, nil)
					tally.add("confirm", r, err)
					tally.record(t, r, err, user, "")
				default: // roll back an earlier one
					if id := tally.pick(i); id != "" {
						r, err := h.try("POST", "/v1/redemptions/"+id+"/rollback", redeemToken, `{}`, nil)
						tally.add("rollback", r, err)
						if err == nil && r.status == http.StatusOK && r.header.Get("Idempotent-Replayed") == "" {
							tally.mu.Lock()
							tally.rolled[id] = true
							tally.mu.Unlock()
						}
					}
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	rows := allRedemptions(t, h0, p.ID)
	liveByCode, liveByUser := map[string]int{}, map[string]int{}
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r.ID] = true
		if r.RolledBackAt == nil {
			liveByCode[r.Code]++
			liveByUser[r.UserID]++
		}
	}
	total := 0
	for _, c := range list {
		canon, err := codes.Canonical(c)
		if err != nil {
			t.Fatal(err)
		}
		st, err := h0.st.CodeState(h0.ctx, canon, "")
		if err != nil {
			t.Fatalf("CodeState: %v", err)
		}
		total += st.Used
		if st.Used != liveByCode[canon] || st.Used > maxUsage {
			t.Errorf("code %s used %d, live audit rows %d, maximum %d", canon, st.Used, liveByCode[canon], maxUsage)
		}
	}
	canon0, _ := codes.Canonical(list[0])
	for u, n := range liveByUser {
		st, err := h0.st.CodeState(h0.ctx, canon0, u)
		if err != nil {
			t.Fatalf("CodeState: %v", err)
		}
		if st.UserUsed != n || n > perUser {
			t.Errorf("user %s: allowance counts %d, live audit rows %d, limit %d", u, st.UserUsed, n, perUser)
		}
	}
	tally.mu.Lock()
	defer tally.mu.Unlock()
	for id := range tally.created {
		if !ids[id] {
			t.Errorf("201 for %s without an audit row", id)
		}
	}
	if len(rows) != len(tally.created) {
		t.Errorf("%d audit rows, %d answered 201", len(rows), len(tally.created))
	}
	for _, b := range tally.bad {
		t.Errorf("bad answer: %s", b)
	}
	return fmt.Sprintf("%d uses over %d codes, %d audit rows, answers %v", total, len(list), len(rows), tally.answers)
}

// allRedemptions is every audit row of the promotion.
func allRedemptions(t *testing.T, h *harness, pid int64) []promo.Redemption {
	var rows []promo.Redemption
	err := h.st.ExportRedemptions(h.ctx, promo.RedemptionFilter{PromotionID: pid}, func(r promo.Redemption) error {
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		t.Fatalf("ExportRedemptions: %v", err)
	}
	return rows
}

// TestAdversarialExpiryRaces: reservations of 1s on a code of 5 uses are
// confirmed right around their expiry, released, or left to expire, while
// others reserve and redeem the uses they free, through two APIs on one
// database: a late confirmation may use a free use, never one another
// holds; the code never passes its maximum and its count matches the
// audit rows.
func TestAdversarialExpiryRaces(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			hs := replicaHarnesses(t, backend, 2)
			outcome := scenarioExpiryRaces(t, hs, 5, 4*time.Second)
			if t.Failed() {
				outcome = "FAILED: " + outcome
			}
			t.Logf("adversarial: reservation expiry against confirm, release and redeem [%s]: %s", backend, outcome)
		})
	}
}

func scenarioExpiryRaces(t *testing.T, hs []*harness, maxUsage int, d time.Duration) string {
	h0 := hs[0]
	code := "EXPIRY" + fmt.Sprint(rand.IntN(1_000_000))
	pid := h0.vanity(code, maxUsage, 0)
	tally := &stormTally{answers: map[string]int{}, created: map[string]string{}, rolled: map[string]bool{},
		keyOwners: map[string]string{}}
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		end  = time.Now().Add(d)
	)
	for range 32 {
		wg.Go(func() {
			for time.Now().Before(end) {
				i := int(next.Add(1))
				h := hs[i%len(hs)]
				user := fmt.Sprintf("u%d", i)
				if i%4 == 0 {
					r, err := h.redeem(code, user, nil)
					tally.add("redeem", r, err)
					tally.record(t, r, err, user, "")
					continue
				}
				r, err := h.reserve(code, user, "1s", nil)
				tally.add("reserve", r, err)
				if err != nil || r.status != http.StatusCreated {
					time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
					continue
				}
				var b reservationBody
				decode(t, r.body, &b)
				time.Sleep(time.Until(b.ExpiresAt) + time.Duration(rand.IntN(40)-20)*time.Millisecond)
				other := hs[(i+1)%len(hs)]
				switch i % 4 {
				case 1, 2:
					r, err := other.try("POST", "/v1/reservations/"+b.ID+"/confirm", redeemToken, `{"orderId":"o"}`, nil)
					tally.add("confirm at expiry", r, err)
					tally.record(t, r, err, user, "")
				case 3:
					r, err := other.try("DELETE", "/v1/reservations/"+b.ID, redeemToken, "", nil)
					tally.add("release at expiry", r, err)
				}
			}
		})
	}
	wg.Wait()
	return checkStorm(t, h0, code, pid, maxUsage, 1<<30, tally)
}
