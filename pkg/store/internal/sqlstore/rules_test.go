package sqlstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/promocodes/promocodes/pkg/promo"
)

func TestTruncateError(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int // length
	}{
		{"short", 5},
		{strings.Repeat("a", 2000), 1024},
		{strings.Repeat("é", 1000), 1024},               // 2-byte runes: 512 fit exactly
		{"x" + strings.Repeat("é", 1000), 1023},         // the 1024th byte would split a rune
		{"xy" + strings.Repeat("€", 1000), 1022},        // 3-byte runes
		{"bad \xff\xfe utf-8", len("bad \uFFFD utf-8")}, // invalid bytes replaced once
	} {
		got := truncateError(tc.in)
		if len(got) != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncateError(%.20q...) has %d bytes (valid %v), want %d", tc.in, len(got), utf8.ValidString(got), tc.want)
		}
	}
}

func TestCheckReservation(t *testing.T) {
	if err := checkReservation(600, 400, 1000); err != nil {
		t.Errorf("exact fit: %v", err)
	}
	err := checkReservation(600, 401, 1000)
	if !promo.Is(err, promo.ECapacity) || !strings.Contains(err.Error(), "only 400 more") {
		t.Errorf("over the limit: %v", err)
	}
	if err := checkReservation(1200, 1, 1000); !strings.Contains(err.Error(), "only 0 more") {
		t.Errorf("past the limit: %v", err)
	}
}

func TestBatchCount(t *testing.T) {
	for _, tc := range []struct {
		n, size int64
		want    int
	}{{10_000_000, 50_000, 200}, {120_001, 50_000, 3}, {1, 50_000, 1}, {50_000, 50_000, 1}} {
		if got := batchCount(tc.n, tc.size); got != tc.want {
			t.Errorf("batchCount(%d, %d) = %d, want %d", tc.n, tc.size, got, tc.want)
		}
	}
}

// noDB is a pool that refuses every statement: a Core on it can only answer
// from what it checks itself or from a dialect hook.
type noDB struct{}

func (noDB) Exec(context.Context, string, ...any) (int64, error) { return 0, errNoDB }
func (noDB) Query(context.Context, string, ...any) (Rows, error) { return nil, errNoDB }
func (noDB) QueryRow(context.Context, string, ...any) Row        { return nil }
func (noDB) Begin(context.Context) (*SQLTx, error)               { return nil, errNoDB }
func (noDB) Ping(context.Context) error                          { return errNoDB }

var errNoDB = errors.New("no database")

// Dialect.Redeem replaces the statement-by-statement redemption: a checked
// request goes to the hook with the write pool, and its outcome is the
// store's; a request the store refuses never reaches it.
func TestRedeemHook(t *testing.T) {
	var got []promo.RedeemRequest
	d := Dialect[*SQLTx]{Redeem: func(_ context.Context, db DB[*SQLTx], req promo.RedeemRequest) (promo.RedeemOutcome, error) {
		if _, ok := db.(noDB); !ok {
			t.Errorf("the hook got %T, want the write pool", db)
		}
		got = append(got, req)
		return promo.RedeemOutcome{Redemption: promo.Redemption{ID: req.ID}}, nil
	}}
	c := New(d, DB[*SQLTx](noDB{}), noDB{}, Migrations{}, nil)
	req := promo.RedeemRequest{ID: "r", EventID: "e", Code: "C", UserID: "u", Now: time.Now()}
	if out, err := c.Redeem(context.Background(), req); err != nil || out.Redemption.ID != "r" {
		t.Fatalf("Redeem through the hook = %+v, %v", out, err)
	}
	req.UserID = ""
	if _, err := c.Redeem(context.Background(), req); !promo.Is(err, promo.EInvalid) {
		t.Errorf("Redeem without a user = %v, want EInvalid", err)
	}
	if len(got) != 1 {
		t.Errorf("the hook ran %d times, want once", len(got))
	}
	// Without the hook the core runs its own transaction (here: no pool).
	d.Redeem = nil
	req.UserID = "u"
	if _, err := New(d, DB[*SQLTx](noDB{}), noDB{}, Migrations{}, nil).Redeem(context.Background(), req); !errors.Is(err, errNoDB) {
		t.Errorf("Redeem without the hook = %v, want the pool's error", err)
	}
}
