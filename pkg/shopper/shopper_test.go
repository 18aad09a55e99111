package shopper_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/shopper"
	st "github.com/promocodes/promocodes/pkg/shopper/shoppertest"
)

func newVerifier(t testing.TB, cfg shopper.Config) *shopper.Verifier {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer, cfg.Audience = st.Issuer, st.Audience
	}
	v, err := shopper.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func wantReason(t *testing.T, what string, err error, reason promo.Reason, msg string) {
	t.Helper()
	if promo.ReasonOf(err) != reason || !promo.Is(err, promo.EUnauthorized) {
		t.Errorf("%s: %v (reason %q), want %s", what, err, promo.ReasonOf(err), reason)
		return
	}
	if msg != "" && !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: %q does not say %q", what, err, msg)
	}
}

// TestVerifyClaims: the claims and the clock skew, against a JWKS.
func TestVerifyClaims(t *testing.T) {
	a := st.NewRSA(t, "a")
	srv := st.NewJWKSServer(t, a)
	now := time.Now()
	v := newVerifier(t, shopper.Config{JWKSURL: srv.URL, Now: func() time.Time { return now }})
	ctx := context.Background()

	id, err := v.Verify(ctx, a.Token(t, st.Valid("alice")))
	if err != nil || id.Subject != "alice" {
		t.Fatalf("valid token: %+v, %v", id, err)
	}
	for _, tc := range []struct {
		name   string
		c      st.Claims
		reason promo.Reason
		msg    string
	}{
		{"expired 30 s ago, within the 60 s skew", st.Claims{Sub: "u", Iss: st.Issuer, Aud: st.Audience, Exp: now.Add(-30 * time.Second)}, "", ""},
		{"expired 90 s ago, outside the skew", st.Claims{Sub: "u", Iss: st.Issuer, Aud: st.Audience, Exp: now.Add(-90 * time.Second)},
			promo.ReasonShopperTokenExpired, "expired"},
		{"not valid for another 30 s, within the skew", st.Claims{Sub: "u", Iss: st.Issuer, Aud: st.Audience, Exp: now.Add(time.Hour),
			Nbf: now.Add(30 * time.Second)}, "", ""},
		{"not valid for another 5 min", st.Claims{Sub: "u", Iss: st.Issuer, Aud: st.Audience, Exp: now.Add(time.Hour),
			Nbf: now.Add(5 * time.Minute)}, promo.ReasonShopperTokenInvalid, "not valid yet"},
		{"wrong audience", st.Claims{Sub: "u", Iss: st.Issuer, Aud: "another-service", Exp: now.Add(time.Hour)},
			promo.ReasonShopperTokenInvalid, "wrong audience"},
		{"wrong issuer", st.Claims{Sub: "u", Iss: "https://evil.test/", Aud: st.Audience, Exp: now.Add(time.Hour)},
			promo.ReasonShopperTokenInvalid, "wrong issuer"},
		{"no subject", st.Claims{Iss: st.Issuer, Aud: st.Audience, Exp: now.Add(time.Hour)}, promo.ReasonShopperTokenInvalid, "sub"},
		{"no expiry", st.Claims{Sub: "u", Iss: st.Issuer, Aud: st.Audience}, promo.ReasonShopperTokenInvalid, "exp"},
	} {
		_, err := v.Verify(ctx, a.Token(t, tc.c))
		if tc.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		wantReason(t, tc.name, err, tc.reason, tc.msg)
	}
	_, err = v.Verify(ctx, "")
	wantReason(t, "no token", err, promo.ReasonShopperTokenMissing, "missing")
	for _, junk := range []string{"abc", "a.b", "a.b.c.d", strings.Repeat("x", 9000) + ".a.b", "..", "e30.e30.e30"} {
		_, err = v.Verify(ctx, junk)
		wantReason(t, "junk "+junk[:min(len(junk), 12)], err, promo.ReasonShopperTokenInvalid, "")
	}
}

// TestVerifyRefusesForgeries: a signature by another key under a known key
// id, "alg":"none", HS256 keyed with the public key (the algorithm
// confusion attack), an allowed algorithm that does not fit the key, and an
// algorithm off the allow-list are all refused.
func TestVerifyRefusesForgeries(t *testing.T) {
	a := st.NewRSA(t, "a")
	srv := st.NewJWKSServer(t, a)
	v := newVerifier(t, shopper.Config{JWKSURL: srv.URL, JWKSMinRefresh: time.Hour})
	ctx := context.Background()

	impostor := st.NewRSA(t, "a") // same kid, another key
	_, err := v.Verify(ctx, impostor.Token(t, st.Valid("alice")))
	wantReason(t, "wrong signature", err, promo.ReasonShopperTokenInvalid, "signature")

	_, err = v.Verify(ctx, st.HandMade(t, map[string]any{"alg": "none", "typ": "JWT"}, st.Valid("alice"), nil))
	wantReason(t, "alg none", err, promo.ReasonShopperTokenInvalid, `algorithm "none" is not allowed`)

	for _, secret := range [][]byte{[]byte(a.PublicPEM(t)), a.PublicDER(t)} {
		_, err = v.Verify(ctx, st.HandMade(t, map[string]any{"alg": "HS256", "kid": "a"}, st.Valid("alice"), secret))
		wantReason(t, "HS256 with the public key", err, promo.ReasonShopperTokenInvalid, `algorithm "HS256" is not allowed`)
	}

	// ES256 is allowed here, but key "a" is an RSA key.
	ec := st.NewEC(t, "a")
	v2 := newVerifier(t, shopper.Config{JWKSURL: srv.URL, Algorithms: []string{"RS256", "ES256"}, JWKSMinRefresh: time.Hour})
	_, err = v2.Verify(ctx, ec.Token(t, st.Valid("alice")))
	wantReason(t, "ES256 under an RSA key id", err, promo.ReasonShopperTokenInvalid, "")

	// PS256 is a fine algorithm for an RSA key, but not on the list.
	ps := a.WithAlg(t, "PS256")
	_, err = v.Verify(ctx, ps.Token(t, st.Valid("alice")))
	wantReason(t, "PS256 off the list", err, promo.ReasonShopperTokenInvalid, `"PS256" is not allowed`)
}

// TestKeyRotation: the JWKS switches keys; a token of the new key is
// accepted after the refetch it forces, without a restart; the old key's
// tokens are refused from then on; a storm of tokens with unknown key ids
// causes at most one fetch per JWKSMinRefresh.
func TestKeyRotation(t *testing.T) {
	a, b := st.NewRSA(t, "a"), st.NewEC(t, "b")
	srv := st.NewJWKSServer(t, a)
	const gap = 500 * time.Millisecond
	v := newVerifier(t, shopper.Config{JWKSURL: srv.URL, JWKSMinRefresh: gap})
	ctx := context.Background()
	if _, err := v.Verify(ctx, a.Token(t, st.Valid("alice"))); err != nil {
		t.Fatalf("key a: %v", err)
	}
	srv.Serve(b) // rotation: a is gone, b is in
	if id, err := v.Verify(ctx, b.Token(t, st.Valid("bob"))); err != nil || id.Subject != "bob" {
		t.Fatalf("key b after the rotation: %+v, %v", id, err)
	}
	if n := v.ForcedRefreshes(); n != 1 {
		t.Errorf("forced refreshes %d, want 1", n)
	}
	// Key a is not in the cached set: refused, and (within the gap) without
	// another fetch.
	before := srv.Fetches()
	_, err := v.Verify(ctx, a.Token(t, st.Valid("alice")))
	wantReason(t, "key a after the rotation", err, promo.ReasonShopperTokenInvalid, `unknown key id "a"`)
	if got := srv.Fetches(); got != before {
		t.Errorf("a refused old key fetched the key set again within the gap (%d → %d)", before, got)
	}

	// The storm: 200 concurrent tokens with key ids nobody has, over more
	// than two gaps.
	time.Sleep(gap)
	ghost := st.NewRSA(t, "ghost")
	forged := ghost.Token(t, st.Valid("mallory"))
	before = srv.Fetches()
	refused, took := st.Storm(200, 5, gap/2, func() bool {
		_, err := v.Verify(ctx, forged)
		return promo.ReasonOf(err) == promo.ReasonShopperTokenInvalid
	})
	fetched := srv.Fetches() - before
	bound := st.RefetchBound(took, gap)
	t.Logf("storm: 1,000 forged tokens over %s, %d JWKS fetches (bound %d), %d refused", took.Round(time.Millisecond),
		fetched, bound, refused)
	if refused != 1000 || fetched > bound {
		t.Errorf("storm: %d of 1000 refused, %d fetches, want all refused and at most %d fetches", refused, fetched, bound)
	}
}

// TestKeysUnavailable: a JWKS that cannot be fetched is the server's
// problem (ErrKeysUnavailable, answered 503), not the token's; once it is
// back the next token past the gap is verified.
func TestKeysUnavailable(t *testing.T) {
	a := st.NewRSA(t, "a")
	srv := st.NewJWKSServer(t, a)
	srv.SetDown(true)
	v := newVerifier(t, shopper.Config{JWKSURL: srv.URL, JWKSMinRefresh: 100 * time.Millisecond, StartWait: 50 * time.Millisecond})
	ctx := context.Background()
	if _, err := v.Verify(ctx, a.Token(t, st.Valid("alice"))); !errors.Is(err, shopper.ErrKeysUnavailable) {
		t.Fatalf("JWKS down: %v, want ErrKeysUnavailable", err)
	}
	srv.SetDown(false)
	time.Sleep(150 * time.Millisecond)
	if _, err := v.Verify(ctx, a.Token(t, st.Valid("alice"))); err != nil {
		t.Fatalf("JWKS back: %v", err)
	}
}

// TestStaticPublicKey: a PEM public key instead of a JWKS verifies its
// key's tokens (whatever key id they name) and no other key's.
func TestStaticPublicKey(t *testing.T) {
	e := st.NewEC(t, "any")
	v := newVerifier(t, shopper.Config{PublicKey: e.PublicPEM(t), Algorithms: []string{"ES256"}})
	if id, err := v.Verify(context.Background(), e.Token(t, st.Valid("carol"))); err != nil || id.Subject != "carol" {
		t.Fatalf("static key: %+v, %v", id, err)
	}
	other := st.NewEC(t, "any")
	_, err := v.Verify(context.Background(), other.Token(t, st.Valid("carol")))
	wantReason(t, "another key", err, promo.ReasonShopperTokenInvalid, "")
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  shopper.Config
		keys []string
	}{
		{"half configured", shopper.Config{Issuer: st.Issuer}, []string{"audience", "jwksUrl"}},
		{"both key sources", shopper.Config{Issuer: st.Issuer, Audience: st.Audience, JWKSURL: "https://id.test/jwks",
			PublicKey: "x"}, []string{"jwksUrl"}},
		{"http outside loopback", shopper.Config{Issuer: st.Issuer, Audience: st.Audience, JWKSURL: "http://id.test/jwks"}, []string{"jwksUrl"}},
		{"not a key", shopper.Config{Issuer: st.Issuer, Audience: st.Audience, PublicKey: "hello"}, []string{"publicKey"}},
		{"HS256", shopper.Config{Issuer: st.Issuer, Audience: st.Audience, JWKSURL: "https://id.test/jwks",
			Algorithms: []string{"RS256", "HS256"}}, []string{"algorithms"}},
		{"none", shopper.Config{Issuer: st.Issuer, Audience: st.Audience, JWKSURL: "https://id.test/jwks",
			Algorithms: []string{"none"}}, []string{"algorithms"}},
		{"skew", shopper.Config{Issuer: st.Issuer, Audience: st.Audience, JWKSURL: "https://id.test/jwks",
			ClockSkew: time.Hour}, []string{"clockSkew"}},
	} {
		err := tc.cfg.Validate()
		for _, k := range tc.keys {
			if err == nil || !strings.Contains(err.Error(), "auth.shopperJWT."+k) {
				t.Errorf("%s: %v, want an error on %s", tc.name, err, k)
			}
		}
	}
	if err := (shopper.Config{Issuer: st.Issuer, Audience: st.Audience, JWKSURL: "http://127.0.0.1:1/jwks"}).Validate(); err != nil {
		t.Errorf("http to loopback: %v", err)
	}
	if (shopper.Config{}).Enabled() || !(shopper.Config{Audience: "x"}).Enabled() {
		t.Error("Enabled")
	}
}
