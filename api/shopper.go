package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/shopper"
)

// ShopperVerifier checks a shopper's signed identity token (pkg/shopper).
type ShopperVerifier interface {
	Verify(ctx context.Context, token string) (shopper.Identity, error)
}

// WithShopperTokens makes the shopper endpoints take the user from a signed
// shopper token (auth.shopperJWT):
//
//   - The caller still authenticates as a service (Authorization: Bearer
//     with a redeem or admin token); the shopper's token comes in the
//     ShopperTokenHeader. A shopper token in Authorization is not a
//     credential: redemption stays behind the services that hold a redeem
//     token, and the token says which shopper they act for.
//   - With the redeem role the shopper token is required (401
//     shopper_token_missing / shopper_token_invalid /
//     shopper_token_expired). With the admin role (the console, support)
//     or open dev mode it is optional: without one the request acts for the
//     user it names, with one the token's rules apply as for the redeem role.
//   - With a verified token the user is the token's subject: a userId in the
//     body or the query must be absent or equal to it (403 user_mismatch),
//     and a reservation may be read, confirmed or released only by its
//     shopper (403 user_mismatch).
func WithShopperTokens(v ShopperVerifier) Option { return func(s *Server) { s.shoppers = v } }

// ShopperTokenHeader carries the shopper's token, the compact JWT, with or
// without a "Bearer " prefix.
const ShopperTokenHeader = "Shopper-Token"

type shopperKey struct{}

// shopperIdentity wraps a shopper endpoint: it verifies the shopper token,
// when one is configured and required or sent, before the handler reads
// anything, and hands the subject to the handler through the request's
// context (shopperUser reads it). Without WithShopperTokens it passes
// every request through as before.
func (s *Server) shopperIdentity(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.shoppers == nil {
			h(w, r)
			return
		}
		raw := strings.TrimSpace(r.Header.Get(ShopperTokenHeader))
		if scheme, rest, ok := strings.Cut(raw, " "); ok && strings.EqualFold(scheme, "Bearer") {
			raw = strings.TrimSpace(rest)
		}
		if raw == "" && s.isAdmin(r) {
			h(w, r) // an admin (or open dev mode) acts for the user the request names
			return
		}
		id, err := s.shoppers.Verify(r.Context(), raw)
		if err == nil {
			if cerr := promo.CheckText("sub", id.Subject, maxUserIDLen, true); cerr != nil {
				err = promo.Refusal(promo.ReasonShopperTokenInvalid,
					"shopper token: its subject is not a valid user id (at most %d printable characters)", maxUserIDLen)
			}
		}
		switch {
		case errors.Is(err, shopper.ErrKeysUnavailable):
			s.log.Warn("shopper token keys unavailable", zap.Error(err))
			s.writeError(w, r, errBusy("the shopper token keys cannot be fetched right now; try again"))
			return
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="promocodes-shopper", error="invalid_token"`)
			s.writeError(w, r, err)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), shopperKey{}, id.Subject)))
	}
}

// shopperUser is the user a shopper endpoint acts for: with a verified
// shopper token its subject, which claimed (the body's or query's userId)
// must be empty or equal to (else 403 user_mismatch); without one, claimed.
// The issuance endpoint and any later shopper endpoint use it the same way,
// behind shopperIdentity.
func shopperUser(r *http.Request, field, claimed string) (string, error) {
	sub, ok := r.Context().Value(shopperKey{}).(string)
	switch {
	case !ok:
		return claimed, nil
	case claimed != "" && claimed != sub:
		return "", userMismatch(field)
	}
	return sub, nil
}

// shopperOwns refuses (403 user_mismatch) a request with a verified shopper
// token on something that belongs to another user (a reservation).
func shopperOwns(r *http.Request, what, owner string) error {
	if sub, ok := r.Context().Value(shopperKey{}).(string); ok && sub != owner {
		return promo.Refusal(promo.ReasonUserMismatch, "the %s belongs to another user than the shopper token's subject", what)
	}
	return nil
}

func userMismatch(field string) error {
	e := promo.Refusal(promo.ReasonUserMismatch, "the %s is not the shopper token's subject", field)
	e.Fields = []promo.FieldError{{Field: field, Message: "must be absent or the shopper token's subject"}}
	return e
}

// reservationOwner refuses, with a shopper token, a reservation of another
// user (403 user_mismatch; an unknown reservation is 404 as without one).
func (s *Server) reservationOwner(r *http.Request, id string) error {
	if _, ok := r.Context().Value(shopperKey{}).(string); !ok {
		return nil
	}
	v, err := s.redeemer.Reservation(r.Context(), id)
	if err != nil {
		return err
	}
	return shopperOwns(r, "reservation", v.UserID)
}
