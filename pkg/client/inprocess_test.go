package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/client"
)

func inProcessClient(t *testing.T, h http.Handler, token string) *client.Client {
	t.Helper()
	c, err := client.New("http://api.in-process", token, client.WithHTTPClient(&http.Client{Transport: client.InProcess(h)}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The handler sees the request as a server would: method, path, query,
// bearer token, the browser's address given by WithClientAddr; its answer
// and its refusals come back typed.
func TestInProcessServesTheHandler(t *testing.T) {
	var seen *http.Request
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		if r.URL.Path == "/v1/promotions/404" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"status":404,"title":"Not Found","detail":"no promotion 404"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"7","name":"winter","status":"completed","codeCount":10,"generatedCount":10,"active":true}`)
	})
	c := inProcessClient(t, h, "").WithToken("admin-token")
	ctx := client.WithClientAddr(context.Background(), "203.0.113.9:4711")
	st, err := c.GetPromotion(ctx, "7")
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "winter" || !st.Active || !st.Done() {
		t.Errorf("status = %+v", st)
	}
	if seen.Method != http.MethodGet || seen.URL.Path != "/v1/promotions/7" || seen.RequestURI != "/v1/promotions/7" ||
		seen.Header.Get("Authorization") != "Bearer admin-token" || seen.RemoteAddr != "203.0.113.9:4711" {
		t.Errorf("handler saw %s %s (URI %q) auth %q from %q", seen.Method, seen.URL.Path, seen.RequestURI,
			seen.Header.Get("Authorization"), seen.RemoteAddr)
	}
	_, err = c.GetPromotion(context.Background(), "404")
	var p *client.ProblemError
	if !errors.As(err, &p) || p.Status != http.StatusNotFound || p.Detail != "no promotion 404" {
		t.Errorf("refusal = %v, want the 404 problem", err)
	}
	if seen.RemoteAddr != "in-process" {
		t.Errorf("without WithClientAddr the handler saw RemoteAddr %q", seen.RemoteAddr)
	}
	// WithToken made a copy: the original sends no token.
	if _, err := inProcessClient(t, h, "").GetPromotion(context.Background(), "7"); err != nil || seen.Header.Get("Authorization") != "" {
		t.Errorf("client without token sent %q (%v)", seen.Header.Get("Authorization"), err)
	}
}

// The answer streams: the caller reads the first rows while the handler is
// still writing (it waits until they are read), so an export of any size
// passes through in constant memory.
func TestInProcessStreams(t *testing.T) {
	firstRead := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		_, _ = io.WriteString(w, "code\nA1\n")
		select {
		case <-firstRead:
		case <-time.After(10 * time.Second):
			t.Error("the caller did not see the first rows before the handler finished")
		}
		for i := range 1000 {
			fmt.Fprintf(w, "B%d\n", i)
		}
	})
	c := inProcessClient(t, h, "")
	var buf bytes.Buffer
	n, err := c.ExportCodes(context.Background(), "7", writerFunc(func(p []byte) (int, error) {
		if bytes.Contains(p, []byte("A1")) {
			select {
			case <-firstRead:
			default:
				close(firstRead)
			}
		}
		return buf.Write(p)
	}))
	if err != nil || n != 1001 {
		t.Fatalf("export = %d rows, %v; want 1001", n, err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A handler that aborts mid-stream (http.ErrAbortHandler, as the API's
// export does on a database error) is a cut transfer for the caller, not
// a complete-looking file; one that panics before its header is an error.
func TestInProcessAbortIsACutTransfer(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("partial") == "true" {
			panic("before any byte")
		}
		w.Header().Set("Content-Type", "text/csv")
		_, _ = io.WriteString(w, "code\nA1\n")
		panic(http.ErrAbortHandler)
	})
	c := inProcessClient(t, h, "")
	if n, err := c.ExportCodes(context.Background(), "7", io.Discard); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("export of an aborted stream = %d rows, %v; want io.ErrUnexpectedEOF", n, err)
	}
	if _, err := c.ExportPartialCodes(context.Background(), "7", io.Discard); err == nil || !strings.Contains(err.Error(), "before any byte") {
		t.Errorf("export of a handler that panicked first = %v", err)
	}
}

// Closing the body early cancels the handler's context; a reader that stops
// taking data past the handler's write deadline fails its write, so neither
// holds the handler (and its database connection).
func TestInProcessEarlyCloseAndWriteDeadline(t *testing.T) {
	cancelled := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deadline" {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			_, _ = io.WriteString(w, "first")
			_, err := io.WriteString(w, "second") // nobody reads
			cancelled <- err
			return
		}
		_, _ = io.WriteString(w, "first")
		<-r.Context().Done()
		cancelled <- r.Context().Err()
	})
	hc := &http.Client{Transport: client.InProcess(h)}
	resp, err := hc.Get("http://api.in-process/close")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	select {
	case err := <-cancelled:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler's context ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the body did not cancel the handler")
	}
	// A caller that stops reading and lets its context end (without closing
	// the body) frees a handler blocked in a write.
	blocked := make(chan error, 1)
	hb := &http.Client{Transport: client.InProcess(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first")
		_, err := io.WriteString(w, "second") // nobody reads
		blocked <- err
	}))}
	rctx, rcancel := context.WithCancel(context.Background())
	if _, err := hb.Do(mustRequest(t, rctx)); err != nil {
		t.Fatal(err)
	}
	rcancel()
	select {
	case err := <-blocked:
		if err == nil {
			t.Error("a write after the caller's context ended succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the end of the caller's context did not free a handler blocked in a write")
	}
	resp, err = hc.Get("http://api.in-process/deadline")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cancelled:
		if err == nil {
			t.Error("a write past the deadline succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write deadline did not end a write nobody reads")
	}
}

func mustRequest(t *testing.T, ctx context.Context) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.in-process/blocked", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
