package sqlserver

import (
	"strconv"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// Every T-SQL text the store runs, byte for byte: no SQL Server runs here,
// so a change of lock hints, conditions or the text Compose writes from the
// shared statements would otherwise pass unseen (the shape tests check a
// few fragments).
func TestStatementsGolden(t *testing.T) {
	extra := map[string]string{}
	for _, n := range []int{1, 3} {
		extra["qInsertCodesSkipping("+strconv.Itoa(n)+")"] = qInsertCodesSkipping(n)
		extra["qMarkPublished("+strconv.Itoa(n)+")"] = qMarkPublished(n)
	}
	extra["bulkCodes(3, false)"], extra["bulkCodes(3, true)"] = bulkCodes(3, false), bulkCodes(3, true)
	extra["sessionInit"] = Config{LockTimeout: 1500 * time.Millisecond}.sessionInit()
	storetest.GoldenStatements(t, "testdata/statements.golden", statements, extra)
}
