//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	st "github.com/promocodes/promocodes/pkg/shopper/shoppertest"
)

const advRedeemToken = "e2e-redeem-token-0123456789"

// TestAdversarialShopperTokens is the adversarial suite's case for signed
// shoppers (auth.shopperJWT) against the real binary over HTTP, configured
// from the environment like a deployment, with the test's own keys and JWKS
// server: concurrent waves of forged, expired, not-yet-valid, foreign,
// unsigned ("alg":"none"), algorithm-confused (HS256 keyed with the public
// key) and mismatched-user requests must all be refused with their reason
// and take no use of the code; a key rotation at the JWKS is picked up
// without a restart; a storm of unknown key ids fetches the JWKS at most
// once per auth.shopperJWT.jwksMinRefresh. On SQLite (promocodes dev) and
// on PostgreSQL (promocodes api).
func TestAdversarialShopperTokens(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		s := &stack{t: t, dir: t.TempDir()}
		t.Cleanup(s.stopAll)
		k1 := st.NewRSA(t, "k1")
		jwks := st.NewJWKSServer(t, k1)
		addr := freePort(t)
		s.env = append(shopperEnv(jwks.URL), "PROMOCODES_ENV=dev", "PROMOCODES_KAFKA_BROKERS="+freePort(t),
			"PROMOCODES_CODES_SECRET="+testSecret, "PROMOCODES_AUTH_ADMINTOKENS="+testToken, "PROMOCODES_LOG_FORMAT=json")
		s.start("dev", nil, "dev", "--data-dir", filepath.Join(s.dir, "data"), "--http-addr", addr)
		s.apiURL = "http://" + addr
		waitHTTP(t, s.apiURL+"/readyz", 60*time.Second)
		t.Logf("adversarial: shopper tokens [sqlite]: %s", shopperAttack(t, s, jwks, k1))
	})
	t.Run("postgres", func(t *testing.T) {
		s := newStack(t)
		k1 := st.NewRSA(t, "k1")
		jwks := st.NewJWKSServer(t, k1)
		s.env = append(s.env, shopperEnv(jwks.URL)...)
		s.startBroker()
		s.startAPI()
		t.Logf("adversarial: shopper tokens [postgres]: %s", shopperAttack(t, s, jwks, k1))
	})
}

// minRefresh is auth.shopperJWT.jwksMinRefresh in this case.
const minRefresh = time.Second

func shopperEnv(jwksURL string) []string {
	return []string{
		"PROMOCODES_AUTH_REDEEMTOKENS=" + advRedeemToken,
		"PROMOCODES_AUTH_SHOPPERJWT_ISSUER=" + st.Issuer,
		"PROMOCODES_AUTH_SHOPPERJWT_AUDIENCE=" + st.Audience,
		"PROMOCODES_AUTH_SHOPPERJWT_JWKSURL=" + jwksURL,
		"PROMOCODES_AUTH_SHOPPERJWT_JWKSMINREFRESH=" + minRefresh.String(),
	}
}

// shopperAttack runs the case against a running API and returns its outcome.
func shopperAttack(t *testing.T, s *stack, jwks *st.JWKSServer, k1 st.Signer) (outcome string) {
	if code, body := s.do("POST", "/v1/promotions", `{"name":"shop","code":"ADVSHOP1","maxUsagePerCode":100000,"perUserLimit":100000}`); code != http.StatusAccepted && code != http.StatusCreated {
		t.Fatalf("vanity: %d %s", code, body)
	}
	post := func(bearer, shopperToken, body string) (int, string) {
		req, _ := http.NewRequest("POST", s.apiURL+"/v1/codes/ADVSHOP1/redemptions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bearer)
		if shopperToken != "" {
			req.Header.Set("Shopper-Token", shopperToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("redeem: %v", err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var p struct{ Reason string }
		_ = json.Unmarshal(b, &p)
		return resp.StatusCode, p.Reason
	}
	now := time.Now()
	claims := func(mod func(*st.Claims)) st.Claims {
		c := st.Valid("alice")
		mod(&c)
		return c
	}
	attacks := []struct {
		name, bearer, token, body string
		status                    int
		reason                    string
	}{
		{"no shopper token", advRedeemToken, "", `{"userId":"alice"}`, 401, "shopper_token_missing"},
		{"expired", advRedeemToken, k1.Token(t, claims(func(c *st.Claims) { c.Exp = now.Add(-2 * time.Minute) })), `{}`, 401, "shopper_token_expired"},
		{"not yet valid", advRedeemToken, k1.Token(t, claims(func(c *st.Claims) { c.Nbf = now.Add(5 * time.Minute) })), `{}`, 401, "shopper_token_invalid"},
		{"wrong audience", advRedeemToken, k1.Token(t, claims(func(c *st.Claims) { c.Aud = "other" })), `{}`, 401, "shopper_token_invalid"},
		{"wrong issuer", advRedeemToken, k1.Token(t, claims(func(c *st.Claims) { c.Iss = "https://evil.test/" })), `{}`, 401, "shopper_token_invalid"},
		{"forged signature", advRedeemToken, st.NewRSA(t, "k1").Token(t, st.Valid("alice")), `{}`, 401, "shopper_token_invalid"},
		{"alg none", advRedeemToken, st.HandMade(t, map[string]any{"alg": "none"}, st.Valid("alice"), nil), `{}`, 401, "shopper_token_invalid"},
		{"HS256 keyed with the public key", advRedeemToken, st.HandMade(t, map[string]any{"alg": "HS256", "kid": "k1"},
			st.Valid("alice"), k1.PublicDER(t)), `{}`, 401, "shopper_token_invalid"},
		{"the JWT as the bearer", k1.Token(t, st.Valid("alice")), k1.Token(t, st.Valid("alice")), `{}`, 401, ""},
		{"another user's userId", advRedeemToken, k1.Token(t, st.Valid("alice")), `{"userId":"bob"}`, 403, "user_mismatch"},
	}
	const wave = 20
	var wg sync.WaitGroup
	var refused, wrong atomic.Int64
	for _, a := range attacks {
		for range wave {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, reason := post(a.bearer, a.token, a.body)
				if code == a.status && reason == a.reason {
					refused.Add(1)
					return
				}
				wrong.Add(1)
				t.Errorf("%s: %d %q, want %d %q", a.name, code, reason, a.status, a.reason)
			}()
		}
	}
	wg.Wait()

	accepted := 0
	if code, _ := post(advRedeemToken, k1.Token(t, st.Valid("alice")), `{}`); code == http.StatusCreated {
		accepted++
	} else {
		t.Errorf("alice's valid token: %d", code)
	}
	// Rotation: the JWKS now serves k2 only.
	k2 := st.NewEC(t, "k2")
	jwks.Serve(k2)
	time.Sleep(minRefresh) // past the gap since any earlier forced fetch
	before := jwks.Fetches()
	if code, _ := post(advRedeemToken, k2.Token(t, st.Valid("alice")), `{"userId":"alice"}`); code == http.StatusCreated {
		accepted++
	} else {
		t.Errorf("the rotated key k2: %d, want 201 without a restart", code)
	}
	rotationFetches := jwks.Fetches() - before
	if code, reason := post(advRedeemToken, k1.Token(t, st.Valid("alice")), `{}`); code != 401 || reason != "shopper_token_invalid" {
		t.Errorf("the retired key k1 after the rotation: %d %q", code, reason)
	}

	// Storm: 400 requests with unknown key ids over about 2 s.
	time.Sleep(minRefresh)
	ghost := st.NewRSA(t, "ghost").Token(t, st.Valid("mallory"))
	before = jwks.Fetches()
	storm, took := st.Storm(40, 10, 200*time.Millisecond, func() bool {
		code, reason := post(advRedeemToken, ghost, `{}`)
		return code == 401 && reason == "shopper_token_invalid"
	})
	stormFetches := jwks.Fetches() - before
	bound := st.RefetchBound(took, minRefresh)
	if storm != 400 || stormFetches > bound {
		t.Errorf("storm: %d of 400 refused, %d JWKS fetches in %s (bound %d)", storm, stormFetches, took, bound)
	}

	code, body := s.do("GET", "/v1/codes/ADVSHOP1?userId=nobody", "")
	var v struct{ UsesLeft int }
	_ = json.Unmarshal(body, &v)
	used := 100000 - v.UsesLeft
	if code != http.StatusOK || used != accepted {
		t.Errorf("the code has %d uses taken (%d %s), want %d: only the valid tokens' redemptions", used, code, body, accepted)
	}
	return fmt.Sprintf("%d attacks of %d kinds refused with their reason (%d answered otherwise), uses taken %d = valid "+
		"tokens accepted %d/2; rotated key accepted after %d JWKS fetch(es) without a restart, retired key refused; "+
		"storm of %d unknown-key-id requests over %s caused %d JWKS fetches (bound %d)",
		refused.Load(), len(attacks), wrong.Load(), used, accepted, rotationFetches, storm, took.Round(100*time.Millisecond),
		stormFetches, bound)
}
