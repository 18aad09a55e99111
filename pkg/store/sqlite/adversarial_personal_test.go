//go:build integration

package sqlite_test

import (
	"testing"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

func TestAdversarialPersonal(t *testing.T) {
	storetest.AdversarialPersonal(t, "sqlite", open(t))
}
