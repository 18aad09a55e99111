package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/promocodes/promocodes/pkg/codes"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
	"github.com/promocodes/promocodes/promotion"
)

// decodeEligibility decodes eligibility rules strictly, naming
// eligibility.* fields (absent or null: nil).
func decodeEligibility(raw json.RawMessage) (*promo.Eligibility, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	e := new(promo.Eligibility)
	if err := decodeStrict(raw, e, "eligibility."); err != nil {
		return nil, err
	}
	return e, nil
}

const maxIdemKeyLen = 200

func (s *Server) createPromotion(w http.ResponseWriter, r *http.Request) {
	req, err := s.decodeCreate(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := s.promotions.Create(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The answer's status is the promotion's: a new generated promotion is
	// pending (202, its codes are still to come); a new vanity promotion's
	// one code exists already (201, completed); a replay answers what the
	// promotion is now (200).
	code := http.StatusAccepted
	switch {
	case !c.New:
		code = http.StatusOK
		w.Header().Set("Idempotent-Replayed", "true")
	case c.Promotion.Kind == promo.KindVanity:
		code = http.StatusCreated
	}
	w.Header().Set("Location", "/v1/promotions/"+c.Promotion.IDString())
	writeJSON(w, code, wire.Created{ID: c.Promotion.IDString(), Status: c.Status})
}

// idempotencyKey reads the Idempotency-Key header, bounded.
func idempotencyKey(r *http.Request) (string, error) {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdemKeyLen || !printableASCII(key) {
		return "", promo.FieldErrorf("Idempotency-Key", "must be at most %d printable ASCII characters", maxIdemKeyLen)
	}
	return key, nil
}

// decodeCreate decodes a create request; the promotion service checks it.
func (s *Server) decodeCreate(w http.ResponseWriter, r *http.Request) (promotion.Request, error) {
	var out promotion.Request
	key, err := idempotencyKey(r)
	if err != nil {
		return out, err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return out, err
	}
	var req wire.CreatePromotion
	if err := decodeStrict(body, &req, ""); err != nil {
		return out, err
	}
	if len(req.Format) > 0 && string(req.Format) != "null" {
		out.Format = new(promo.Format)
		if err := decodeStrict(req.Format, out.Format, "format."); err != nil {
			return out, err
		}
	}
	if out.StartsAt, err = parseTime(req.StartsAt, "startsAt"); err != nil {
		return out, err
	}
	if out.ExpiresAt, err = parseTime(req.ExpiresAt, "expiresAt"); err != nil {
		return out, err
	}
	if out.Eligibility, err = decodeEligibility(req.Eligibility); err != nil {
		return out, err
	}
	out.Name, out.CodeCount, out.Code = req.Name, req.CodeCount, req.Code
	out.MaxUsagePerCode, out.PerUserLimit, out.IdempotencyKey = req.MaxUsagePerCode, req.PerUserLimit, key
	return out, nil
}

// decodeStrict decodes one JSON object that readBody has already scanned
// (one value, no repeated names, bounded depth), rejecting unknown fields and
// trailing data, and names the offending field on type errors. prefix is the
// JSON path of the object within the request ("format."): the decoder names
// an unknown field without its path.
// body has been through readBody (scanJSON: no null where none may stand).
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
func statusView(st promo.PromotionStatus) wire.Promotion {
	return wire.Promotion{Active: st.Active, Batches: st.Batches, Code: st.VanityCode, CodeCount: st.CodeCount,
		CodesRedeemed: st.Totals.CodesRedeemed, CreatedAt: st.CreatedAt, Eligibility: st.Eligibility,
		ExpiresAt: st.ExpiresAt, Format: st.Format, GeneratedCount: st.GeneratedCount, ID: st.IDString(), Kind: st.Kind,
		MaxUsagePerCode: st.MaxUsagePerCode, MissingCount: max(st.CodeCount-st.GeneratedCount, 0), Name: st.Name,
		PerUserLimit: st.PerUserLimit, Redemptions: st.Totals.Redemptions, StartsAt: st.StartsAt, Status: st.Status(),
		Summary: Summary(st)}
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
		if v != "true" && v != "false" { // as the document says: not 1, t or TRUE
			s.writeError(w, r, promo.FieldErrorf("partial", "must be true or false, got %q", truncate(v, 20)))
			return
		}
		partial = v == "true"
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

// idemKeyFields checks an Idempotency-Key header of a redemption or a
// reservation as create and top-up check theirs: at most maxIdemKeyLen
// printable ASCII characters (a header is ASCII; other bytes were let
// through before and, on SQL Server, could outgrow the key's column).
func idemKeyFields(key string) []promo.FieldError {
	if len(key) > maxIdemKeyLen || !printableASCII(key) {
		return []promo.FieldError{{Field: "Idempotency-Key",
			Message: fmt.Sprintf("must be at most %d printable ASCII characters", maxIdemKeyLen)}}
	}
	return nil
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
