// Package shoppertest makes what shopper-token tests need: signing keys the
// test generates, tokens with any claims (and hand-made ones a library would
// refuse to sign), and a local JWKS server whose keys the test can swap and
// whose fetches it counts. For tests only.
package shoppertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// The issuer and audience the tokens of Valid carry.
const (
	Issuer   = "https://id.shop.test/"
	Audience = "promocodes"
)

// Signer is a key the test made, with its key id and algorithm.
type Signer struct {
	KID  string
	Alg  string
	priv any
	pub  jwk.Key
}

// NewRSA makes an RS256 key.
func NewRSA(t testing.TB, kid string) Signer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(t, kid, "RS256", k, &k.PublicKey)
}

// NewEC makes an ES256 key.
func NewEC(t testing.TB, kid string) Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(t, kid, "ES256", k, &k.PublicKey)
}

// NewSigner wraps a key pair for alg (another algorithm for an existing
// key, say).
func NewSigner(t testing.TB, kid, alg string, priv, pub any) Signer {
	t.Helper()
	k, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, alg)
	return Signer{KID: kid, Alg: alg, priv: priv, pub: k}
}

// WithAlg is the same key pair declared (and signing) for another algorithm.
func (s Signer) WithAlg(t testing.TB, alg string) Signer {
	t.Helper()
	var raw any
	if err := jwk.Export(s.pub, &raw); err != nil {
		t.Fatal(err)
	}
	return NewSigner(t, s.KID, alg, s.priv, raw)
}

// PublicPEM is the public key in PEM (a static auth.shopperJWT.publicKey).
func (s Signer) PublicPEM(t testing.TB) string {
	t.Helper()
	var raw any
	if err := jwk.Export(s.pub, &raw); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// PublicDER is the public key in DER, what an HS256 forgery keys its HMAC with.
func (s Signer) PublicDER(t testing.TB) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(s.PublicPEM(t)))
	return b.Bytes
}

// Claims are a token's claims; empty ones are left out.
type Claims struct {
	Sub, Iss, Aud string
	Exp, Nbf      time.Time
}

// Valid are claims the default configuration accepts for ten minutes.
func Valid(sub string) Claims {
	return Claims{Sub: sub, Iss: Issuer, Aud: Audience, Exp: time.Now().Add(10 * time.Minute)}
}

// Token signs c with s, the key id in the header.
func (s Signer) Token(t testing.TB, c Claims) string {
	t.Helper()
	b := jwt.NewBuilder()
	if c.Sub != "" {
		b = b.Subject(c.Sub)
	}
	if c.Iss != "" {
		b = b.Issuer(c.Iss)
	}
	if c.Aud != "" {
		b = b.Audience([]string{c.Aud})
	}
	if !c.Exp.IsZero() {
		b = b.Expiration(c.Exp)
	}
	if !c.Nbf.IsZero() {
		b = b.NotBefore(c.Nbf)
	}
	tok, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	alg, ok := jwa.LookupSignatureAlgorithm(s.Alg)
	if !ok {
		t.Fatalf("algorithm %q", s.Alg)
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, s.KID)
	out, err := jwt.Sign(tok, jwt.WithKey(alg, s.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// HandMade builds a token with any header and an HMAC-SHA256 signature
// under key (nil: an empty signature), for what a library would refuse to
// sign: "alg":"none", HS256 keyed with a public key.
func HandMade(t testing.TB, header map[string]any, c Claims, key []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(map[string]any{"sub": c.Sub, "iss": c.Iss, "aud": c.Aud, "exp": c.Exp.Unix()})
	if key == nil {
		return in + "."
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// JWKSServer serves a key set that the test can swap, counting fetches.
type JWKSServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []Signer
	fetches atomic.Int64
	down    atomic.Bool
}

// NewJWKSServer serves keys on a loopback address until the test ends.
func NewJWKSServer(t testing.TB, keys ...Signer) *JWKSServer {
	t.Helper()
	s := &JWKSServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		set := jwk.NewSet()
		for _, k := range s.keys {
			_ = set.AddKey(k.pub)
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

// Serve replaces the key set (a rotation).
func (s *JWKSServer) Serve(keys ...Signer) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

// Fetches is how many times the key set was asked for.
func (s *JWKSServer) Fetches() int64 { return s.fetches.Load() }

// SetDown makes the server answer 503 (true) or the keys (false).
func (s *JWKSServer) SetDown(down bool) { s.down.Store(down) }

// Storm runs try from workers goroutines, each rounds times with pause in
// between, and returns how many tries said true and how long it took: the
// flood of tokens with unknown key ids whose JWKS refetches must stay
// bounded (RefetchBound).
func Storm(workers, rounds int, pause time.Duration, try func() bool) (ok int64, took time.Duration) {
	var wg sync.WaitGroup
	var n atomic.Int64
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if try() {
					n.Add(1)
				}
				time.Sleep(pause)
			}
		}()
	}
	wg.Wait()
	return n.Load(), time.Since(start)
}

// RefetchBound is the most JWKS fetches that refetches at most once per
// minRefresh can make in took: n fetches need (n-1)·minRefresh between the
// first and the last.
func RefetchBound(took, minRefresh time.Duration) int64 { return int64(took/minRefresh) + 1 }
