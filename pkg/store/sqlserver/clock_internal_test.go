package sqlserver

import (
	"fmt"
	"strings"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

// Leases are on the server's clock: the claim statements take the lease as
// a duration and read SYSUTCDATETIME() once, never a time from the caller
// (an API replica whose clock is off would lease for hours or treat every
// other lease as expired).
func TestLeasesTakeTheServersClock(t *testing.T) {
	for name, q := range map[string]string{"ClaimPendingBatches": statements.ClaimPendingBatches, "ClaimEvents": statements.ClaimEvents} {
		if strings.Count(q, "SYSUTCDATETIME()") != 1 || !strings.Contains(q, "DATEADD(millisecond, @p2, @now)") ||
			!strings.Contains(q, "< @now") || strings.Contains(q, "@p3") {
			t.Errorf("%s does not lease on the server's clock:\n%s", name, q)
		}
	}
	if q := statements.MarkEventPublished; !strings.Contains(q, "SYSUTCDATETIME()") || strings.Contains(q, "@p2") {
		t.Errorf("MarkEventPublished does not stamp the server's clock:\n%s", q)
	}
	for lease, want := range map[time.Duration]int32{45 * time.Second: 45000, -time.Second: -1000, 1000 * time.Hour: 1<<31 - 1} {
		if got := leaseMillis(lease); got != any(want) {
			t.Errorf("leaseMillis(%s) = %d, want %d", lease, got, want)
		}
	}
}

func TestSessionLimits(t *testing.T) {
	if got := (Config{LockTimeout: 2500 * time.Millisecond}).sessionInit(); got != "SET LOCK_TIMEOUT 2500;" {
		t.Errorf("sessionInit = %q", got)
	}
	if got := (Config{}).sessionInit(); got != "" {
		t.Errorf("sessionInit without a lock timeout = %q, want none", got)
	}
	for _, c := range []Config{{DSN: "x", LockTimeout: -time.Second}, {DSN: "x", LockTimeout: time.Microsecond}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
	timedOut := mssql.Error{Number: 1222, Message: "Lock request time out period exceeded."}
	if !dialect.LockTimeout(fmt.Errorf("commit chunk: %w", timedOut)) {
		t.Error("error 1222 is not a lock timeout")
	}
	if dialect.LockTimeout(mssql.Error{Number: 1205}) {
		t.Error("a deadlock is a lock timeout")
	}
}
