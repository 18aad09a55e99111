//go:build integration

package api_test

import "testing"

// TestAdversarialShopperKeySquatting: with signed shoppers, one shopper's
// requests must not lock another out through the Idempotency-Keys it sends
// (squatKeys).
func TestAdversarialShopperKeySquatting(t *testing.T) {
	t.Logf("adversarial: idempotency key squatting between signed shoppers [sqlite]: %s", squatKeys(t))
}
