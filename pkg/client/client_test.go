package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

func newClient(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	fast := client.WithRetryBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(5 * time.Millisecond) })
	c, err := client.New(url, "s3cret", append([]client.Option{fast}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeProblem(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func TestCreatePromotionSendsContract(t *testing.T) {
	starts := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	expires := starts.Add(90 * 24 * time.Hour)
	checkChar := true
	tests := []struct {
		name     string
		req      client.CreateRequest
		key      string
		status   int
		wantBody map[string]any
	}{
		{
			name: "generated",
			req: client.CreateRequest{Name: "winter", CodeCount: 5_000_000,
				Format:          &promo.Format{Charset: "alnum", Length: 10, Prefix: "WNTR-", Separator: "-", GroupSize: 4, CheckChar: &checkChar},
				MaxUsagePerCode: new(1), PerUserLimit: new(1), StartsAt: &starts, ExpiresAt: &expires},
			key:    "k-1",
			status: http.StatusAccepted,
			wantBody: map[string]any{"name": "winter", "codeCount": 5e6,
				"format":          map[string]any{"charset": "alnum", "length": 10.0, "prefix": "WNTR-", "separator": "-", "groupSize": 4.0, "checkChar": true},
				"maxUsagePerCode": 1.0, "perUserLimit": 1.0,
				"startsAt": "2026-12-01T00:00:00Z", "expiresAt": "2027-03-01T00:00:00Z"},
		},
		{
			name:     "vanity replayed",
			req:      client.CreateRequest{Name: "megadeth", Code: "MEGADETH21", MaxUsagePerCode: new(1000)},
			status:   http.StatusOK,
			wantBody: map[string]any{"name": "megadeth", "code": "MEGADETH21", "maxUsagePerCode": 1000.0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/api/v1/promotions" {
					t.Errorf("got %s %s, want POST /api/v1/promotions", r.Method, r.URL.Path)
				}
				if got := r.Header.Get("Authorization"); got != "Bearer s3cret" {
					t.Errorf("Authorization = %q", got)
				}
				if got := r.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type = %q", got)
				}
				if got, ok := r.Header["Idempotency-Key"]; tt.key == "" && ok || tt.key != "" && (len(got) != 1 || got[0] != tt.key) {
					t.Errorf("Idempotency-Key = %q, want %q", got, tt.key)
				}
				var body map[string]any
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
					t.Errorf("decode body: %v", err)
				}
				if !reflect.DeepEqual(body, tt.wantBody) {
					t.Errorf("body =\n%v\nwant\n%v", body, tt.wantBody)
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Location", "/api/v1/promotions/42")
				w.WriteHeader(tt.status)
				io.WriteString(w, `{"id":"42","status":"pending"}`)
			}))
			defer srv.Close()

			got, err := newClient(t, srv.URL+"/api/").CreatePromotion(context.Background(), tt.req, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			want := client.Created{Created: wire.Created{ID: "42", Status: promo.StatusPending}, Location: srv.URL + "/api/v1/promotions/42",
				Replayed: tt.status == http.StatusOK}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestNoTokenNoAuthorization(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Authorization"]; ok {
			t.Errorf("Authorization sent without a token")
		}
		io.WriteString(w, `{"id":"1","status":"completed"}`)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPromotion(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
}

func TestProblemDecoding(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		status      int
		body        string
		want        client.ProblemError
		wantMsg     string
	}{
		{
			name: "fields", contentType: "application/problem+json", status: 422,
			body: `{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"invalid request",
				"errors":[{"field":"codeCount","message":"must be at least 1"},{"field":"format.length","message":"must be 4..64"}]}`,
			want: client.ProblemError{Type: "about:blank", Title: "Unprocessable Entity", Status: 422, Detail: "invalid request",
				Errors: []promo.FieldError{{Field: "codeCount", Message: "must be at least 1"}, {Field: "format.length", Message: "must be 4..64"}}},
			wantMsg: `create promotion "x": 422 Unprocessable Entity: invalid request (codeCount: must be at least 1; format.length: must be 4..64)`,
		},
		{
			name: "conflict", contentType: "application/problem+json; charset=utf-8", status: 409,
			body:    `{"title":"Conflict","status":409,"detail":"Idempotency-Key reused with another request"}`,
			want:    client.ProblemError{Title: "Conflict", Status: 409, Detail: "Idempotency-Key reused with another request"},
			wantMsg: `create promotion "x": 409 Conflict: Idempotency-Key reused with another request`,
		},
		{
			name: "malformed problem", contentType: "application/problem+json", status: 404,
			body:    `{"title":"Not Found","detail":"no promotion "9""}`,
			want:    client.ProblemError{Title: "Not Found", Status: 404, Detail: `{"title":"Not Found","detail":"no promotion "9""}`},
			wantMsg: `create promotion "x": 404 Not Found: {"title":"Not Found","detail":"no promotion "9""}`,
		},
		{
			name: "proxy page", contentType: "text/html", status: 502,
			body:    "<html>\n<body>Bad   gateway</body></html>",
			want:    client.ProblemError{Title: "Bad Gateway", Status: 502, Detail: "<html> <body>Bad gateway</body></html>"},
			wantMsg: `create promotion "x": 502 Bad Gateway: <html> <body>Bad gateway</body></html>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			_, err := newClient(t, srv.URL).CreatePromotion(context.Background(), client.CreateRequest{Name: "x"}, "")
			var p *client.ProblemError
			if !errors.As(err, &p) {
				t.Fatalf("err = %v (%T), want *ProblemError", err, err)
			}
			if !reflect.DeepEqual(*p, tt.want) {
				t.Errorf("problem = %+v, want %+v", *p, tt.want)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("Error() =\n%s\nwant\n%s", err, tt.wantMsg)
			}
		})
	}
}

func TestGetPromotion(t *testing.T) {
	body := `{"id":"7","name":"winter","kind":"generated","status":"generating","codeCount":1000000,"generatedCount":250000,
		"batches":{"total":20,"completed":5,"retrying":1,"parked":0},"format":{"charset":"alnum","length":10},
		"maxUsagePerCode":1,"createdAt":"2026-01-02T03:04:05Z","somethingNew":true}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/promotions/7" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	defer srv.Close()
	st, err := newClient(t, srv.URL).GetPromotion(context.Background(), "7")
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != "7" || st.Status != promo.StatusGenerating || st.CodeCount != 1_000_000 || st.GeneratedCount != 250_000 ||
		st.Batches != (promo.BatchCounts{Total: 20, Completed: 5, Retrying: 1}) || st.Format.Length != 10 ||
		!st.CreatedAt.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("status = %+v", st)
	}
	if string(st.Raw) != body {
		t.Errorf("Raw = %s", st.Raw)
	}
}

func TestIsTransient(t *testing.T) {
	// A port nobody listens on: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, refused := newClient(t, "http://"+addr).GetPromotion(context.Background(), "1")

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"503", fmt.Errorf("x: %w", &client.ProblemError{Status: 503}), true},
		{"429", &client.ProblemError{Status: 429}, true},
		{"404", &client.ProblemError{Status: 404}, false},
		{"422", &client.ProblemError{Status: 422}, false},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false},
		{"unexpected EOF", fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true},
		{"decode", errors.New("decode 200 response: invalid character"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := client.IsTransient(tt.err); got != tt.want {
			t.Errorf("%s: IsTransient(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		if _, err := client.New(u, ""); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

// statusServer answers GET /v1/promotions/{id} from a script: each request
// takes the next step, the last step repeats.
type statusServer struct {
	steps []func(w http.ResponseWriter)
	n     atomic.Int64
}

func (s *statusServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(s.n.Add(1)) - 1
	s.steps[min(i, len(s.steps)-1)](w)
}

func status(st promo.Status, generated int64) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		parked := 0
		if st == promo.StatusFailed {
			parked = 1
		}
		fmt.Fprintf(w, `{"id":"7","status":%q,"codeCount":100,"generatedCount":%d,"batches":{"total":2,"parked":%d}}`,
			st, generated, parked)
	}
}

func problem(code int) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		writeProblem(w, code, fmt.Sprintf(`{"title":%q,"status":%d}`, http.StatusText(code), code))
	}
}

func TestWaitPromotion(t *testing.T) {
	tests := []struct {
		name      string
		steps     []func(w http.ResponseWriter)
		want      promo.Status
		wantErr   int // problem status, 0 = no error
		wantCalls int64
		progress  []int64
	}{
		{"completes", []func(http.ResponseWriter){status("pending", 0), status("generating", 50), status("completed", 100)},
			promo.StatusCompleted, 0, 3, []int64{0, 50, 100}},
		{"fails", []func(http.ResponseWriter){status("generating", 50), status("failed", 99)},
			promo.StatusFailed, 0, 2, []int64{50, 99}},
		{"retries 503 and a broken connection", []func(http.ResponseWriter){status("generating", 10), problem(503), problem(503), truncated, status("completed", 100)},
			promo.StatusCompleted, 0, 5, []int64{10, 100}},
		{"gives up on 404", []func(http.ResponseWriter){status("generating", 10), problem(404), status("completed", 100)},
			"", 404, 2, []int64{10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := &statusServer{steps: tt.steps}
			srv := httptest.NewServer(ss)
			defer srv.Close()
			var progress []int64
			var retries int
			c := newClient(t, srv.URL, client.WithRetryNotify(func(error, time.Duration) { retries++ }))
			st, err := c.WaitPromotion(context.Background(), "7", time.Millisecond, func(s client.Status) {
				progress = append(progress, s.GeneratedCount)
			})
			if tt.wantErr != 0 {
				var p *client.ProblemError
				if !errors.As(err, &p) || p.Status != tt.wantErr {
					t.Fatalf("err = %v, want a %d problem", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if st.Status != tt.want {
				t.Errorf("status = %q, want %q", st.Status, tt.want)
			}
			if got := ss.n.Load(); got != tt.wantCalls {
				t.Errorf("%d requests, want %d", got, tt.wantCalls)
			}
			if !reflect.DeepEqual(progress, tt.progress) {
				t.Errorf("progress = %v, want %v", progress, tt.progress)
			}
			if tt.name == "retries 503 and a broken connection" && retries != 3 {
				t.Errorf("%d retry notifications, want 3", retries)
			}
		})
	}
}

// truncated breaks the connection in the middle of the answer.
func truncated(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "500")
	io.WriteString(w, `{"id":"7","sta`)
}

func TestWaitPromotionRetriesUntilServerIsUp(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // refused until the server starts below

	var refusals atomic.Int64
	started := make(chan struct{})
	c := newClient(t, "http://"+addr, client.WithRetryNotify(func(err error, _ time.Duration) {
		if refusals.Add(1) == 3 {
			close(started)
		}
	}))
	go func() {
		<-started
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("relisten: %v", err)
			return
		}
		srv := &http.Server{Handler: &statusServer{steps: []func(http.ResponseWriter){status("completed", 100)}}}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}()
	st, err := c.WaitPromotion(context.Background(), "7", time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != promo.StatusCompleted || refusals.Load() < 3 {
		t.Errorf("status %q after %d refusals", st.Status, refusals.Load())
	}
}

func TestWaitPromotionStopsOnCancel(t *testing.T) {
	tests := []struct {
		name  string
		steps []func(http.ResponseWriter)
	}{
		{"while polling", []func(http.ResponseWriter){status("generating", 1)}},
		{"while retrying", []func(http.ResponseWriter){problem(503)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := &statusServer{steps: tt.steps}
			srv := httptest.NewServer(ss)
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			c := newClient(t, srv.URL, client.WithRetryMaxTime(0),
				client.WithRetryBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) }))
			go func() {
				for ss.n.Load() < 1 {
					time.Sleep(time.Millisecond)
				}
				cancel()
			}()
			done := make(chan error, 1)
			go func() {
				_, err := c.WaitPromotion(ctx, "7", time.Hour, nil)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("WaitPromotion did not return after cancel")
			}
		})
	}
}

func TestWaitPromotionGivesUpAfterRetryMaxTime(t *testing.T) {
	srv := httptest.NewServer(&statusServer{steps: []func(http.ResponseWriter){problem(503)}})
	defer srv.Close()
	c := newClient(t, srv.URL, client.WithRetryMaxTime(50*time.Millisecond))
	_, err := c.WaitPromotion(context.Background(), "7", time.Millisecond, nil)
	var p *client.ProblemError
	if !errors.As(err, &p) || p.Status != 503 {
		t.Fatalf("err = %v, want the last 503", err)
	}
	if !strings.Contains(err.Error(), "get promotion 7") {
		t.Errorf("err = %v does not say what failed", err)
	}
}
