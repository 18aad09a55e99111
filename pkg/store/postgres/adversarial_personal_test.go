//go:build integration

package postgres_test

import (
	"testing"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

func TestAdversarialPersonal(t *testing.T) {
	storetest.AdversarialPersonal(t, "postgres", open(t))
}
