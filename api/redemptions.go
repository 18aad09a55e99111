package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
	"github.com/promocodes/promocodes/redemption"
)

// Redeemer is what the code endpoints need: the redemption service. Every
// route it serves is registered whenever there is one (WithRedemption):
// nothing asks what else the value can do.
type Redeemer interface {
	ShopperValidator
	Reserver
	Issuer
	Inspector
	Redeem(ctx context.Context, client redemption.Client, in redemption.RedeemInput) (redemption.Receipt, bool, error)
	Rollback(ctx context.Context, id, reason string) (redemption.Receipt, bool, error)
	Redemptions(ctx context.Context, f promo.RedemptionFilter) ([]redemption.Receipt, error)
	ExportRedemptions(ctx context.Context, f promo.RedemptionFilter, fn func(redemption.Receipt) error) error
}

// The redemption service is the Redeemer (checked when this compiles).
var _ Redeemer = (*redemption.Service)(nil)

// Option configures a Server.
type Option func(*Server)

// WithRedemption serves the code endpoints (validation, redemption,
// rollback, reservations, personal codes) and the audit trail through r.
func WithRedemption(r Redeemer) Option { return func(s *Server) { s.redeemer = r } }

// Limits of the redemption requests.
const (
	maxUserIDLen  = 200
	maxOrderIDLen = 200
	maxReasonLen  = 500
	maxCodeInput  = 256 // bytes of a typed code, separators and spaces included
)

func (s *Server) redemptionRoutes() []route {
	rs := []route{
		{"GET /v1/codes/{code}", s.redeemRole(s.queued(s.shopperIdentity(s.validateCode)))},
		{"POST /v1/codes/{code}/redemptions", s.redeemRole(s.queued(s.shopperIdentity(s.redeemCode)))},
		{"POST /v1/redemptions/{id}/rollback", s.redeemRole(s.queued(s.rollbackRedemption))},
		{"GET /v1/promotions/{id}/redemptions", s.admin(s.listRedemptions)},
	}
	rs = append(append(rs, s.reservationRoutes()...), s.inspectRoutes()...)
	return append(rs, s.personalRoutes()...)
}

// redeemRole admits the redeem role's tokens and the admin's.
func (s *Server) redeemRole(h http.HandlerFunc) http.Handler {
	tokens := append(append([]string(nil), s.cfg.RedeemTokens...), s.cfg.AdminTokens...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.authorize(r, tokens); err != nil {
			if promo.Is(err, promo.EUnauthorized) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="promocodes"`)
			}
			s.writeError(w, r, err)
			return
		}
		h(w, r)
	})
}

// typedCode reads the {code} path value, bounded before anything parses it.
func typedCode(r *http.Request) (string, error) {
	code := r.PathValue("code")
	if len(code) > maxCodeInput {
		return "", promo.Refusal(promo.ReasonInvalidCode, "invalid code: longer than %d bytes", maxCodeInput)
	}
	return code, nil
}

func (s *Server) validateCode(w http.ResponseWriter, r *http.Request) {
	code, err := typedCode(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	userID := r.URL.Query().Get("userId")
	if err := promo.CheckText("userId", userID, maxUserIDLen, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if userID, err = shopperUser(r, "userId", userID); err != nil {
		s.writeError(w, r, err)
		return
	}
	shopper, err := shopperQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if userID == "" && shopper == nil && s.isAdmin(r) {
		s.codeDetail(w, r, code)
		return
	}
	v, err := s.redeemer.ValidateFor(r.Context(), s.client(r), code, userID, shopper)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// readShopper decodes a shopper's request body into req, takes its user from
// a signed shopper token when there is one (userID points into req), and
// checks the Idempotency-Key (printable ASCII, at most maxIdemKeyLen): the
// key (scoped to the shopper token's subject, if any) and what is wrong with
// it, or false once the request was answered.
func (s *Server) readShopper(w http.ResponseWriter, r *http.Request, req any, userID *string) (string, []promo.FieldError, bool) {
	if err := s.readJSON(w, r, req); err != nil {
		s.writeError(w, r, err)
		return "", nil, false
	}
	var err error
	if *userID, err = shopperUser(r, "userId", *userID); err != nil {
		s.writeError(w, r, err)
		return "", nil, false
	}
	key := r.Header.Get("Idempotency-Key")
	fields := idemKeyFields(key)
	if sub, ok := r.Context().Value(shopperKey{}).(string); ok {
		// A signed shopper's keys are its own: no one else can take the key
		// its checkout will send (promo.ScopedKey).
		key = promo.ScopedKey(sub, key)
	}
	return key, fields, true
}

func (s *Server) redeemCode(w http.ResponseWriter, r *http.Request) {
	in, ok := s.redeemInput(w, r)
	if !ok {
		return
	}
	rc, replayed, err := s.redeemer.Redeem(r.Context(), s.client(r), in)
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/redemptions/"+rc.ID)
	writeJSON(w, http.StatusCreated, rc)
}

// redeemInput reads and checks a redemption request, or answers it (false).
// It is a function of its own so that its frame is gone while the request
// waits for its redemption (see the combiner in package redemption).
func (s *Server) redeemInput(w http.ResponseWriter, r *http.Request) (redemption.RedeemInput, bool) {
	code, err := typedCode(r)
	if err != nil {
		s.writeError(w, r, err)
		return redemption.RedeemInput{}, false
	}
	var req wire.Redeem
	key, fields, ok := s.readShopper(w, r, &req, &req.UserID)
	if !ok {
		return redemption.RedeemInput{}, false
	}
	for _, c := range []struct {
		field, v string
		max      int
		required bool
	}{{"userId", req.UserID, maxUserIDLen, true}, {"orderId", req.OrderID, maxOrderIDLen, false}} {
		if err := promo.CheckText(c.field, c.v, c.max, c.required); err != nil {
			fields = append(fields, err.(*promo.Error).Fields...)
		}
	}
	metadata, err := s.checkMetadata(req.Metadata)
	if err != nil {
		fields = append(fields, err.(*promo.Error).Fields...)
	}
	shopper, errs := shopperOf(req.Shopper)
	if fields = append(fields, errs...); len(fields) > 0 {
		s.writeError(w, r, &promo.Error{Code: promo.EInvalid, Message: "invalid request", Fields: fields})
		return redemption.RedeemInput{}, false
	}
	return redemption.RedeemInput{Code: code, UserID: req.UserID, OrderID: req.OrderID, Metadata: metadata,
		IdempotencyKey: key, Shopper: shopper}, true
}

// checkMetadata accepts a JSON object of at most the configured size and
// returns it compacted (so that whitespace does not make two requests differ).
func (s *Server) checkMetadata(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, promo.FieldErrorf("metadata", "must be a JSON object")
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, promo.FieldErrorf("metadata", "must be a JSON object, got %s", truncate(buf.String(), 40))
	}
	if buf.Len() > s.maxMetadata() {
		return nil, promo.FieldErrorf("metadata", "is %d bytes; at most %d are allowed", buf.Len(), s.maxMetadata())
	}
	if err := checkNumbers(buf.Bytes(), "metadata"); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkNumbers refuses a JSON number that an IEEE 754 double cannot hold
// (I-JSON, RFC 7493): metadata is published in the redemption events, and a
// consumer decoding 1e999999999 into a double fails on the event. (Tiny
// numbers round to zero, which decoders accept.) The value is small and
// already scanned (readBody), so one more pass costs little.
func checkNumbers(raw []byte, prefix string) error {
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil // io.EOF; a syntax error was refused by readBody
		}
		if tok.Kind() != '0' {
			continue
		}
		if f, err := strconv.ParseFloat(tok.String(), 64); err != nil && !errors.Is(err, strconv.ErrRange) ||
			math.IsInf(f, 0) {
			return promo.FieldErrorf(jsonField(prefix+".", dec.StackPointer()),
				"must be a number a double can hold (at most about 1.8e308), got %s", truncate(tok.String(), 40))
		}
	}
}

func (s *Server) maxMetadata() int {
	if s.cfg.MaxMetadataBytes > 0 {
		return s.cfg.MaxMetadataBytes
	}
	return 1024
}

func (s *Server) rollbackRedemption(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := promo.CheckText("id", id, 64, true); err != nil {
		s.writeError(w, r, promo.Errorf(promo.ENotFound, "no redemption %q", truncate(id, 64)))
		return
	}
	var req wire.Reason
	if err := s.readJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := promo.CheckText("reason", req.Reason, maxReasonLen, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	rc, replayed, err := s.redeemer.Rollback(r.Context(), id, req.Reason)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, rc)
}

// redemptionCSVHeader is the CSV export's header row.
var redemptionCSVHeader = []string{"id", "code", "promotion_id", "user_id", "order_id", "redeemed_at", "uses_left",
	"rolled_back_at", "rollback_reason", "metadata", "order_amount", "order_currency", "discount", "segments", "country",
	"first_order", "client_address", "user_agent"}

func (s *Server) listRedemptions(w http.ResponseWriter, r *http.Request) {
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := promo.RedemptionFilter{PromotionID: id, UserID: q.Get("userId")}
	var fields []promo.FieldError
	if err := promo.CheckText("userId", f.UserID, maxUserIDLen, false); err != nil {
		fields = append(fields, err.(*promo.Error).Fields...)
	}
	fields = append(fields, redemptionQuery(q, &f)...)
	if len(fields) > 0 {
		s.writeError(w, r, &promo.Error{Code: promo.EInvalid, Message: "invalid query", Fields: fields})
		return
	}
	if err := s.codeFilter(r, &f); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.answerRedemptions(w, r, f)
}

// wantsCSV reports whether the Accept header asks for CSV.
func wantsCSV(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/csv" {
			return true
		}
	}
	return false
}

// exportRedemptions streams the audit trail as CSV in constant memory. An
// error after the first row can only cut the stream short: the status is
// sent; the log has the cause.
func (s *Server) exportRedemptions(w http.ResponseWriter, r *http.Request, f promo.RedemptionFilter) {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := newCSVWriter(bw)
	started := false
	row := make([]string, len(redemptionCSVHeader))
	err := s.redeemer.ExportRedemptions(r.Context(), f, func(rc redemption.Receipt) error {
		if !started {
			started = true
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="`+redemptionsFile(f)+`"`)
			w.Header().Set("X-Content-Type-Options", "nosniff")
			_ = cw.Write(redemptionCSVHeader)
		}
		row[0], row[1], row[2], row[3], row[4] = rc.ID, rc.Code, rc.PromotionID, rc.UserID, rc.OrderID
		row[5], row[6] = rc.RedeemedAt.Format(time.RFC3339Nano), strconv.Itoa(rc.UsesLeft)
		row[7] = ""
		if rc.RolledBackAt != nil {
			row[7] = rc.RolledBackAt.Format(time.RFC3339Nano)
		}
		row[8], row[9] = rc.RollbackReason, string(rc.Metadata)
		row[10], row[11], row[12] = "", "", ""
		if o := rc.Order; o != nil {
			row[10], row[11] = o.Amount.String(), o.Currency
			if o.Discount != nil {
				row[12] = o.Discount.String()
			}
		}
		row[13], row[14], row[15] = strings.Join(rc.Segments, " "), rc.Country, ""
		if rc.FirstOrder != nil {
			row[15] = strconv.FormatBool(*rc.FirstOrder)
		}
		row[16], row[17] = rc.ClientAddr, rc.UserAgent
		return cw.Write(row)
	})
	if err != nil && !started {
		s.writeError(w, r, err)
		return
	}
	if !started { // no rows: the header alone
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		_ = cw.Write(redemptionCSVHeader)
	}
	cw.Flush()
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		s.log.Warn("redemption export cut short", zap.Int64("promotion_id", f.PromotionID), zap.Error(err))
	}
}

// readJSON reads a small JSON request body strictly (readBody: no null but
// at the nullable pointers), then decodes it with no unknown fields
// (decodeStrict).
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any, nullable ...string) error {
	body, err := s.readBody(w, r, nullable...)
	if err != nil {
		return err
	}
	return decodeStrict(body, v, "")
}

// A request body that grows past largeBody bytes takes one of
// maxLargeBodies slots for the rest of its reading (waiting at most
// largeBodyWait, else 503 with Retry-After): no request of the API needs
// such a body, and what a body costs to read and check is a few times its
// size (docs/redemption.md, "Request bodies"), so that many connections
// sending bodies at the limit at once cannot take the process's memory
// (2,000 at 1 MB each: 904 MiB peak without the slots, 338 MiB with them).
// Bodies below it, every shopper request's, never wait for one.
const (
	largeBody      = 8 << 10
	maxLargeBodies = 8
	largeBodyWait  = 2 * time.Second
)

// errLargeBodies is bodySlot's read error when no slot came free in time.
var errLargeBodies = errors.New("no slot for a large request body came free in time")

// bodySlot reads r, taking a slot of slots once more than largeBody bytes
// are read (released by release).
type bodySlot struct {
	r     io.Reader
	slots chan struct{}
	ctx   context.Context
	n     int64
	held  bool
}

func (b *bodySlot) Read(p []byte) (int, error) {
	if !b.held && b.n+int64(len(p)) > largeBody {
		if b.n < largeBody {
			p = p[:largeBody-b.n]
		} else {
			t := time.NewTimer(largeBodyWait)
			defer t.Stop()
			select {
			case b.slots <- struct{}{}:
				b.held = true
			case <-t.C:
				return 0, errLargeBodies
			case <-b.ctx.Done():
				return 0, errLargeBodies
			}
		}
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *bodySlot) release() {
	if b.held {
		b.held = false
		<-b.slots
	}
}

// readBody is the one way a JSON request body is read: Content-Type JSON (or
// none), at most MaxBodyBytes (a larger declared length is refused with 413
// before anything is read; an undeclared one as soon as the limit is passed),
// not empty, and one well-formed JSON value within MaxJSONDepth, with no
// null but at the nullable pointers (scanJSON). The scan
// (scanJSON) reads the body as it arrives, so a refused body is never held
// whole: its rest is only drained, in constant memory, to keep the
// connection usable.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, nullable ...string) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, &promo.Error{Code: errUnsupportedMedia, Message: "Content-Type must be application/json",
				Fields: []promo.FieldError{{Field: "Content-Type", Message: "must be application/json, got " + truncate(ct, 60)}}}
		}
	}
	tooLarge := promo.Errorf(promo.ETooLarge, "request body is larger than %d bytes", s.cfg.MaxBodyBytes)
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	limited := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	slot := &bodySlot{r: limited, slots: s.largeBodies, ctx: r.Context()}
	defer slot.release()
	var body bytes.Buffer
	err := scanJSON(io.TeeReader(slot, &body), "", nullable)
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, errLargeBodies):
		return nil, errBusy(fmt.Sprintf("%d request bodies larger than %d KiB are being read, the most this server "+
			"reads at once; try again shortly", maxLargeBodies, largeBody>>10))
	case errors.As(err, &mbe):
		return nil, tooLarge
	case promo.Is(err, errEmptyBody):
		return nil, &promo.Error{Code: errMalformed, Message: "the request body is empty; a JSON object is required"}
	case err != nil && !promo.Is(err, promo.EInternal):
		if _, derr := io.Copy(io.Discard, limited); errors.As(derr, &mbe) {
			return nil, tooLarge
		}
		return nil, err
	case err != nil: // the client's connection failed: no answer will reach it anyway
		return nil, &promo.Error{Code: errMalformed, Message: "could not read the request body"}
	}
	return body.Bytes(), nil
}
