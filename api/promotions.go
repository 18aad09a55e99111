package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
)

// createRequest is the body of POST /v1/promotions. codeCount is kept raw so
// that strings, fractions and exponents are rejected, not silently coerced.
type createRequest struct {
	Name            string          `json:"name"`
	CodeCount       json.RawMessage `json:"codeCount"`
	Format          json.RawMessage `json:"format"` // decoded by decodeStrict, to name format.* fields
	Code            *string         `json:"code"`
	MaxUsagePerCode *int            `json:"maxUsagePerCode"`
	PerUserLimit    *int            `json:"perUserLimit"`
	StartsAt        json.RawMessage `json:"startsAt"` // parsed by parseTime, to name the field
	ExpiresAt       json.RawMessage `json:"expiresAt"`
}

const (
	maxNameLen      = 200
	maxIdemKeyLen   = 200
	maxVanityLen    = 64
	minVanityLen    = 3
	maxUsageCeiling = 1_000_000_000
)

func (s *Server) createPromotion(w http.ResponseWriter, r *http.Request) {
	np, err := s.decodeCreate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, created, err := s.store.CreatePromotion(r.Context(), np)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The answer's status is the promotion's: a new generated promotion is
	// pending (202, its codes are still to come); a new vanity promotion's
	// one code exists already (201, completed); a replay answers what the
	// promotion is now (200: it may have completed, failed, been cancelled or
	// deleted since the first answer).
	code, st := http.StatusAccepted, promo.StatusPending
	switch {
	case !created:
		ps, err := s.store.GetPromotion(r.Context(), p.ID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		code, st = http.StatusOK, ps.Status()
		w.Header().Set("Idempotent-Replayed", "true")
	case p.Kind == promo.KindVanity:
		code, st = http.StatusCreated, promo.StatusCompleted
	}
	if created {
		s.log.Info("promotion created", zap.Int64("promotion_id", p.ID), zap.String("name", p.Name),
			zap.String("kind", string(p.Kind)), zap.Int64("codes", p.CodeCount),
			zap.Int("batches", batchCount(p.CodeCount, np.BatchSize, p.Kind)))
		if s.outbox != nil && p.Kind != promo.KindVanity {
			s.outbox.Notify()
		}
	}
	w.Header().Set("Location", "/v1/promotions/"+p.IDString())
	writeJSON(w, code, map[string]any{"id": p.IDString(), "status": st})
}

// decodeCreate parses and validates a create request completely, so that
// nothing is written for a bad one.
func (s *Server) decodeCreate(w http.ResponseWriter, r *http.Request) (promo.NewPromotion, error) {
	var np promo.NewPromotion
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdemKeyLen || !printableASCII(key) {
		return np, promo.FieldErrorf("Idempotency-Key", "must be at most %d printable ASCII characters", maxIdemKeyLen)
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return np, err
	}
	var req createRequest
	if err := decodeStrict(body, &req, ""); err != nil {
		return np, err
	}
	var format *promo.Format
	if len(req.Format) > 0 && string(req.Format) != "null" {
		format = new(promo.Format)
		if err := decodeStrict(req.Format, format, "format."); err != nil {
			return np, err
		}
	}
	startsAt, err := parseTime(req.StartsAt, "startsAt")
	if err != nil {
		return np, err
	}
	expiresAt, err := parseTime(req.ExpiresAt, "expiresAt")
	if err != nil {
		return np, err
	}
	var fields []promo.FieldError
	var advice promo.Error // MinLength, MinTailLength, MinSerialDigits of a format that cannot take the count
	bad := func(field, format string, args ...any) {
		fields = append(fields, promo.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}

	name := strings.TrimSpace(req.Name)
	switch {
	case name == "":
		bad("name", "is required")
	case utf8.RuneCountInString(name) > maxNameLen || !utf8.ValidString(name):
		bad("name", "must be valid UTF-8 of at most %d characters", maxNameLen)
	case badText(name) != "":
		bad("name", "%s", badText(name))
	}
	maxUsage := 1
	if req.MaxUsagePerCode != nil {
		maxUsage = *req.MaxUsagePerCode
		if maxUsage < 1 || maxUsage > maxUsageCeiling {
			bad("maxUsagePerCode", "must be between 1 and %d", maxUsageCeiling)
		}
	}
	perUser := 1
	if req.PerUserLimit != nil {
		perUser = *req.PerUserLimit
		if perUser < 0 || perUser > maxUsageCeiling {
			bad("perUserLimit", "must be between 0 (no limit) and %d", maxUsageCeiling)
		}
	}
	if startsAt != nil && expiresAt != nil && !expiresAt.After(*startsAt) {
		bad("expiresAt", "must be after startsAt")
	}
	if expiresAt != nil && !expiresAt.After(s.now()) {
		bad("expiresAt", "is in the past")
	}

	np.Name = name
	np.MaxUsagePerCode = maxUsage
	np.PerUserLimit = perUser
	np.StartsAt = utc(startsAt)
	np.ExpiresAt = utc(expiresAt)
	np.IdempotencyKey = key
	np.BatchSize = s.cfg.BatchCodeCount

	switch {
	case req.Code != nil && (format != nil || req.CodeCount != nil):
		bad("code", "a vanity promotion has one code: give either code, or codeCount with format")
	case req.Code != nil:
		code, msg := vanityCode(*req.Code)
		if msg != "" {
			bad("code", "%s", msg)
		}
		np.Kind = promo.KindVanity
		np.VanityCode = code
		np.CodeCount = 1
	default:
		np.Kind = promo.KindGenerated
		count, ok := parseCount(req.CodeCount)
		switch {
		case req.CodeCount == nil:
			bad("codeCount", "is required (or give a vanity code)")
		case !ok:
			bad("codeCount", "must be a positive integer, got %s", truncate(string(req.CodeCount), 40))
		case count < 1:
			bad("codeCount", "must be at least 1")
		case count > s.cfg.MaxCodeCount:
			bad("codeCount", "must be at most %d", s.cfg.MaxCodeCount)
		}
		if format == nil {
			bad("format", "is required for generated codes")
			break
		}
		forCount := count
		if len(fields) > 0 {
			forCount = 0 // a bad count: check the format alone
		}
		layout, err := codes.CheckFormatFor(*format, forCount, s.cfg.MaxDensity)
		if promo.Is(err, promo.ECapacity) && len(fields) == 0 {
			return np, err
		}
		if err != nil {
			var de *promo.Error
			if errors.As(err, &de) {
				fields = append(fields, de.Fields...)
				advice = *de
				if len(de.Fields) == 0 {
					bad("format", "%s", de.Message)
				}
			} else {
				bad("format", "%v", err)
			}
			break
		}
		if len(fields) > 0 {
			break
		}
		np.CodeCount = count
		// CheckChar resolved and style "random" written as the default: an
		// explicit default and an omitted one are the same request.
		normalized := layout.Format()
		np.Format = &normalized
		np.CounterName = layout.CounterName()
		np.SeqLimit = layout.SeqLimit(s.cfg.MaxDensity)
		np.KeyFingerprint = s.keyFP // not part of the request hash (json:"-")
	}
	if len(fields) > 0 {
		return np, &promo.Error{Code: promo.EInvalid, Message: "invalid promotion request", Fields: fields,
			MinLength: advice.MinLength, MinTailLength: advice.MinTailLength, MinSerialDigits: advice.MinSerialDigits}
	}
	np.RequestHash = requestHash(np)
	return np, nil
}

// vanityCode returns the canonical form of a vanity code (codes.Canonical:
// upper-cased), or why it is refused. Letter case is folded, but separator
// characters and inner spaces are refused rather than dropped: the admin
// would otherwise believe "222M-5H4HJVD" and "222M5H4HJVD" to be two codes,
// when a shopper typing either reaches the same one.
func vanityCode(raw string) (code, problem string) {
	const rule = "must be %d to %d printable ASCII characters without spaces, commas or quotes"
	trimmed := strings.TrimSpace(raw)
	code, err := codes.Canonical(trimmed)
	switch {
	case err != nil:
		return "", fmt.Sprintf(rule, minVanityLen, maxVanityLen)
	case code != strings.ToUpper(trimmed):
		return "", fmt.Sprintf("%q holds separator characters (%q) or spaces, which are ignored when a code is "+
			"typed or looked up, so it would be the code %q: give that canonical form instead "+
			"(shoppers may still type it with separators)", truncate(trimmed, maxVanityLen+8), codes.SeparatorChars, truncate(code, maxVanityLen+8))
	case len(code) < minVanityLen || len(code) > maxVanityLen || strings.ContainsAny(code, ",\""):
		return "", fmt.Sprintf(rule, minVanityLen, maxVanityLen)
	}
	return code, ""
}

// decodeStrict decodes one JSON object that readBody has already scanned
// (one value, no repeated names, bounded depth), rejecting unknown fields and
// trailing data, and names the offending field on type errors. prefix is the
// JSON path of the object within the request ("format."): the decoder names
// an unknown field without its path.
func decodeStrict(body []byte, v any, prefix string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	// dec.More() misses a stray '}' or ']': look at what is left instead.
	if err == nil && len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &promo.Error{Code: errMalformed, Message: "malformed JSON",
			Fields: []promo.FieldError{{Field: prefix + te.Field, Message: "must be a " + te.Type.String() + ", got " + te.Value}}}
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		field := strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`)
		return &promo.Error{Code: errMalformed, Message: "malformed JSON",
			Fields: []promo.FieldError{{Field: prefix + field, Message: "unknown field"}}}
	}
	return &promo.Error{Code: errMalformed, Message: "malformed JSON: " + err.Error()}
}

// parseTime parses an optional RFC 3339 time field of the request (absent or
// null: nil), naming the field when it is not one.
func parseTime(raw json.RawMessage, field string) (*time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var t time.Time
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, &promo.Error{Code: errMalformed, Message: "malformed JSON: times must be RFC 3339 (2026-12-01T00:00:00Z)",
			Fields: []promo.FieldError{{Field: field, Message: "must be an RFC 3339 time such as 2026-12-01T00:00:00Z, got " +
				truncate(string(raw), 40)}}}
	}
	return &t, nil
}

// parseCount accepts a JSON integer literal only (no string, fraction or
// exponent) that fits int64.
func parseCount(raw json.RawMessage) (int64, bool) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || strings.ContainsAny(s, ".eE\"") {
		return 0, false
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return 0, false
	}
	if !n.IsInt64() {
		if n.Sign() > 0 {
			return 1<<63 - 1, true // absurdly large: reported against the maximum
		}
		return -1, true
	}
	return n.Int64(), true
}

// requestHash fingerprints the normalized request, so that the same request
// with another spacing or key order is still "the same body".
func requestHash(np promo.NewPromotion) string {
	norm := struct {
		Name      string
		Kind      promo.Kind
		Count     int64
		Format    *promo.Format
		Code      string
		MaxUsage  int
		PerUser   int
		StartsAt  *time.Time
		ExpiresAt *time.Time
	}{np.Name, np.Kind, np.CodeCount, np.Format, np.VanityCode, np.MaxUsagePerCode, np.PerUserLimit, np.StartsAt, np.ExpiresAt}
	b, _ := json.Marshal(norm)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// promotion loads the promotion named by the {id} path value.
func (s *Server) promotion(r *http.Request) (promo.PromotionStatus, error) {
	id, err := promo.ParseID(r.PathValue("id"))
	if err != nil {
		return promo.PromotionStatus{}, err
	}
	return s.store.GetPromotion(r.Context(), id)
}

func (s *Server) getPromotion(w http.ResponseWriter, r *http.Request) {
	st, err := s.promotion(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.withTopUps(r, statusView(st), st.ID))
}

// statusView is the GET /v1/promotions/{id} body, and each item of the
// list. redemptions and codesRedeemed are the totals as of the last rollup
// (redemption.Roller), normally under a second behind; the stats endpoint
// counts the audit trail exactly.
func statusView(st promo.PromotionStatus) map[string]any {
	v := map[string]any{
		"id":              st.IDString(),
		"name":            st.Name,
		"kind":            st.Kind,
		"status":          st.Status(),
		"active":          st.Active,
		"redemptions":     st.Totals.Redemptions,
		"codesRedeemed":   st.Totals.CodesRedeemed,
		"codeCount":       st.CodeCount,
		"generatedCount":  st.GeneratedCount,
		"missingCount":    max(st.CodeCount-st.GeneratedCount, 0),
		"batches":         st.Batches,
		"maxUsagePerCode": st.MaxUsagePerCode,
		"perUserLimit":    st.PerUserLimit,
		"createdAt":       st.CreatedAt,
		"summary":         Summary(st),
	}
	if st.Format != nil {
		v["format"] = st.Format
	}
	if st.VanityCode != "" {
		v["code"] = st.VanityCode
	}
	if st.StartsAt != nil {
		v["startsAt"] = st.StartsAt
	}
	if st.ExpiresAt != nil {
		v["expiresAt"] = st.ExpiresAt
	}
	return v
}

// Summary is the one-line progress admins read, e.g.
// "4,950,000 / 5,000,000 codes — 1 batch parked after retries".
func Summary(st promo.PromotionStatus) string {
	s := fmt.Sprintf("%s / %s codes", humanize.Comma(st.GeneratedCount), humanize.Comma(st.CodeCount))
	var notes []string
	if n := st.Batches.Parked; n > 0 {
		notes = append(notes, fmt.Sprintf("%d %s parked after retries (dead-letter topic)", n, plural(n, "batch", "batches")))
	}
	if n := st.Batches.Retrying; n > 0 {
		notes = append(notes, fmt.Sprintf("%d %s retrying", n, plural(n, "batch", "batches")))
	}
	if len(notes) == 0 {
		return s + " — " + string(st.Status())
	}
	return s + " — " + strings.Join(notes, ", ")
}

func (s *Server) exportCodes(w http.ResponseWriter, r *http.Request) {
	partial := false
	if v := r.URL.Query().Get("partial"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.writeError(w, r, promo.FieldErrorf("partial", "must be true or false, got %q", truncate(v, 20)))
			return
		}
		partial = b
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.DBTimeout)
	st, err := s.promotion(r.WithContext(ctx))
	cancel()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id := st.ID
	// An export of an unfinished promotion is a partial file that looks
	// complete: only on request.
	if status := st.Status(); status != promo.StatusCompleted && !partial {
		next := "export it once it is completed, or ask for what exists with ?partial=true"
		switch status {
		case promo.StatusPending, promo.StatusGenerating:
		case promo.StatusFailed:
			next = "it completes once its parked batches are replayed; ask for the codes that exist with ?partial=true"
		default:
			next = "it will not complete; ask for the codes that exist with ?partial=true"
		}
		s.writeError(w, r, promo.Errorf(promo.EConflict, "promotion %d is %s (%s of %s codes): %s",
			id, status, humanize.Comma(st.GeneratedCount), humanize.Comma(st.CodeCount), next))
		return
	}
	if partial {
		w.Header().Set("Promocodes-Partial-Export", "true")
	}
	var layout *codes.Layout
	if st.Format != nil {
		if layout, err = codes.NewLayout(*st.Format); err != nil {
			// A format stored before canonical codes that is refused now (a
			// case-sensitive charset): its codes are exported canonical.
			s.log.Warn("export: stored format has no display form; exporting canonical codes",
				zap.Int64("promotion_id", id), zap.Error(err))
			layout = nil
		}
	}
	// Each export holds a database connection while it streams: only
	// MaxExports at once, so creates and status reads keep theirs.
	release, err := s.exportSlot(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer release()
	// A client that stops reading would hold the connection forever: each
	// write must complete within ExportStallTimeout.
	rc := http.NewResponseController(w)
	stall := func() { _ = rc.SetWriteDeadline(time.Now().Add(s.cfg.ExportStallTimeout)) }
	stall()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="promotion-%d-codes.csv"`, id))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	bw := bufio.NewWriterSize(&deadlineWriter{w: w, before: stall}, 64<<10)
	cw := newCSVWriter(bw)
	_ = cw.Write([]string{"code"})
	row := make([]string, 1)
	var display []byte
	err = s.store.ExportCodes(r.Context(), id, func(code string) error {
		if layout != nil {
			display = layout.AppendDisplay(display[:0], []byte(code))
			row[0] = string(display)
		} else {
			row[0] = code
		}
		return cw.Write(row)
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		// Headers are gone: the best signal left is to cut the stream, so the
		// client sees a truncated transfer rather than a complete-looking file.
		s.log.Warn("export interrupted", zap.Int64("promotion_id", id), zap.Error(err))
		panic(http.ErrAbortHandler)
	}
}

// deadlineWriter re-arms the write deadline before each write.
type deadlineWriter struct {
	w      io.Writer
	before func()
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.before()
	return d.w.Write(p)
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// batchCount is the number of batch events a new promotion is split into.
func batchCount(codes, batchSize int64, kind promo.Kind) int {
	if kind != promo.KindGenerated || batchSize <= 0 {
		return 0
	}
	return int((codes + batchSize - 1) / batchSize)
}
