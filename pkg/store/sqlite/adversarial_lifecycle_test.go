//go:build integration

package sqlite_test

import (
	"context"
	"testing"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// TestAdversarialDeletedStaysOff: storetest.AdversarialDeletedStaysOff.
func TestAdversarialDeletedStaysOff(t *testing.T) {
	storetest.AdversarialDeletedStaysOff(t, "sqlite", open(t))
	t.Run("forced on", func(t *testing.T) {
		s := open(t)
		storetest.AdversarialDeletedStaysOff(t, "sqlite", s, func(id int64) error {
			_, err := s.DB().Exec(context.Background(), "UPDATE promotions SET active = 1 WHERE id = ?", id)
			return err
		})
	})
}

// TestAdversarialOneCodeStorm: storetest.AdversarialOneCodeStorm through the
// one writer's groups.
func TestAdversarialOneCodeStorm(t *testing.T) {
	storetest.AdversarialOneCodeStorm(t, "sqlite", open(t))
}

// TestAdversarialGroupEvents: storetest.AdversarialGroupEvents through the
// one writer's groups (members' events cut on their own goroutines).
func TestAdversarialGroupEvents(t *testing.T) {
	st := open(t)
	storetest.AdversarialGroupEvents(t, "sqlite", st)
	g, m, _, _ := st.GroupStats()
	t.Logf("adversarial: group members' events [sqlite]: %d members in %d groups", m, g)
}

// TestAdversarialBatchOnHeldCode: storetest.AdversarialBatchOnHeldCode.
func TestAdversarialBatchOnHeldCode(t *testing.T) {
	storetest.AdversarialBatchOnHeldCode(t, "sqlite", open(t))
}
