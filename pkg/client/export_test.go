package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/client"
)

const rowLen = len("ABCD-EFGH-JK\n")

// csvServer streams a header and n rows of rowLen bytes each, written from one
// preallocated block so the server itself allocates nothing per row. When
// gate is not nil it stops after half the rows until gate is closed.
func csvServer(n int, gate <-chan struct{}) http.Handler {
	const perBlock = 4096
	block := bytes.Repeat([]byte("ABCD-EFGH-JK\n"), perBlock)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/promotions/7/codes" {
			writeProblem(w, 404, `{"title":"Not Found","status":404,"detail":"no promotion \"8\""}`)
			return
		}
		w.Header().Set("Content-Type", "text/csv")
		io.WriteString(w, "code,promotion_id\n")
		for left, written := n, 0; left > 0; {
			k := min(left, perBlock)
			if _, err := w.Write(block[:k*rowLen]); err != nil {
				return
			}
			left -= k
			written += k
			if gate != nil && written >= n/2 && written-k < n/2 {
				w.(http.Flusher).Flush()
				<-gate
			}
		}
	})
}

type countingWriter struct {
	n     int64
	first []byte // the first bytes seen, to check the header
	onN   func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if len(c.first) < 64 {
		c.first = append(c.first, p[:min(len(p), 64-len(c.first))]...)
	}
	c.n += int64(len(p))
	if c.onN != nil {
		c.onN(c.n)
	}
	return len(p), nil
}

func exportAlloc(t *testing.T, c *client.Client, n int) (allocated uint64) {
	t.Helper()
	cw := &countingWriter{}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rows, err := c.ExportCodes(context.Background(), "7", cw)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if rows != int64(n) {
		t.Errorf("rows = %d, want %d", rows, n)
	}
	if want := int64(len("code,promotion_id\n") + n*rowLen); cw.n != want {
		t.Errorf("%d bytes written, want %d", cw.n, want)
	}
	if !strings.HasPrefix(string(cw.first), "code,promotion_id\nABCD-EFGH-JK\n") {
		t.Errorf("output starts %q", cw.first)
	}
	return after.TotalAlloc - before.TotalAlloc
}

func TestExportCodesConstantMemory(t *testing.T) {
	const small, large = 10_000, 1_000_000
	var rows atomic.Int64
	handlers := map[int64]http.Handler{small: csvServer(small, nil), large: csvServer(large, nil)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers[rows.Load()].ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := newClient(t, srv.URL)
	rows.Store(small)
	exportAlloc(t, c, small) // warm up: connection, transport buffers
	allocSmall := exportAlloc(t, c, small)
	rows.Store(large)
	allocLarge := exportAlloc(t, c, large)
	// 1M rows are 13 MB on the wire. Whatever is allocated per export (the
	// 64 KiB copy buffer, the transport's buffers, server and client alike)
	// must not grow with the rows: allow 1 MiB of noise.
	t.Logf("allocated: %d rows %d B, %d rows %d B (%d B streamed)", small, allocSmall, large, allocLarge, large*rowLen)
	if allocLarge > allocSmall+1<<20 {
		t.Errorf("export of %d rows allocated %d B, of %d rows %d B: memory grows with rows", large, allocLarge, small, allocSmall)
	}
}

func TestExportCodesStreams(t *testing.T) {
	// The server sends half the rows and waits until the client has
	// written them out: a client that buffered the answer would never
	// get there.
	const n = 200_000
	gate := make(chan struct{})
	srv := httptest.NewServer(csvServer(n, gate))
	defer srv.Close()
	half := int64(n / 2 * rowLen)
	cw := &countingWriter{onN: func(written int64) {
		if written >= half {
			select {
			case <-gate:
			default:
				close(gate)
			}
		}
	}}
	done := make(chan error, 1)
	go func() {
		_, err := newClient(t, srv.URL).ExportCodes(context.Background(), "7", cw)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(gate)
		t.Fatal("export did not write rows before the stream ended")
	}
}

func TestExportCodesErrors(t *testing.T) {
	t.Run("problem", func(t *testing.T) {
		srv := httptest.NewServer(csvServer(10, nil))
		defer srv.Close()
		var out bytes.Buffer
		_, err := newClient(t, srv.URL).ExportCodes(context.Background(), "8", &out)
		var p *client.ProblemError
		if !errors.As(err, &p) || p.Status != 404 || p.Detail != `no promotion "8"` {
			t.Fatalf("err = %v", err)
		}
		if out.Len() != 0 {
			t.Errorf("wrote %q on error", out.String())
		}
	})
	t.Run("not the codes CSV", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html>login</html>\n")
		}))
		defer srv.Close()
		var out bytes.Buffer
		_, err := newClient(t, srv.URL).ExportCodes(context.Background(), "7", &out)
		if err == nil || !strings.Contains(err.Error(), "not the codes CSV") || out.Len() != 0 {
			t.Fatalf("err = %v, out %q", err, out.String())
		}
	})
	t.Run("cut stream", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			io.WriteString(w, "code\nAAAA\nBBBB\n")
		}))
		defer srv.Close()
		rows, err := newClient(t, srv.URL).ExportCodes(context.Background(), "7", io.Discard)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want unexpected EOF", err)
		}
		if rows != 2 {
			t.Errorf("rows = %d, want 2", rows)
		}
	})
	t.Run("stall", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "code\nAAAA\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		c := newClient(t, srv.URL, client.WithStallTimeout(100*time.Millisecond))
		_, err := c.ExportCodes(context.Background(), "7", io.Discard)
		if !errors.Is(err, client.ErrStalled) {
			t.Fatalf("err = %v, want ErrStalled", err)
		}
	})
	t.Run("no trailing newline", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "\"code\"\r\nAAAA\r\nBBBB")
		}))
		defer srv.Close()
		var out bytes.Buffer
		rows, err := newClient(t, srv.URL).ExportCodes(context.Background(), "7", &out)
		if err != nil || rows != 2 || out.String() != "\"code\"\r\nAAAA\r\nBBBB" {
			t.Fatalf("rows %d, err %v, out %q", rows, err, out.String())
		}
	})
	t.Run("header only", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "code,promotion_id\n")
		}))
		defer srv.Close()
		rows, err := newClient(t, srv.URL).ExportCodes(context.Background(), "7", io.Discard)
		if err != nil || rows != 0 {
			t.Fatalf("rows %d, err %v", rows, err)
		}
	})
}
