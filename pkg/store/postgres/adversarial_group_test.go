//go:build integration

package postgres_test

import (
	"testing"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// TestAdversarialGroupLimitMix: storetest.AdversarialGroupLimitMix with
// groups in flight at once.
func TestAdversarialGroupLimitMix(t *testing.T) {
	st := openGroup(t, 16, 3)
	storetest.AdversarialGroupLimitMix(t, "postgres", st, func() (int64, int64) {
		g, m, _, _, _ := st.GroupStats()
		return g, m
	})
}

// TestAdversarialChunksRaceCancel: storetest.AdversarialChunksRaceCancel.
func TestAdversarialChunksRaceCancel(t *testing.T) {
	storetest.AdversarialChunksRaceCancel(t, "postgres", open(t))
}

// TestAdversarialLifecycleDuringGroups:
// storetest.AdversarialLifecycleDuringGroups with groups in flight at once.
func TestAdversarialLifecycleDuringGroups(t *testing.T) {
	storetest.AdversarialLifecycleDuringGroups(t, "postgres", openGroup(t, 16, 3))
}
