package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/api"
	"github.com/promocodes/promocodes/pkg/shopper"
	st "github.com/promocodes/promocodes/pkg/shopper/shoppertest"
)

const (
	shopAdmin  = "admin-token-0123456789"
	shopRedeem = "redeem-token-0123456789"
)

// shopperEnv is an API with auth.shopperJWT against a local JWKS, and a
// vanity code every test may use.
func shopperEnv(t *testing.T, cfg shopper.Config) (*env, st.Signer, string) {
	t.Helper()
	key := st.NewRSA(t, "k1")
	jwks := st.NewJWKSServer(t, key)
	cfg.Issuer, cfg.Audience = st.Issuer, st.Audience
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = jwks.URL
	}
	v, err := shopper.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	e := newEnvWith(t, envConfig{AdminTokens: []string{shopAdmin}, RedeemTokens: []string{shopRedeem}}, nil,
		api.WithShopperTokens(v))
	e.token = shopAdmin
	e.createVanity(`{"name":"shop","code":"SHOPPER42","maxUsagePerCode":100,"perUserLimit":10}`)
	e.token = shopRedeem
	return e, key, "SHOPPER42"
}

func withShopper(token string) http.Header { return http.Header{"Shopper-Token": {token}} }

type shopperProblem struct {
	Status int    `json:"status"`
	Reason string `json:"reason"`
	Errors []struct {
		Field string `json:"field"`
	} `json:"errors"`
}

func wantShopperRefusal(t *testing.T, what string, r response, status int, reason string) {
	t.Helper()
	var p shopperProblem
	_ = json.Unmarshal(r.body, &p)
	if r.StatusCode != status || p.Reason != reason {
		t.Errorf("%s: %d %s, want %d %s", what, r.StatusCode, r.body, status, reason)
	}
	if status == http.StatusUnauthorized && !strings.Contains(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s: 401 without WWW-Authenticate", what)
	}
}

// usesLeft is the code's remaining uses, read by the admin.
func (e *env) usesLeft(code string) int {
	e.t.Helper()
	tok := e.token
	e.token = shopAdmin
	defer func() { e.token = tok }()
	r := e.do(http.MethodGet, "/v1/codes/"+code+"?userId=nobody", "", nil)
	var v struct {
		UsesLeft int `json:"usesLeft"`
	}
	decodeJSON(e.t, r.body, &v)
	return v.UsesLeft
}

// TestShopperTokenRedemption: with auth.shopperJWT the redeem role must
// forward the shopper's token; the user is its subject; a body naming
// another user is 403 user_mismatch; a missing, expired or foreign token is
// 401 with its reason; none of the refusals uses the code.
func TestShopperTokenRedemption(t *testing.T) {
	e, key, code := shopperEnv(t, shopper.Config{})
	path := "/v1/codes/" + code + "/redemptions"
	alice := key.Token(t, st.Valid("alice"))

	wantShopperRefusal(t, "no shopper token", e.do(http.MethodPost, path, `{"userId":"alice"}`, nil),
		http.StatusUnauthorized, "shopper_token_missing")
	expired := st.Valid("alice")
	expired.Exp = time.Now().Add(-5 * time.Minute)
	wantShopperRefusal(t, "expired", e.do(http.MethodPost, path, `{}`, withShopper(key.Token(t, expired))),
		http.StatusUnauthorized, "shopper_token_expired")
	foreign := st.Valid("alice")
	foreign.Aud = "another-service"
	wantShopperRefusal(t, "wrong audience", e.do(http.MethodPost, path, `{}`, withShopper(key.Token(t, foreign))),
		http.StatusUnauthorized, "shopper_token_invalid")
	wantShopperRefusal(t, "forged", e.do(http.MethodPost, path, `{}`, withShopper(st.NewRSA(t, "k1").Token(t, st.Valid("alice")))),
		http.StatusUnauthorized, "shopper_token_invalid")
	r := e.do(http.MethodPost, path, `{"userId":"bob"}`, withShopper(alice))
	wantShopperRefusal(t, "alice's token, bob's userId", r, http.StatusForbidden, "user_mismatch")
	var p shopperProblem
	decodeJSON(t, r.body, &p)
	if len(p.Errors) != 1 || p.Errors[0].Field != "userId" {
		t.Errorf("user_mismatch does not name userId: %s", r.body)
	}
	// The shopper token alone is not a credential.
	tok := e.token
	e.token = alice
	wantShopperRefusal(t, "the JWT as the bearer token", e.do(http.MethodPost, path, `{}`, withShopper(alice)),
		http.StatusUnauthorized, "")
	e.token = tok
	if left := e.usesLeft(code); left != 100 {
		t.Fatalf("refused requests used the code: %d uses left, want 100", left)
	}

	for _, body := range []string{`{}`, `{"userId":"alice"}`} {
		r := e.do(http.MethodPost, path, body, withShopper("Bearer "+alice))
		var rc receipt
		decodeJSON(t, r.body, &rc)
		if r.StatusCode != http.StatusCreated || rc.UserID != "alice" {
			t.Errorf("redeem %s with alice's token = %d %s", body, r.StatusCode, r.body)
		}
	}
	// Validation is for the subject; another userId is refused.
	r = e.do(http.MethodGet, "/v1/codes/"+code, "", withShopper(alice))
	var v struct {
		UserUsesLeft *int `json:"userUsesLeft"`
	}
	decodeJSON(t, r.body, &v)
	if r.StatusCode != http.StatusOK || v.UserUsesLeft == nil || *v.UserUsesLeft != 8 {
		t.Errorf("validate with alice's token = %d %s, want alice's 8 uses left", r.StatusCode, r.body)
	}
	wantShopperRefusal(t, "validate bob with alice's token", e.do(http.MethodGet, "/v1/codes/"+code+"?userId=bob", "",
		withShopper(alice)), http.StatusForbidden, "user_mismatch")

	// The admin acts for anyone without a shopper token, and by its rules with one.
	e.token = shopAdmin
	if r := e.do(http.MethodPost, path, `{"userId":"carol"}`, nil); r.StatusCode != http.StatusCreated {
		t.Errorf("admin for carol = %d %s", r.StatusCode, r.body)
	}
	wantShopperRefusal(t, "admin with alice's token for bob", e.do(http.MethodPost, path, `{"userId":"bob"}`, withShopper(alice)),
		http.StatusForbidden, "user_mismatch")
	if left := e.usesLeft(code); left != 97 {
		t.Errorf("%d uses left, want 97 (alice twice, carol once)", left)
	}
}

// TestShopperTokenReservations: a reservation is made for the token's
// subject, and only its shopper may read, confirm or release it.
func TestShopperTokenReservations(t *testing.T) {
	e, key, code := shopperEnv(t, shopper.Config{})
	alice, bob := key.Token(t, st.Valid("alice")), key.Token(t, st.Valid("bob"))
	r := e.do(http.MethodPost, "/v1/codes/"+code+"/reservations", `{"ttl":"5m"}`, withShopper(alice))
	var res struct {
		ID     string `json:"id"`
		UserID string `json:"userId"`
	}
	decodeJSON(t, r.body, &res)
	if r.StatusCode != http.StatusCreated || res.UserID != "alice" {
		t.Fatalf("reserve with alice's token = %d %s", r.StatusCode, r.body)
	}
	wantShopperRefusal(t, "reserve for bob with alice's token", e.do(http.MethodPost, "/v1/codes/"+code+"/reservations",
		`{"userId":"bob"}`, withShopper(alice)), http.StatusForbidden, "user_mismatch")
	p := "/v1/reservations/" + res.ID
	wantShopperRefusal(t, "bob reads alice's", e.do(http.MethodGet, p, "", withShopper(bob)), http.StatusForbidden, "user_mismatch")
	wantShopperRefusal(t, "bob confirms alice's", e.do(http.MethodPost, p+"/confirm", `{"orderId":"o-1"}`, withShopper(bob)),
		http.StatusForbidden, "user_mismatch")
	wantShopperRefusal(t, "bob releases alice's", e.do(http.MethodDelete, p, "", withShopper(bob)), http.StatusForbidden, "user_mismatch")
	wantShopperRefusal(t, "release without a token", e.do(http.MethodDelete, p, "", nil), http.StatusUnauthorized, "shopper_token_missing")
	if r := e.do(http.MethodGet, p, "", withShopper(alice)); r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), `"status":"held"`) {
		t.Errorf("alice reads hers = %d %s", r.StatusCode, r.body)
	}
	if r := e.do(http.MethodPost, p+"/confirm", `{"orderId":"o-1"}`, withShopper(alice)); r.StatusCode != http.StatusCreated {
		t.Errorf("alice confirms hers = %d %s", r.StatusCode, r.body)
	}
	if r := e.do(http.MethodGet, "/v1/reservations/nosuchreservation", "", withShopper(alice)); r.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown reservation = %d %s, want 404", r.StatusCode, r.body)
	}
}

// TestShopperKeysUnavailable: a JWKS that cannot be fetched is 503 with
// Retry-After (the server's problem), not 401 (the shopper's).
func TestShopperKeysUnavailable(t *testing.T) {
	down := st.NewJWKSServer(t)
	down.SetDown(true)
	e, key, code := shopperEnv(t, shopper.Config{JWKSURL: down.URL, StartWait: 10 * time.Millisecond})
	r := e.do(http.MethodPost, "/v1/codes/"+code+"/redemptions", `{}`, withShopper(key.Token(t, st.Valid("alice"))))
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("JWKS down = %d %s (Retry-After %q), want 503", r.StatusCode, r.body, r.Header.Get("Retry-After"))
	}
}

// TestShopperTokenIgnoredWhenNotConfigured: without auth.shopperJWT the
// header is ignored and the body's userId is the user, as before.
func TestShopperTokenIgnoredWhenNotConfigured(t *testing.T) {
	e := newEnv(t, envConfig{Open: true}, nil)
	e.createVanity(`{"name":"v","code":"PLAIN42","maxUsagePerCode":5}`)
	r := e.do(http.MethodPost, "/v1/codes/PLAIN42/redemptions", `{"userId":"dave"}`, withShopper("garbage"))
	if r.StatusCode != http.StatusCreated || !strings.Contains(string(r.body), `"userId":"dave"`) {
		t.Errorf("redeem = %d %s", r.StatusCode, r.body)
	}
}

// TestShopperTokenIssuanceAndEdges: issuance and a user's codes take the
// user from the token (another user named: 403 user_mismatch, before
// anything is looked up); a token without a subject, a subject that is no
// valid user id, and a token of 1 MiB are 401 shopper_token_invalid; a JWKS
// that answers only after the request's keys are needed is 503 within the
// HTTP client's timeout, not a hung request.
func TestShopperTokenIssuanceAndEdges(t *testing.T) {
	e, key, _ := shopperEnv(t, shopper.Config{})
	e.token = shopAdmin
	id := e.createVanity(`{"name":"v-iss","code":"VISS1","maxUsagePerCode":5}`)
	e.token = shopRedeem
	alice := withShopper(key.Token(t, st.Valid("alice")))
	path := "/v1/promotions/" + id + "/issuances"
	wantShopperRefusal(t, "issuance to another user", e.do(http.MethodPost, path, `{"userId":"bob"}`, alice),
		http.StatusForbidden, "user_mismatch")
	// The token's subject is the user: the request gets past the required
	// userId to the store, which refuses a vanity promotion.
	if r := e.do(http.MethodPost, path, `{}`, alice); r.StatusCode != http.StatusConflict ||
		!strings.Contains(string(r.body), "vanity") {
		t.Errorf("issuance for the token's user = %d %s, want 409 (a vanity promotion)", r.StatusCode, r.body)
	}
	wantShopperRefusal(t, "another user's codes", e.do(http.MethodGet, "/v1/users/bob/codes", "", alice),
		http.StatusForbidden, "user_mismatch")
	if r := e.do(http.MethodGet, "/v1/users/alice/codes", "", alice); r.StatusCode != http.StatusOK {
		t.Errorf("alice's own codes = %d %s", r.StatusCode, r.body)
	}
	noSub := st.Valid("")
	wantShopperRefusal(t, "no subject", e.do(http.MethodPost, path, `{"userId":"alice"}`, withShopper(key.Token(t, noSub))),
		http.StatusUnauthorized, "shopper_token_invalid")
	wantShopperRefusal(t, "subject with a control character",
		e.do(http.MethodPost, path, `{}`, withShopper(key.Token(t, st.Valid("al\x01ice")))),
		http.StatusUnauthorized, "shopper_token_invalid")
	wantShopperRefusal(t, "subject of 300 characters",
		e.do(http.MethodPost, path, `{}`, withShopper(key.Token(t, st.Valid(strings.Repeat("a", 300))))),
		http.StatusUnauthorized, "shopper_token_invalid")
	huge := "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("A", 1<<20) + ".sig"
	if r := e.do(http.MethodPost, path, `{}`, withShopper(huge)); r.StatusCode != http.StatusUnauthorized &&
		r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 1 MiB token = %d %s, want 401 or 431", r.StatusCode, r.body)
	}
}

// TestShopperSlowJWKS: a key set server that takes longer than the HTTP
// client's timeout: the request is answered 503 after about that timeout.
func TestShopperSlowJWKS(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	e, key, code := shopperEnv(t, shopper.Config{JWKSURL: slow.URL, StartWait: 10 * time.Millisecond,
		HTTPClient: &http.Client{Timeout: 300 * time.Millisecond}})
	start := time.Now()
	r := e.do(http.MethodPost, "/v1/codes/"+code+"/redemptions", `{}`, withShopper(key.Token(t, st.Valid("alice"))))
	took := time.Since(start)
	t.Logf("slow JWKS: %d after %s", r.StatusCode, took.Round(time.Millisecond))
	if r.StatusCode != http.StatusServiceUnavailable || took > 5*time.Second {
		t.Errorf("slow JWKS = %d after %s, want 503 within a few seconds", r.StatusCode, took)
	}
}

// squatKeys: with signed shoppers, Mallory sends the Idempotency-Keys she
// expects Bob's checkout to use (an order number) before Bob does. Bob's
// redemption and reservation with those keys must be his own (201, not a
// 409 idempotency_conflict for as long as keys are kept), his retries must
// replay his own, hers hers, and every answer and read shows the key as it
// was sent. It returns the outcome.
func squatKeys(t *testing.T) string {
	t.Helper()
	e, key, code := shopperEnv(t, shopper.Config{})
	mallory, bob := key.Token(t, st.Valid("mallory")), key.Token(t, st.Valid("bob"))
	as := func(tok, k string) http.Header { h := withShopper(tok); h.Set("Idempotency-Key", k); return h }
	type answer struct {
		ID             string `json:"id"`
		UserID         string `json:"userId"`
		IdempotencyKey string `json:"idempotencyKey"`
	}
	redeem := func(who, tok, k string, replay bool) answer {
		t.Helper()
		r := e.do(http.MethodPost, "/v1/codes/"+code+"/redemptions", `{"orderId":"order-1001"}`, as(tok, k))
		var a answer
		_ = json.Unmarshal(r.body, &a)
		if r.StatusCode != http.StatusCreated || a.UserID != who || a.IdempotencyKey != k {
			t.Fatalf("%s's redemption with key %q: %d %s; want 201, user %s, the key as sent", who, k, r.StatusCode, r.body, who)
		}
		if got := r.Header.Get("Idempotent-Replayed") == "true"; got != replay {
			t.Fatalf("%s's redemption with key %q: replayed %v, want %v", who, k, got, replay)
		}
		return a
	}
	m := redeem("mallory", mallory, "order-1001", false)
	b := redeem("bob", bob, "order-1001", false)
	if b.ID == m.ID {
		t.Fatalf("bob was answered mallory's redemption %s", m.ID)
	}
	if again := redeem("bob", bob, "order-1001", true); again.ID != b.ID {
		t.Errorf("bob's retry answered %s, want his %s", again.ID, b.ID)
	}
	if again := redeem("mallory", mallory, "order-1001", true); again.ID != m.ID {
		t.Errorf("mallory's retry answered %s, want her %s", again.ID, m.ID)
	}
	e.token = shopAdmin
	r := e.do(http.MethodGet, "/v1/users/bob/redemptions", "", nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), `"idempotencyKey":"order-1001"`) ||
		strings.Contains(string(r.body), "\\u001f") {
		t.Errorf("bob's audit trail: %d %s; want the key as sent", r.StatusCode, r.body)
	}
	e.token = shopRedeem
	for _, who := range []struct{ name, tok string }{{"mallory", mallory}, {"bob", bob}} {
		r := e.do(http.MethodPost, "/v1/codes/"+code+"/reservations", `{}`, as(who.tok, "hold-1001"))
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("%s's reservation with key hold-1001: %d %s; want 201", who.name, r.StatusCode, r.body)
		}
	}
	return "bob's redemption and reservation with the keys mallory used first are his own (201), each retry replays its own"
}

func TestShopperKeysAreTheirOwn(t *testing.T) { squatKeys(t) }
