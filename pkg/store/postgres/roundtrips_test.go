package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/store/postgres"
	"github.com/promocodes/promocodes/pkg/store/postgres/postgrestest"
	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// tracer records the statements a store sends: each one a round trip.
type tracer struct {
	mu    sync.Mutex
	stmts []string
}

func (t *tracer) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stmts = append(t.stmts, s)
}

func (t *tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t.add(strings.Fields(d.SQL)[0])
	return ctx
}
func (t *tracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (t *tracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	t.add("COPY " + d.TableName.Sanitize())
	return ctx
}
func (t *tracer) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

func (t *tracer) take() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.Join(t.stmts, " ")
	t.stmts = nil
	return s
}

// A chunk on the fast path is five round trips: BEGIN, the progress UPDATE,
// the binary COPY of its codes, the commit gate's SELECT, COMMIT; a
// collision adds the rolled-back attempt and the staging path.
func TestChunkCommitRoundTrips(t *testing.T) {
	ctx := context.Background()
	tr := &tracer{}
	s, err := postgres.OpenTuned(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t)},
		func(c *pgxpool.Config) { c.ConnConfig.Tracer = tr })
	s = storetest.Migrated(t, s, err)
	p, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "rt",
		Kind: promo.KindGenerated, CodeCount: 4, MaxUsagePerCode: 1, CounterName: "rt"}, BatchSize: 4, SeqLimit: 1 << 40})
	if err != nil {
		t.Fatalf("CreatePromotion: %v", err)
	}
	if _, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "v",
		Kind: promo.KindVanity, VanityCode: "RTDD", MaxUsagePerCode: 1}}); err != nil {
		t.Fatalf("CreatePromotion vanity: %v", err)
	}
	ref := promo.BatchRef{PromotionID: p.ID}
	tr.take()
	if _, err := s.CommitChunk(ctx, promo.Chunk{Batch: ref, Count: 2, CodeLen: 4, Codes: []byte("RTAARTBB")}); err != nil {
		t.Fatalf("CommitChunk: %v", err)
	}
	if got, want := tr.take(), `begin UPDATE COPY "codes" SELECT commit`; got != want {
		t.Errorf("fast path statements: %s, want %s", got, want)
	}
	// RTDD exists (the vanity code): the COPY fails, the chunk is redone
	// through the staging table; RTDD's replacement is reserved and inserted.
	if _, err := s.CommitChunk(ctx, promo.Chunk{Batch: ref, From: 2, Count: 2, CodeLen: 4, Codes: []byte("RTCCRTDD"),
		CounterName: "rt", Replace: func(dst []byte, seq uint64) []byte { return append(dst, "RTEE"...) }}); err != nil {
		t.Fatalf("CommitChunk with a collision: %v", err)
	}
	if got, want := tr.take(), `begin UPDATE COPY "codes" rollback begin UPDATE CREATE COPY "codes_staging" INSERT INSERT INSERT SELECT commit`; got != want {
		t.Errorf("collision statements: %s, want %s", got, want)
	}
	t.Logf("statements per chunk: fast path 5 (BEGIN, UPDATE, COPY, SELECT, COMMIT)")
}

// A redemption with an Idempotency-Key and a per-user limit is one round
// trip: one statement in autocommit (redeem_code: the key's claim, the code's
// conditional UPDATE, its live holds, the allowance's upsert, its live holds,
// the audit row, the event). A refusal is one round trip too; a replay of a
// recorded key reads the record and the redemption after it.
func TestRedemptionRoundTrips(t *testing.T) {
	ctx := context.Background()
	tr := &tracer{}
	s, err := postgres.OpenTuned(ctx, postgres.Config{DSN: postgrestest.DSN(t), Schema: postgrestest.Schema(t)},
		func(c *pgxpool.Config) { c.ConnConfig.Tracer = tr })
	s = storetest.Migrated(t, s, err)
	if _, _, err := s.CreatePromotion(ctx, promo.NewPromotion{Promotion: promo.Promotion{Name: "v",
		Kind: promo.KindVanity, VanityCode: "RTRD", MaxUsagePerCode: 10, PerUserLimit: 2}}); err != nil {
		t.Fatalf("CreatePromotion: %v", err)
	}
	tr.take()
	out, err := s.Redeem(ctx, promo.RedeemRequest{ID: "r1", EventID: "e1", Code: "RTRD", UserID: "u",
		IdempotencyKey: "k1", RequestHash: "h", Now: time.Now()})
	if err != nil || out.Refused != "" {
		t.Fatalf("Redeem = %+v, %v", out, err)
	}
	got := tr.take()
	if want := `SELECT`; got != want {
		t.Errorf("redemption statements: %s, want %s", got, want)
	}
	t.Logf("statements per redemption: %d (%s)", len(strings.Fields(got)), got)
	out, err = s.Redeem(ctx, promo.RedeemRequest{ID: "r2", EventID: "e2", Code: "RTRD", UserID: "u",
		IdempotencyKey: "k1", RequestHash: "h", Now: time.Now()})
	if err != nil || !out.Replayed || out.Redemption.ID != "r1" {
		t.Fatalf("Redeem again with k1 = %+v, %v; want the replay of r1", out, err)
	}
	if got, want := tr.take(), `SELECT SELECT SELECT`; got != want {
		t.Errorf("replay statements: %s, want %s", got, want)
	}
	for i, want := range []promo.Reason{"", promo.ReasonUserLimitReached} {
		out, err = s.Redeem(ctx, promo.RedeemRequest{ID: "r3" + strconv.Itoa(i), EventID: "e3" + strconv.Itoa(i),
			Code: "RTRD", UserID: "u", Now: time.Now()})
		if err != nil || out.Refused != want {
			t.Fatalf("Redeem %d more = %+v, %v; want refused %q", i+1, out, err, want)
		}
	}
	if got, want := tr.take(), `SELECT SELECT`; got != want {
		t.Errorf("redemption and refusal statements: %s, want %s", got, want)
	}
	// A combined redemption of n requests for one code is one statement too.
	var batch []promo.RedeemRequest
	for i := range 5 {
		batch = append(batch, promo.RedeemRequest{ID: "b" + strconv.Itoa(i), EventID: "eb" + strconv.Itoa(i), Code: "RTRD",
			UserID: "w" + strconv.Itoa(i%3), Now: time.Now()})
	}
	res, err := s.RedeemBatch(ctx, batch)
	if err != nil || len(res) != 5 || res[0].Outcome.Refused != "" || res[3].Outcome.Refused != "" {
		t.Fatalf("RedeemBatch = %+v, %v", res, err)
	}
	if got, want := tr.take(), `SELECT`; got != want {
		t.Errorf("combined redemption statements: %s, want %s", got, want)
	}
}
