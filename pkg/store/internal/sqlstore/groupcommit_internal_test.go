package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// A group whose redemption panics (a bug; here a group without a database)
// answers its members with an error and passes the writer on. Before, the
// panic left the writer busy for good, so every later redemption of the
// process waited behind a group that never ended (until its deadline: 503),
// and a group written by the goroutine that hands the writer on took the
// process down.
func TestRedeemGroupSurvivesAPanic(t *testing.T) {
	g := NewRedeemGroup[*SQLTx](nil, 4)
	req := promo.RedeemRequest{ID: "r", EventID: "e", Code: "C", UserID: "u", Now: time.Now()}
	redeem := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = promo.Errorf(promo.EInternal, "panicked through Redeem: %v", p)
			}
		}()
		_, err = g.Redeem(context.Background(), req)
		return err
	}
	done := make(chan error, 2)
	go func() { done <- redeem() }()
	go func() { done <- redeem() }()
	for range 2 {
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("a redemption of a group that panicked answered no error")
			} else if promo.Code(err) != promo.EInternal {
				t.Errorf("answered %v, want an internal error", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("a redemption waits behind the group that panicked")
		}
	}
	if st := g.Stats(); st.Pending != 0 || st.Inflight != 0 {
		t.Errorf("after the panics: %d pending, %d in flight; want none, idle", st.Pending, st.Inflight)
	}
}
