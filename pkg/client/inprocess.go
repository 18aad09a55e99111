package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// InProcess returns an http.RoundTripper that serves each request with h in
// this process: no socket, no network, the same handler chain (validation,
// authorisation, audit) that a request from outside goes through. The admin
// console uses it with the API's handler:
//
//	c, _ := client.New("http://api.internal", "", client.WithHTTPClient(&http.Client{Transport: client.InProcess(api)}))
//
// The answer streams: RoundTrip returns once the handler has written its
// header (or returned), and the body is read while the handler writes it,
// through a pipe, so an export of any size takes constant memory. Closing
// the body early cancels the handler's context and fails its next write.
// The handler's request has the RemoteAddr set by WithClientAddr (else
// "in-process"), Host from the URL, and the client request's context, so a
// cancelled call stops the handler's work. A handler that panics
// (http.ErrAbortHandler included) ends the body with an error, as a cut
// connection would.
func InProcess(h http.Handler) http.RoundTripper { return inProcess{h: h} }

type inProcess struct{ h http.Handler }

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying addr ("host:port") as the remote
// address InProcess gives the handler's request: the address of the browser
// on whose behalf the call is made, which the API counts failed look-ups
// against.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	sr := req.Clone(ctx)
	sr.RequestURI = req.URL.RequestURI()
	sr.Host = req.URL.Host
	if req.Host != "" {
		sr.Host = req.Host
	}
	sr.RemoteAddr = "in-process"
	if a, ok := req.Context().Value(clientAddrKey{}).(string); ok && a != "" {
		sr.RemoteAddr = a
	}
	sr.Proto, sr.ProtoMajor, sr.ProtoMinor = "HTTP/1.1", 1, 1
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	sr.Close = false
	pr, pw := io.Pipe()
	w := &pipeResponse{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	// A caller whose context ends while the handler waits in a write (it
	// stopped reading and did not close the body) frees the handler.
	stop := context.AfterFunc(req.Context(), func() { _ = pr.CloseWithError(context.Cause(req.Context())) })
	go func() {
		defer stop()
		defer cancel()
		defer func() {
			if p := recover(); p != nil {
				err := fmt.Errorf("handler panicked: %v", p)
				if p == http.ErrAbortHandler {
					err = io.ErrUnexpectedEOF
				}
				w.fail(err)
				return
			}
			w.finish()
		}()
		t.h.ServeHTTP(w, sr)
	}()
	select {
	case <-w.ready:
	case <-req.Context().Done():
		_ = pr.CloseWithError(req.Context().Err())
		return nil, req.Context().Err()
	}
	if w.err != nil {
		return nil, w.err
	}
	resp := &http.Response{
		Status:        fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.sent,
		Body:          &pipeBody{PipeReader: pr, cancel: cancel},
		ContentLength: -1,
		Request:       req,
	}
	if req.Method == http.MethodHead {
		resp.Body = http.NoBody
		_ = pr.Close()
	}
	return resp, nil
}

// pipeResponse is the handler's http.ResponseWriter: the header is taken
// at the first WriteHeader or Write (or when the handler returns), the body
// goes into the pipe.
type pipeResponse struct {
	header http.Header
	sent   http.Header
	status int
	pw     *io.PipeWriter
	ready  chan struct{}
	once   sync.Once
	err    error // set before ready closes when the handler failed before any header

	mu       sync.Mutex
	deadline *time.Timer
}

func (w *pipeResponse) Header() http.Header { return w.header }

func (w *pipeResponse) WriteHeader(status int) {
	if status >= 100 && status <= 199 {
		return // informational answers are not passed on
	}
	w.once.Do(func() {
		w.status = status
		w.sent = w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush has nothing to do: every Write waits until the reader has taken it.
func (w *pipeResponse) Flush() {}

// SetWriteDeadline makes writes that have not completed by t fail, as on a
// connection: a reader that stops taking data cannot hold the handler (and
// its database connection) forever. The zero time removes the deadline.
func (w *pipeResponse) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.deadline != nil {
		w.deadline.Stop()
		w.deadline = nil
	}
	if !t.IsZero() {
		w.deadline = time.AfterFunc(time.Until(t), func() { _ = w.pw.CloseWithError(os.ErrDeadlineExceeded) })
	}
	return nil
}

func (w *pipeResponse) stopDeadline() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.deadline != nil {
		w.deadline.Stop()
	}
}

// finish ends a handler that returned: a handler that wrote nothing
// answered 200 with an empty body.
func (w *pipeResponse) finish() {
	w.stopDeadline()
	w.WriteHeader(http.StatusOK)
	_ = w.pw.Close()
}

// fail ends a handler that panicked: before its header, RoundTrip returns
// err; after it, the body ends with err.
func (w *pipeResponse) fail(err error) {
	w.stopDeadline()
	w.once.Do(func() {
		w.err = err
		close(w.ready)
	})
	_ = w.pw.CloseWithError(err)
}

// pipeBody cancels the handler's context when the caller closes the body.
type pipeBody struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (b *pipeBody) Close() error {
	b.cancel()
	return b.PipeReader.CloseWithError(errBodyClosed)
}

var errBodyClosed = errors.New("in-process response body closed")
