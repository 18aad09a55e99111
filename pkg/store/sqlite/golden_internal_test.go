package sqlite

import (
	"testing"

	"github.com/promocodes/promocodes/pkg/store/storetest"
)

// Every statement text of the store, byte for byte (see the golden file):
// text Compose writes from the shared statements changes only with the file.
func TestStatementsGolden(t *testing.T) {
	storetest.GoldenStatements(t, "testdata/statements.golden", statements, map[string]string{
		"qInsertCodes(3)": qInsertCodes(3), "qMarkPublished(3)": qMarkPublished(3), "WriterParams": WriterParams})
}
