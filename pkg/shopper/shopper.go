// Package shopper verifies shoppers' signed identity tokens: JWTs issued by
// the shop's identity provider, whose subject is the user id the API acts
// for. A token is accepted when its signature verifies with a configured key
// (a static public key, or the provider's JWKS, fetched, cached and refreshed
// in the background), its algorithm is on the allow-list (asymmetric only:
// "none" and the HMAC algorithms are refused, so a public key can never be
// used as an HMAC secret), its issuer and audience are the configured ones,
// it has a subject and an expiry, and it is neither expired nor not yet
// valid beyond the allowed clock skew.
//
// A token signed with a key id the cached key set does not have forces one
// refetch of the JWKS, at most once per JWKSMinRefresh however many such
// tokens arrive (a rotated key is picked up without a restart; a flood of
// forged key ids costs at most one fetch per interval).
//
// It is the only package that imports the JWT library (lestrrat-go/jwx). A
// Verifier is safe for concurrent use; Close stops its background refresh.
package shopper

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Defaults and bounds of the configuration.
const (
	DefaultClockSkew      = 60 * time.Second
	MaxClockSkew          = 5 * time.Minute
	DefaultJWKSRefresh    = 15 * time.Minute
	DefaultJWKSMinRefresh = 10 * time.Second
	// MaxTokenBytes bounds a token: identity tokens are a few hundred bytes
	// to a few KiB.
	MaxTokenBytes = 8 << 10
)

// DefaultAlgorithms are the algorithms accepted when none are configured.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// allowedAlgorithms are the asymmetric JWS algorithms a configuration may
// list, with the key type each needs.
var allowedAlgorithms = map[string]string{
	"RS256": "RSA", "RS384": "RSA", "RS512": "RSA", "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
	"ES256": "EC", "ES384": "EC", "ES512": "EC", "EdDSA": "OKP",
}

// curveOf is the curve an ECDSA algorithm needs.
var curveOf = map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}

// Config says which tokens to trust. Issuer and Audience are required, and
// exactly one of JWKSURL and PublicKey.
type Config struct {
	Issuer   string
	Audience string
	// JWKSURL is the identity provider's key set (https; http only to a
	// loopback address).
	JWKSURL string
	// PublicKey is a static public key: PEM ("PUBLIC KEY", "RSA PUBLIC
	// KEY") or a JWK in JSON.
	PublicKey string
	// Algorithms is the allow-list (default DefaultAlgorithms): a token
	// whose header names another algorithm is refused before any key is
	// tried.
	Algorithms []string
	// ClockSkew is how far exp and nbf may be off the server's clock
	// (default 60 s, at most 5 min).
	ClockSkew time.Duration
	// JWKSRefresh is how often the key set is refetched in the background
	// (default 15 min); JWKSMinRefresh the least time between two fetches
	// forced by tokens with an unknown key id (default 10 s).
	JWKSRefresh    time.Duration
	JWKSMinRefresh time.Duration
	// StartWait is how long New waits for the first fetch of the key set
	// (default 5 s). A provider that is down at start delays tokens (503
	// until the keys arrive), not the start.
	StartWait time.Duration
	// HTTPClient fetches the key set (default: a client with a 10 s
	// timeout).
	HTTPClient *http.Client
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Enabled reports whether any key of the block is set: a block that is set
// at all must be complete (Validate).
func (c Config) Enabled() bool {
	return c.Issuer != "" || c.Audience != "" || c.JWKSURL != "" || c.PublicKey != ""
}

func (c *Config) setDefaults() {
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = DefaultJWKSRefresh
	}
	if c.JWKSMinRefresh == 0 {
		c.JWKSMinRefresh = DefaultJWKSMinRefresh
	}
	if c.StartWait == 0 {
		c.StartWait = 5 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks a configuration after defaults; every problem is named
// with its key (auth.shopperJWT.issuer, ...).
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("auth.shopperJWT.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Issuer == "" {
		bad("issuer", "must be set: tokens of any issuer would be trusted")
	}
	if c.Audience == "" {
		bad("audience", "must be set: tokens meant for any service would be trusted")
	}
	switch {
	case c.JWKSURL == "" && c.PublicKey == "":
		bad("jwksUrl", "set jwksUrl or publicKey: there is no key to verify tokens with")
	case c.JWKSURL != "" && c.PublicKey != "":
		bad("jwksUrl", "set jwksUrl or publicKey, not both")
	case c.JWKSURL != "":
		if msg := checkJWKSURL(c.JWKSURL); msg != "" {
			bad("jwksUrl", "%s", msg)
		}
	default:
		if _, err := parsePublicKey(c.PublicKey); err != nil {
			bad("publicKey", "%v", err)
		}
	}
	for _, a := range c.Algorithms {
		if _, ok := allowedAlgorithms[a]; !ok {
			bad("algorithms", "%q is not allowed: only asymmetric algorithms are (%s); \"none\" and HS256/384/512 "+
				"would let anyone holding the public key, or no key, sign tokens", a, strings.Join(algorithmNames(), ", "))
		}
	}
	if c.ClockSkew < 0 || c.ClockSkew > MaxClockSkew {
		bad("clockSkew", "must be between 0 and %s, got %s", MaxClockSkew, c.ClockSkew)
	}
	if c.JWKSRefresh < time.Minute {
		bad("jwksRefresh", "must be at least 1m, got %s", c.JWKSRefresh)
	}
	if c.JWKSMinRefresh <= 0 {
		bad("jwksMinRefresh", "must be positive, got %s: it bounds the fetches unknown key ids can cause", c.JWKSMinRefresh)
	}
	return errors.Join(errs...)
}

func algorithmNames() []string {
	var out []string
	for a := range allowedAlgorithms {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// checkJWKSURL says what is wrong with a JWKS URL, or "".
func checkJWKSURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Sprintf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return ""
		}
		return "must be https (http only to a loopback address): keys fetched in clear could be replaced on the way"
	default:
		return fmt.Sprintf("scheme %q: must be https", u.Scheme)
	}
}

// parsePublicKey reads a PEM public key or a JWK.
func parsePublicKey(s string) (jwk.Key, error) {
	s = strings.TrimSpace(s)
	var (
		k   jwk.Key
		err error
	)
	if strings.HasPrefix(s, "{") {
		k, err = jwk.ParseKey([]byte(s))
	} else {
		k, err = jwk.ParseKey([]byte(s), jwk.WithPEM(true))
	}
	if err != nil {
		return nil, fmt.Errorf("not a PEM public key or a JWK: %w", err)
	}
	switch k.KeyType() {
	case jwa.RSA(), jwa.EC(), jwa.OKP():
	default:
		return nil, fmt.Errorf("a %s key cannot verify asymmetric signatures", k.KeyType())
	}
	if pub, err := k.PublicKey(); err == nil {
		k = pub // a private key given by mistake: only its public half is kept
	}
	return k, nil
}

// Identity is what a verified token says.
type Identity struct {
	Subject string
	Expires time.Time
}

// ErrKeysUnavailable (wrapped) means no key could be had to verify with:
// the JWKS has not been fetched yet and fetching it failed. It is the
// server's problem, not the token's.
var ErrKeysUnavailable = errors.New("the shopper token keys are not available")

// Verifier verifies shopper tokens. Create it with New; Close it when done.
type Verifier struct {
	cfg    Config
	static jwk.Key // with PublicKey
	cache  *jwk.Cache
	allow  map[string]bool

	refreshMu   sync.Mutex
	lastForced  time.Time // the last fetch forced by an unknown key id
	forcedCount int       // how many such fetches were made (tests, metrics)
}

// New builds a Verifier. With a JWKS URL it starts the background refresh,
// which runs until Close, and waits up to StartWait for the first fetch; a
// provider that is down at start delays tokens, not the start (they are
// answered 503 until the keys arrive).
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	v := &Verifier{cfg: cfg, allow: map[string]bool{}}
	for _, a := range cfg.Algorithms {
		v.allow[a] = true
	}
	if cfg.PublicKey != "" {
		k, err := parsePublicKey(cfg.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("auth.shopperJWT.publicKey: %w", err)
		}
		v.static = k
		return v, nil
	}
	cache, err := jwk.NewCache(context.WithoutCancel(ctx), httprc.NewClient(httprc.WithWorkers(1)))
	if err != nil {
		return nil, fmt.Errorf("start the JWKS cache: %w", err)
	}
	if err := cache.Register(ctx, cfg.JWKSURL, jwk.WithHTTPClient(cfg.HTTPClient), jwk.WithWaitReady(false),
		jwk.WithConstantInterval(cfg.JWKSRefresh)); err != nil {
		_ = cache.Shutdown(context.Background())
		return nil, fmt.Errorf("auth.shopperJWT.jwksUrl: %w", err)
	}
	v.cache = cache
	wctx, cancel := context.WithTimeout(ctx, cfg.StartWait)
	defer cancel()
	cache.Ready(wctx, cfg.JWKSURL)
	return v, nil
}

// Close stops the background refresh.
func (v *Verifier) Close() error {
	if v.cache == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return v.cache.Shutdown(ctx)
}

// ForcedRefreshes is how many JWKS fetches unknown key ids have forced.
func (v *Verifier) ForcedRefreshes() int {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	return v.forcedCount
}

// Refusal reasons, as promo reasons (401).
func refuse(reason promo.Reason, format string, args ...any) error {
	return promo.Refusal(reason, "shopper token: "+format, args...)
}

// Verify checks a token (the compact serialisation) and returns its
// identity. A refused token is a *promo.Error with code EUnauthorized and
// the reason shopper_token_missing, shopper_token_expired or
// shopper_token_invalid (the message says why); keys that cannot be had are
// ErrKeysUnavailable.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	switch {
	case token == "":
		return Identity{}, refuse(promo.ReasonShopperTokenMissing, "missing")
	case len(token) > MaxTokenBytes:
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "longer than %d bytes", MaxTokenBytes)
	case strings.Count(token, ".") != 2:
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "not a JWT in compact form (header.payload.signature)")
	}
	t, err := jwt.Parse([]byte(token), jwt.WithKeyProvider(keyProvider{v: v, ctx: ctx}), jwt.WithContext(ctx),
		jwt.WithValidate(true), jwt.WithIssuer(v.cfg.Issuer), jwt.WithAudience(v.cfg.Audience),
		jwt.WithAcceptableSkew(v.cfg.ClockSkew), jwt.WithClock(jwt.ClockFunc(v.cfg.Now)),
		jwt.WithRequiredClaim("sub"), jwt.WithRequiredClaim("exp"))
	switch {
	case err == nil:
	case errors.Is(err, ErrKeysUnavailable):
		return Identity{}, err
	case errors.Is(err, jwt.TokenExpiredError()):
		return Identity{}, refuse(promo.ReasonShopperTokenExpired, "expired")
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "not valid yet (nbf)")
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "issued in the future (iat)")
	case errors.Is(err, jwt.InvalidIssuerError()):
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "wrong issuer")
	case errors.Is(err, jwt.InvalidAudienceError()):
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "wrong audience")
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "a subject (sub) and an expiry (exp) are required")
	case errors.Is(err, errAlgorithm), errors.Is(err, errKey):
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "%s", causeOf(err))
	default:
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "signature or format not valid")
	}
	sub, _ := t.Subject()
	exp, _ := t.Expiration()
	if sub == "" {
		return Identity{}, refuse(promo.ReasonShopperTokenInvalid, "empty subject")
	}
	return Identity{Subject: sub, Expires: exp}, nil
}

// Sentinels of the key provider's refusals, so that Verify can say why.
var (
	errAlgorithm = errors.New("algorithm")
	errKey       = errors.New("key")
)

// keyError is a refusal of the key provider with a message for the caller.
type keyError struct {
	kind error
	msg  string
}

func (e *keyError) Error() string { return e.msg }
func (e *keyError) Unwrap() error { return e.kind }

// causeOf is the message of the first keyError in err's tree.
func causeOf(err error) string {
	var ke *keyError
	if errors.As(err, &ke) {
		return ke.msg
	}
	return "not valid"
}

// keyProvider gives jwx the one key a token may be verified with, after
// checking its algorithm against the allow-list and the key's type.
type keyProvider struct {
	v   *Verifier
	ctx context.Context
}

func (p keyProvider) FetchKeys(_ context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	v := p.v
	h := sig.ProtectedHeaders()
	alg, ok := h.Algorithm()
	if !ok || !v.allow[alg.String()] {
		name := "none"
		if ok {
			name = alg.String()
		}
		return &keyError{errAlgorithm, fmt.Sprintf("algorithm %q is not allowed (allowed: %s)", name,
			strings.Join(v.cfg.Algorithms, ", "))}
	}
	kid, _ := h.KeyID()
	key := v.static
	if key == nil {
		var err error
		if key, err = v.jwksKey(p.ctx, kid); err != nil {
			return err
		}
	}
	if err := compatible(key, alg.String()); err != nil {
		return err
	}
	sink.Key(alg, key)
	return nil
}

// compatible checks that key can verify alg: the right key type (and curve),
// and the key's own "alg", if it has one, is alg.
func compatible(key jwk.Key, alg string) error {
	if ka, ok := key.Algorithm(); ok && ka.String() != alg {
		return &keyError{errKey, fmt.Sprintf("the key is for %s, the token says %s", ka, alg)}
	}
	if key.KeyType().String() != allowedAlgorithms[alg] {
		return &keyError{errKey, fmt.Sprintf("a %s key cannot verify %s", key.KeyType(), alg)}
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return &keyError{errKey, "the key cannot be used"}
	}
	switch k := raw.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != curveOf[alg] {
			return &keyError{errKey, fmt.Sprintf("an %s key cannot verify %s", k.Curve.Params().Name, alg)}
		}
	case *rsa.PublicKey, ed25519.PublicKey:
	default:
		return &keyError{errKey, "a private or unknown key cannot verify"}
	}
	return nil
}

// jwksKey finds the key for kid in the cached key set. An unknown kid (a
// rotated key) forces one refetch, at most once per JWKSMinRefresh; a token
// without a kid uses the set's only key.
func (v *Verifier) jwksKey(ctx context.Context, kid string) (jwk.Key, error) {
	asked := time.Now()
	set, err := v.cache.Lookup(ctx, v.cfg.JWKSURL)
	if err == nil {
		if k, ok := find(set, kid); ok {
			return k, nil
		}
	}
	fresh, ferr := v.forceRefresh(ctx, asked)
	switch {
	case fresh != nil:
		set, err = fresh, nil
	case err != nil: // never fetched, and no fetch now either
		return nil, fmt.Errorf("%w: %v; %v", ErrKeysUnavailable, err, ferr)
	}
	if k, ok := find(set, kid); ok {
		return k, nil
	}
	if kid == "" {
		return nil, &keyError{errKey, fmt.Sprintf("no key id (kid) and %d keys in the key set", set.Len())}
	}
	return nil, &keyError{errKey, fmt.Sprintf("unknown key id %q", kid)}
}

// find returns the key for kid, or the only key when kid is "".
func find(set jwk.Set, kid string) (jwk.Key, bool) {
	if kid == "" {
		if set.Len() != 1 {
			return nil, false
		}
		return set.Key(0)
	}
	return set.LookupKeyID(kid)
}

// forceRefresh refetches the key set unless a fetch forced since asked is
// there to use already, or the last one is less than JWKSMinRefresh ago. It
// returns the set to look in again, or nil when there is nothing new. One
// refresh at a time: concurrent callers wait for it and use its result.
func (v *Verifier) forceRefresh(ctx context.Context, asked time.Time) (jwk.Set, error) {
	v.refreshMu.Lock()
	defer v.refreshMu.Unlock()
	if v.lastForced.After(asked) { // another caller refreshed while we waited
		return v.cache.Lookup(ctx, v.cfg.JWKSURL)
	}
	if !v.lastForced.IsZero() && time.Since(v.lastForced) < v.cfg.JWKSMinRefresh {
		return nil, errors.New("the key set was refetched less than auth.shopperJWT.jwksMinRefresh ago")
	}
	v.lastForced = time.Now()
	v.forcedCount++
	set, err := v.cache.Refresh(ctx, v.cfg.JWKSURL)
	if err != nil {
		return nil, fmt.Errorf("refetch %s: %w", v.cfg.JWKSURL, err)
	}
	return set, nil
}
