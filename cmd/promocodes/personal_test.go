package main

import (
	"context"
	"strings"
	"testing"
)

// TestCodesIssueAndOfUser: `codes issue` hands out a generated promotion's
// codes to a customer (a retry with the same key answers the same codes,
// more than are left is pool_exhausted, exit 1), and `codes of-user` lists
// them with their state.
func TestCodesIssueAndOfUser(t *testing.T) {
	ctx := context.Background()
	url, st := apiServerStore(t)
	p, generate := seedPending(t, st, 3)
	generate()
	id := p.IDString()
	out, errOut, err := runCLI(ctx, "codes", "issue", "--promotion", id, "--user", "alice", "--count", "2",
		"--idempotency-key", "k1", "--api-url", url)
	codes := strings.Fields(out)
	if err != nil || len(codes) != 2 || !strings.Contains(errOut, "2 codes of promotion "+id+" issued to alice") {
		t.Fatalf("codes issue: %q %q %v", out, errOut, err)
	}
	again, errOut, err := runCLI(ctx, "codes", "issue", "--promotion", id, "--user", "alice", "--count", "2",
		"--idempotency-key", "k1", "--api-url", url)
	if err != nil || again != out || !strings.Contains(errOut, "replayed") {
		t.Errorf("codes issue again: %q %q %v; want %q replayed", again, errOut, err, out)
	}
	if _, _, err := runCLI(ctx, "codes", "issue", "--promotion", id, "--user", "bob", "--count", "2", "--api-url", url); err == nil ||
		!strings.Contains(err.Error(), "pool_exhausted") && !strings.Contains(err.Error(), "unassigned") {
		t.Errorf("issuing 2 of 1 left: %v", err)
	}
	if _, _, err := runCLI(ctx, "codes", "issue", "--user", "bob", "--api-url", url); err == nil {
		t.Error("codes issue without --promotion succeeded")
	}
	list, _, err := runCLI(ctx, "codes", "of-user", "alice", "--api-url", url)
	if err != nil || !strings.Contains(list, codes[0]) || !strings.Contains(list, codes[1]) ||
		strings.Count(list, "redeemable") != 2 {
		t.Errorf("codes of-user alice: %q, %v", list, err)
	}
}
