package api

import (
	"net"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/realclientip/realclientip-go"

	"github.com/promocodes/promocodes/pkg/configkey"
	"github.com/promocodes/promocodes/redemption"
)

// clientAddress derives the address a request comes from, for the guess
// limiter: the connection's peer, unless the peer is one of the configured
// trusted proxies, in which case the configured headers say whom the proxy
// spoke for (realclientip-go: X-Forwarded-For and Forwarded by the rightmost
// address that is not a trusted proxy, any other header as a single
// address). A header from an untrusted peer is ignored: anyone can send one.
type clientAddress struct {
	trusted []net.IPNet
	headers realclientip.Strategy // nil without trusted proxies
}

// newClientAddress parses the trusted proxies (addresses or CIDR ranges) and
// the headers to read from them, in order (default X-Forwarded-For).
func newClientAddress(proxies, headers []string) (clientAddress, error) {
	if len(proxies) == 0 {
		if len(headers) > 0 {
			return clientAddress{}, configkey.Errorf("clientAddressHeaders", "set without trusted proxies: "+
				"a client address header is only read from a trusted proxy")
		}
		return clientAddress{}, nil
	}
	trusted, err := realclientip.AddressesAndRangesToIPNets(proxies...)
	if err != nil {
		return clientAddress{}, configkey.Errorf("trustedProxies", "%v", err)
	}
	if len(headers) == 0 {
		headers = []string{"X-Forwarded-For"}
	}
	var chain []realclientip.Strategy
	for _, h := range headers {
		var s realclientip.Strategy
		switch http.CanonicalHeaderKey(strings.TrimSpace(h)) {
		case "X-Forwarded-For", "Forwarded":
			s, err = realclientip.NewRightmostTrustedRangeStrategy(h, trusted)
		default:
			s, err = realclientip.NewSingleIPHeaderStrategy(h)
		}
		if err != nil {
			return clientAddress{}, configkey.Errorf("clientAddressHeaders", "%q: %v", h, err)
		}
		chain = append(chain, s)
	}
	return clientAddress{trusted: trusted, headers: realclientip.NewChainStrategy(chain...)}, nil
}

// of returns r's client address.
func (c clientAddress) of(r *http.Request) string {
	peer := realclientip.RemoteAddrStrategy{}.ClientIP(nil, r.RemoteAddr)
	if peer == "" {
		return r.RemoteAddr
	}
	if c.headers != nil && c.isTrusted(peer) {
		if ip := c.headers.ClientIP(r.Header, r.RemoteAddr); ip != "" {
			return ip
		}
	}
	return peer
}

func (c clientAddress) isTrusted(addr string) bool {
	ip := net.ParseIP(addr)
	for _, n := range c.trusted {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// ClientAddr is the address r comes from as the API counts it: the
// connection's peer, or the client a trusted proxy names for it
// (Config.TrustedProxies). The console counts its sign-ins against it too.
func (s *Server) ClientAddr(r *http.Request) string { return s.clientAddr.of(r) }

// client is who a code look-up is counted against: the client address and
// the bearer token (as its fingerprint).
func (s *Server) client(r *http.Request) redemption.Client {
	return redemption.Client{Addr: s.clientAddr.of(r), Token: s.actor(r, "token"), UserAgent: userAgent(r)}
}

// maxUserAgent bounds the User-Agent kept in the audit trail.
const maxUserAgent = 512

// userAgent is r's User-Agent as the audit trail keeps it: valid UTF-8
// without control characters, at most maxUserAgent bytes.
func userAgent(r *http.Request) string {
	ua := strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, strings.ToValidUTF8(r.UserAgent(), ""))
	for len(ua) > maxUserAgent {
		_, size := utf8.DecodeLastRuneInString(ua)
		ua = ua[:len(ua)-size]
	}
	return ua
}
