// Package dockercheck tells store test helpers whether testcontainers can
// start containers here, so they can skip with a reason that also says how to
// run the tests against a server instead.
package dockercheck

import (
	"context"
	"fmt"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// Unavailable does what testcontainers.SkipIfProviderIsNotHealthy does (which
// only takes a *testing.T), returning the reason ("" when Docker is usable)
// instead of skipping.
func Unavailable() (reason string) {
	defer func() {
		if r := recover(); r != nil {
			reason = fmt.Sprintf("no Docker engine: %v", r)
		}
	}()
	provider, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return fmt.Sprintf("no Docker engine: %v", err)
	}
	defer provider.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := provider.Health(ctx); err != nil {
		return fmt.Sprintf("no healthy Docker engine: %v", err)
	}
	return ""
}
