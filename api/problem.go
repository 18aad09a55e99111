package api

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
	"github.com/promocodes/promocodes/redemption"
)

// statusOf maps a domain error code to an HTTP status: the one place where
// that mapping lives.
func statusOf(code promo.ErrorCode) int {
	switch code {
	case promo.EInvalid, promo.ECapacity:
		return http.StatusUnprocessableEntity
	case promo.ENotFound:
		return http.StatusNotFound
	case promo.EConflict, promo.EMoved:
		return http.StatusConflict
	case promo.EGone:
		return http.StatusGone
	case promo.EUnauthorized:
		return http.StatusUnauthorized
	case promo.EForbidden:
		return http.StatusForbidden
	case promo.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case promo.ERateLimited:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// errMalformed marks a request that could not be decoded at all (400, not 422);
// errUnsupportedMedia one whose Content-Type is not JSON (415).
const (
	errMalformed        promo.ErrorCode = "malformed"
	errUnsupportedMedia promo.ErrorCode = "unsupported_media_type"
	errMethodNotAllowed promo.ErrorCode = "method_not_allowed"
	errUnavailable      promo.ErrorCode = "unavailable" // 503 with Retry-After
)

func errBusy(msg string) error { return &promo.Error{Code: errUnavailable, Message: msg} }

// writeError answers with problem+json. Internal errors are logged here, once,
// and their text is not shown to the caller.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := wire.Problem{Type: "about:blank"}
	var de *promo.Error
	if errors.Is(err, context.DeadlineExceeded) {
		// The request's database deadline (DBTimeout) passed: say so, log why.
		s.log.Warn("request timed out", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		de = &promo.Error{Code: errUnavailable, Message: "the database did not answer in time; try again"}
		err = de
	}
	var ov *redemption.Overloaded
	if errors.As(err, &ov) {
		// Admission control refused it: the database is busy, not broken;
		// not logged one by one (the admission metrics count them).
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ov.RetryAfter.Seconds()))))
		de = &promo.Error{Code: errUnavailable, Message: ov.Err.Message}
		err = de
	}
	if !errors.As(err, &de) && s.store != nil && s.store.Unavailable(err) {
		// The database cannot be reached or the connection was lost: the
		// request was not wrong, and may succeed when retried.
		s.log.Warn("database unavailable", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		de = &promo.Error{Code: errUnavailable, Message: "the database cannot be reached now; try again " +
			"(with the same Idempotency-Key: a request cut off while committing may have been applied)"}
		err = de
	}
	if errors.As(err, &de) && de.Code != promo.EInternal {
		p.Status = statusOf(de.Code)
		switch de.Code {
		case errMalformed:
			p.Status = http.StatusBadRequest
		case errUnsupportedMedia:
			p.Status = http.StatusUnsupportedMediaType
		case errMethodNotAllowed:
			p.Status = http.StatusMethodNotAllowed
		case errUnavailable:
			p.Status = http.StatusServiceUnavailable
			if w.Header().Get("Retry-After") == "" {
				w.Header().Set("Retry-After", "5")
			}
		}
		p.Type = "https://promocodes.dev/problems/" + string(de.Code)
		p.Detail = de.Message
		p.Errors = de.Fields
		p.MinLength, p.MinTailLength, p.MinSerialDigits = de.MinLength, de.MinTailLength, de.MinSerialDigits
		p.Reason, p.Rule = string(de.Reason), de.Rule
		var rl *redemption.RateLimited
		if errors.As(err, &rl) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rl.RetryAfter.Seconds()))))
		}
	} else {
		p.Status = http.StatusInternalServerError
		p.Detail = "internal error; see the server log"
		s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	}
	p.Title = http.StatusText(p.Status)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
