package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrStalled is the cause of an export aborted because the stream stopped
// moving for longer than the stall timeout.
var ErrStalled = errors.New("export stalled: no data received")

// ExportCodes streams the promotion's codes, CSV with a header row whose first
// column is `code`, to w exactly as the server sends them, in constant memory
// whatever the count. It returns the number of data rows written (the header
// not counted). There is no total timeout: only a stream that stops moving
// for the stall timeout is cut. On error, w may hold a prefix of the CSV; a
// caller writing a file should write to a temporary name and rename on
// success.
//
// The server refuses (409, a *ProblemError) to export a promotion that is not
// completed; ExportPartialCodes asks for what exists so far.
func (c *Client) ExportCodes(ctx context.Context, id string, w io.Writer) (rows int64, err error) {
	return c.exportCodes(ctx, id, w, false)
}

// ExportPartialCodes is ExportCodes for a promotion that may still be
// generating (or has parked batches): it streams the codes that exist now.
func (c *Client) ExportPartialCodes(ctx context.Context, id string, w io.Writer) (rows int64, err error) {
	return c.exportCodes(ctx, id, w, true)
}

func (c *Client) exportCodes(ctx context.Context, id string, w io.Writer, partial bool) (rows int64, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	path := "/v1/promotions/" + url.PathEscape(id) + "/codes"
	if partial {
		path += "?partial=true"
	}
	hr, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return 0, fmt.Errorf("export promotion %s: %w", id, err)
	}
	hr.Header.Set("Accept", "text/csv, application/problem+json")
	resp, err := c.hc.Do(hr)
	if err != nil {
		return 0, fmt.Errorf("export promotion %s: %w", id, causeOf(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("export promotion %s: %w", id, decodeProblem(resp))
	}

	var body io.Reader = resp.Body
	if c.stallTimeout > 0 {
		sr := &stallReader{r: resp.Body, d: c.stallTimeout,
			t: time.AfterFunc(c.stallTimeout, func() { cancel(ErrStalled) })}
		defer sr.t.Stop()
		body = sr
	}
	rows, err = copyCSV(w, body)
	if err != nil {
		return rows, fmt.Errorf("export promotion %s: after %d rows: %w", id, rows, causeOf(ctx, err))
	}
	return rows, nil
}

// copyCSV copies CSV from r to w, checking the header and counting data rows.
// Memory is one 64 KiB buffer.
func copyCSV(w io.Writer, r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	header, err := br.ReadSlice('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(header) > 0) {
		if errors.Is(err, bufio.ErrBufferFull) {
			return 0, errors.New("CSV header row longer than 64 KiB")
		}
		if errors.Is(err, io.EOF) {
			return 0, errors.New("empty answer, want a CSV header row")
		}
		return 0, err
	}
	if !validHeader(header) {
		return 0, fmt.Errorf("answer is not the codes CSV: first line %q", snippet(header))
	}
	if _, err := w.Write(header); err != nil {
		return 0, err
	}
	rc := &rowCounter{w: w, last: '\n'}
	// bufio.Reader is an io.WriterTo: this drains its buffer then copies
	// through rc in fixed-size reads, never accumulating.
	if _, err := br.WriteTo(rc); err != nil {
		return rc.rows(), err
	}
	return rc.rows(), nil
}

func validHeader(line []byte) bool {
	line = bytes.TrimPrefix(line, []byte("\ufeff"))
	first, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(","))
	return strings.EqualFold(strings.Trim(strings.TrimSpace(string(first)), `"`), "code")
}

// rowCounter passes bytes through and counts completed lines. A last line
// without its newline still counts as a row.
type rowCounter struct {
	w     io.Writer
	lines int64
	last  byte
}

func (c *rowCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.lines += int64(bytes.Count(p[:n], []byte{'\n'}))
	if n > 0 {
		c.last = p[n-1]
	}
	return n, err
}

func (c *rowCounter) rows() int64 {
	if c.last != '\n' {
		return c.lines + 1
	}
	return c.lines
}

// stallReader re-arms a timer on every read that moves data; the timer
// cancels the request when the stream stalls.
type stallReader struct {
	r io.Reader
	d time.Duration
	t *time.Timer
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.t.Reset(s.d)
	}
	return n, err
}

// causeOf names why the export's ctx ended when it was the stall timer, so
// the error reads as ErrStalled rather than "context canceled".
func causeOf(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrStalled) && !errors.Is(err, ErrStalled) {
		return fmt.Errorf("%w (%w)", ErrStalled, err)
	}
	return err
}
