package promo

import (
	"strings"
	"testing"
)

func TestDecodeEvent(t *testing.T) {
	good := Event{V: 1, PromotionID: "17", BatchNo: 3, SeqStart: 150000, CodeCount: 50000}
	got, err := DecodeEvent(good.Marshal())
	if err != nil || got != good {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if good.Key() != "17/3" || good.Ref() != (BatchRef{PromotionID: 17, BatchNo: 3}) {
		t.Fatalf("key %q ref %+v", good.Key(), good.Ref())
	}
	for _, tc := range []struct{ name, value, want string }{
		{"not json", "garbage", "undecodable"},
		{"unknown field", `{"v":1,"promotionId":"1","batchNo":0,"seqStart":0,"codeCount":1,"x":1}`, "unknown field"},
		{"trailing", `{"v":1,"promotionId":"1","batchNo":0,"seqStart":0,"codeCount":1}{}`, "trailing"},
		{"version", `{"v":2,"promotionId":"1","batchNo":0,"seqStart":0,"codeCount":1}`, "version"},
		{"id", `{"v":1,"promotionId":"abc","batchNo":0,"seqStart":0,"codeCount":1}`, "promotionId"},
		{"zero id", `{"v":1,"promotionId":"0","batchNo":0,"seqStart":0,"codeCount":1}`, "promotionId"},
		{"batch", `{"v":1,"promotionId":"1","batchNo":-1,"seqStart":0,"codeCount":1}`, "batchNo"},
		{"huge batch", `{"v":1,"promotionId":"1","batchNo":4294967296,"seqStart":0,"codeCount":1}`, "batchNo"},
		{"count", `{"v":1,"promotionId":"1","batchNo":0,"seqStart":0,"codeCount":-1}`, "codeCount"},
		{"seq type", `{"v":1,"promotionId":"1","batchNo":0,"seqStart":-5,"codeCount":1}`, "undecodable"},
		{"wraps", `{"v":1,"promotionId":"1","batchNo":0,"seqStart":18446744073709551611,"codeCount":5}`, "overflows"},
		{"wraps far", `{"v":1,"promotionId":"1","batchNo":0,"seqStart":18446744073709551615,"codeCount":50000}`, "overflows"},
	} {
		_, err := DecodeEvent([]byte(tc.value))
		if !Is(err, EInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v; want EInvalid mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestEventForNarrowsToTheRemainder(t *testing.T) {
	e := EventFor(Batch{PromotionID: 5, BatchNo: 2, SeqStart: 100_000, CodeCount: 50_000, Done: 20_000})
	if e.SeqStart != 120_000 || e.CodeCount != 30_000 || e.Key() != "5/2" {
		t.Fatalf("%+v", e)
	}
}

func TestStatus(t *testing.T) {
	st := PromotionStatus{Promotion: Promotion{CodeCount: 10}}
	for _, tc := range []struct {
		gen    int64
		parked int
		want   Status
	}{{0, 0, StatusPending}, {5, 0, StatusGenerating}, {5, 1, StatusFailed}, {10, 0, StatusCompleted}, {10, 1, StatusCompleted}} {
		st.GeneratedCount, st.Batches.Parked = tc.gen, tc.parked
		if got := st.Status(); got != tc.want {
			t.Errorf("generated %d parked %d: %s, want %s", tc.gen, tc.parked, got, tc.want)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	if got := HeaderValue("a\nb\x00ü"); got != "a?b???" {
		t.Fatalf("%q", got)
	}
	if got := HeaderValue(strings.Repeat("x", 5000)); len(got) != MaxErrorHeader {
		t.Fatalf("len %d", len(got))
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"v":1,"promotionId":"1","batchNo":0,"seqStart":0,"codeCount":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		if err != nil {
			if !Is(err, EInvalid) {
				t.Fatalf("error without EInvalid: %v", err)
			}
			return
		}
		if e2, err := DecodeEvent(e.Marshal()); err != nil || e2 != e {
			t.Fatalf("accepted event does not round-trip: %+v %v", e2, err)
		}
	})
}
