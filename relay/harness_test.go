package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/promocodes/promocodes/pkg/kafka"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/sqlite"
	"github.com/promocodes/promocodes/relay"
)

// backends lists the databases the relay tests run on. PostgreSQL needs
// PROMOCODES_TEST_POSTGRES_DSN (or Docker); without it its subtests skip
// saying why.
var backends = []string{"sqlite", "postgres"}

// store is what the tests need of a real store: both outboxes, and enough
// to fill them (promotions write batch rows, redemptions and rollbacks
// write events).
type store interface {
	relay.BatchStore
	relay.EventStore
	CreatePromotion(ctx context.Context, np promo.NewPromotion) (promo.Promotion, bool, error)
	Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error)
	Rollback(ctx context.Context, req promo.RollbackRequest) (promo.Redemption, bool, error)
}

// onBackends runs fn on a fresh, migrated database of each backend.
func onBackends(t *testing.T, fn func(t *testing.T, backend string, st store)) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { fn(t, backend, openStore(t, backend)) })
	}
}

func openStore(t *testing.T, backend string) store {
	t.Helper()
	ctx := context.Background()
	var (
		st interface {
			store
			Migrate(ctx context.Context) error
			Close()
		}
		err error
	)
	if backend == "sqlite" {
		st, err = sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "promocodes.db")})
	} else { // skips with the reason when there is no server
		st, err = postgres.Open(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t), MaxConns: 4})
	}
	if err != nil {
		t.Fatalf("open %s: %v", backend, err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", backend, err)
	}
	return st
}

// generated creates a generated promotion of count codes in batches of
// size: ceil(count/size) rows in the batch outbox.
func generated(t *testing.T, st store, name string, count, size int64) promo.Promotion {
	t.Helper()
	p, _, err := st.CreatePromotion(context.Background(), promo.NewPromotion{
		Promotion: promo.Promotion{Name: name, Kind: promo.KindGenerated, CodeCount: count,
			Format:          &promo.Format{Charset: "alnum", Length: 12},
			MaxUsagePerCode: 1, PerUserLimit: 1, CounterName: "relay/" + name},
		BatchSize: size, SeqLimit: math.MaxInt64})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return p
}

// redeemed redeems a new vanity code n times (a user each) and returns the
// redemption ids: n events in the event outbox.
func redeemed(t *testing.T, st store, code string, n int) []string {
	t.Helper()
	ctx := context.Background()
	if _, _, err := st.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "vanity " + code,
		Kind: promo.KindVanity, CodeCount: 1, VanityCode: code, MaxUsagePerCode: n, PerUserLimit: 1}}); err != nil {
		t.Fatalf("create vanity %s: %v", code, err)
	}
	ids := make([]string, n)
	for i := range n {
		out, err := st.Redeem(ctx, promo.RedeemRequest{ID: uuid.Must(uuid.NewV7()).String(), EventID: uuid.NewString(),
			Code: code, UserID: fmt.Sprintf("u%d", i), Now: time.Now().UTC()})
		if err != nil || out.Refused != "" {
			t.Fatalf("redeem %s for u%d: %v %s", code, i, err, out.Refused)
		}
		ids[i] = out.Redemption.ID
	}
	return ids
}

// rollBack rolls redemption id back: one more event.
func rollBack(t *testing.T, st store, id string) {
	t.Helper()
	if _, _, err := st.Rollback(context.Background(), promo.RollbackRequest{RedemptionID: id, EventID: uuid.NewString(),
		Reason: "order cancelled", Now: time.Now().UTC()}); err != nil {
		t.Fatalf("rollback %s: %v", id, err)
	}
}

// outbox is one of the two sources over a test store, with what the tests
// need to fill it and to tell its events apart.
type outbox struct {
	name  string
	src   func(st store) relay.Source[any]
	fill  func(t *testing.T, st store, tag string) int // writes rows, returns how many events they make
	ident func(t *testing.T, m kafka.Message) string   // the event's identity
}

// outboxes are the API's two: batch events and redemption events.
var outboxes = []outbox{
	{name: "batches", src: func(st store) relay.Source[any] { return anySource(relay.Batches(st, "batches-topic")) },
		fill: func(t *testing.T, st store, tag string) int {
			generated(t, st, tag, 2500, 1000)
			return 3
		},
		ident: func(t *testing.T, m kafka.Message) string {
			ev, err := promo.DecodeEvent(m.Value)
			if err != nil {
				t.Fatalf("batch event %s: %v", m.Value, err)
			}
			return ev.Key()
		}},
	{name: "redemptions", src: func(st store) relay.Source[any] {
		return anySource(relay.RedemptionEvents(st, "redemptions-topic"))
	},
		fill: func(t *testing.T, st store, tag string) int {
			ids := redeemed(t, st, "RELAY"+tag, 6)
			rollBack(t, st, ids[0])
			return 7
		},
		ident: func(t *testing.T, m kafka.Message) string {
			var ev promo.RedemptionEvent
			if err := json.Unmarshal(m.Value, &ev); err != nil || ev.EventID == "" {
				t.Fatalf("redemption event %s: %v", m.Value, err)
			}
			return ev.EventID
		}},
}

// anySource erases a source's row type, so that one test runs on both.
func anySource[R any](s relay.Source[R]) relay.Source[any] {
	out := relay.Source[any]{Name: s.Name, Oldest: s.Oldest, Prune: s.Prune, Retention: s.Retention,
		Claim: func(ctx context.Context, limit int, lease time.Duration) ([]any, error) {
			rows, err := s.Claim(ctx, limit, lease)
			out := make([]any, len(rows))
			for i, r := range rows {
				out[i] = r
			}
			return out, err
		},
		Encode: func(r any) (kafka.Message, error) { return s.Encode(r.(R)) },
		Mark: func(ctx context.Context, rows []any) error {
			typed := make([]R, len(rows))
			for i, r := range rows {
				typed[i] = r.(R)
			}
			return s.Mark(ctx, typed)
		}}
	return out
}

// shortLease cuts every claim's lease to a millisecond, so a test need not
// wait out the real lease to see what another replica claims once a failed
// relay's lease ended.
func shortLease(s relay.Source[any]) relay.Source[any] {
	claim := s.Claim
	s.Claim = func(ctx context.Context, limit int, _ time.Duration) ([]any, error) {
		return claim(ctx, limit, time.Millisecond)
	}
	return s
}

// failingMarks makes the source's Mark fail its first n calls, as a
// database that drops the connection would.
func failingMarks(s relay.Source[any], n int) relay.Source[any] {
	mark := s.Mark
	var left atomic.Int64
	left.Store(int64(n))
	s.Mark = func(ctx context.Context, rows []any) error {
		if left.Add(-1) >= 0 {
			return errors.New("connection reset by peer")
		}
		return mark(ctx, rows)
	}
	return s
}

// flakyProducer stands in for the broker: it keeps what it acknowledged,
// and while fail is set it writes nothing and returns fail, as a broker
// outage would.
type flakyProducer struct {
	mu   sync.Mutex
	fail error
	got  []kafka.Message
}

func (p *flakyProducer) Publish(_ context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.got = append(p.got, msgs...)
	return nil
}

func (p *flakyProducer) setFail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
}

func (p *flakyProducer) messages() []kafka.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]kafka.Message(nil), p.got...)
}

// eachOnce checks that msgs hold want distinct events of ob, each exactly
// once.
func eachOnce(t *testing.T, ob outbox, msgs []kafka.Message, want int) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range msgs {
		seen[ob.ident(t, m)]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s event %s published %d times", ob.name, id, n)
		}
	}
	if len(seen) != want {
		t.Errorf("%d distinct %s events published, want %d", len(seen), ob.name, want)
	}
}
