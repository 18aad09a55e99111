//go:build integration

package sqlite_test

import (
	"testing"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// TestAdversarialDeletedStaysOff: storetest.AdversarialDeletedStaysOff.
func TestAdversarialDeletedStaysOff(t *testing.T) {
	storetest.AdversarialDeletedStaysOff(t, "sqlite", open(t))
}

// TestAdversarialOneCodeStorm: storetest.AdversarialOneCodeStorm through the
// one writer's groups.
func TestAdversarialOneCodeStorm(t *testing.T) {
	storetest.AdversarialOneCodeStorm(t, "sqlite", open(t))
}
