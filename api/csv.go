package api

import (
	"encoding/csv"
	"io"
	"strings"
)

// formulaChars start a cell that a spreadsheet would run as a formula (=,
// +, -, @, and TAB or CR before them: OWASP's CSV injection list), plus the
// single quote that neutralising adds, so that the rule can be undone.
const formulaChars = "=+-@\t\r'"

// formulaSafe is the CSV cell for value in every CSV the API serves: value
// itself, or value after one single quote when it starts with one of
// formulaChars. A spreadsheet shows such a cell as text (the quote is its
// "this is text" mark) and never runs it; a program gets value back by
// removing one leading single quote when there is one.
func formulaSafe(value string) string {
	if value != "" && strings.IndexByte(formulaChars, value[0]) >= 0 {
		return "'" + value
	}
	return value
}

// csvWriter writes rows whose every cell has gone through formulaSafe.
type csvWriter struct {
	*csv.Writer
	cells []string
}

func newCSVWriter(w io.Writer) *csvWriter { return &csvWriter{Writer: csv.NewWriter(w)} }

// Write writes one row, neutralised; row itself is not changed.
func (w *csvWriter) Write(row []string) error {
	w.cells = w.cells[:0]
	for _, c := range row {
		w.cells = append(w.cells, formulaSafe(c))
	}
	return w.Writer.Write(w.cells)
}
