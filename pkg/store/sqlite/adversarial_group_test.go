//go:build integration

package sqlite_test

import (
	"testing"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// TestAdversarialGroupLimitMix: storetest.AdversarialGroupLimitMix through
// the one writer's groups.
func TestAdversarialGroupLimitMix(t *testing.T) {
	st := open(t)
	storetest.AdversarialGroupLimitMix(t, "sqlite", st, func() (int64, int64) {
		g, m, _, _ := st.GroupStats()
		return g, m
	})
}

// TestAdversarialChunksRaceCancel: storetest.AdversarialChunksRaceCancel.
func TestAdversarialChunksRaceCancel(t *testing.T) {
	storetest.AdversarialChunksRaceCancel(t, "sqlite", open(t))
}

// TestAdversarialLifecycleDuringGroups:
// storetest.AdversarialLifecycleDuringGroups through the one writer's
// groups.
func TestAdversarialLifecycleDuringGroups(t *testing.T) {
	storetest.AdversarialLifecycleDuringGroups(t, "sqlite", open(t))
}
