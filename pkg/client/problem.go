package client

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/promocodes/promocodes/pkg/wire"
)

// ProblemError is an error answer of the API (RFC 9457 problem details,
// application/problem+json). An answer that is not problem+json (a proxy's
// HTML page, say) is still a *ProblemError, with Status, Title from the
// status line, and the start of the body as Detail.
type ProblemError wire.Problem

// Error is a one-line summary: "422 Unprocessable Entity: invalid request
// (codeCount: must be positive; format.length: must be 4..64)".
func (e *ProblemError) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Status))
	title := e.Title
	if title == "" {
		title = http.StatusText(e.Status)
	}
	if title != "" {
		b.WriteString(" " + title)
	}
	if e.Detail != "" && e.Detail != title {
		b.WriteString(": " + e.Detail)
	}
	if e.Reason != "" {
		b.WriteString(" [" + e.Reason + "]")
	}
	if len(e.Errors) > 0 {
		b.WriteString(" (")
		for i, f := range e.Errors {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(f.Field + ": " + f.Message)
		}
		b.WriteString(")")
	}
	return b.String()
}

// decodeProblem turns a non-2xx response into a *ProblemError. It reads at
// most maxErrorBody bytes.
func decodeProblem(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	p := &ProblemError{}
	decoded := false
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		if err := json.Unmarshal(body, p); err != nil {
			p = &ProblemError{}
		} else {
			decoded = mt == "application/problem+json"
		}
	}
	// The status line is the truth; a problem body may omit or misstate it.
	p.Status = resp.StatusCode
	if p.Title == "" {
		p.Title = http.StatusText(resp.StatusCode)
	}
	if !decoded && p.Detail == "" && len(p.Errors) == 0 {
		p.Detail = snippet(body)
	}
	return p
}

// snippet is the start of a non-problem error body, on one line.
func snippet(body []byte) string {
	const max = 200
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}
