package sqlstore

import (
	"encoding/json"
	"strconv"
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

// EventParts cut around the promotion id, the uses left and the code's
// uses, whatever the shopper's text holds (the same field names, quotes,
// HTML characters, unicode): reassembled as the one-statement redemption
// does, the payload is byte for byte NewRedemptionEvent's.
func TestEventParts(t *testing.T) {
	at := time.Date(2026, 12, 6, 9, 30, 1, 123456000, time.UTC)
	for _, r := range []promo.Redemption{
		{ID: "r1", Code: "WNTRK92D", UserID: "alice", RedeemedAt: at},
		{ID: "r2", Code: "MEGADETH21", UserID: `u"usesLeft":0},"codeUses":0}`, OrderID: `"promotionId":"0"`,
			Metadata: json.RawMessage(`{"usesLeft":0,"promotionId":"0","x":"<&>é"}`), RedeemedAt: at,
			IdempotencyKey: "order-1001"},
		{ID: "r3", Code: "C", UserID: "\u003c", Metadata: json.RawMessage(`{"codeUses":0}`), RedeemedAt: at.Truncate(time.Second)},
	} {
		head, body, err := EventParts("ev-"+r.ID, r)
		if err != nil {
			t.Fatalf("EventParts(%s): %v", r.ID, err)
		}
		for _, v := range []struct {
			pid         int64
			left, inUse int
		}{{1, 0, 1}, {987654321, 99999, 123456}} {
			got := head + promo.FormatID(v.pid) + body + strconv.Itoa(v.left) + `},"codeUses":` + strconv.Itoa(v.inUse) + `}`
			r.PromotionID, r.UsesLeft = v.pid, v.left
			// As a group's writer puts them in (eventParts.event).
			if ev := (&eventParts{head, body}).event(r, v.inUse); string(ev.Payload) != got || ev.Key != promo.FormatID(v.pid) {
				t.Errorf("eventParts.event: %s (key %s), want %s", ev.Payload, ev.Key, got)
			}
			want, err := promo.NewRedemptionEvent(promo.EventRedeemed, "ev-"+r.ID, r.RedeemedAt, r, &v.inUse)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("reassembled event\n got %s\nwant %s", got, want)
			}
		}
	}
}
