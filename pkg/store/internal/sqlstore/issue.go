package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Issue hands out req.Count unassigned codes of a generated promotion to
// req.UserID, binding them to that user, in one write transaction with its
// audit row, its code.issued event on the redemptions topic and its
// idempotency record.
//
// The codes are taken by one conditional statement that skips the codes a
// concurrent issuance holds (FOR UPDATE SKIP LOCKED, UPDLOCK/READPAST;
// SQLite has one writer), only while unassigned, under their row locks: a
// code is issued once. When fewer are left than asked for, nothing is
// issued (pool_exhausted; the idempotency record rolls back too).
func (s *Core[T]) Issue(ctx context.Context, req promo.IssueRequest) (promo.IssueOutcome, error) {
	out, err := validRun1(ctx, s, req, stmts[T].issue, // retried (run)
		"issue %d codes of promotion %d to %q", req.Count, req.PromotionID, req.UserID)
	if err == nil && s.d.SetIssueCursor != "" && out.firstPage >= 0 && !out.Replayed {
		// After the commit, waiting for no lock; not recorded, the next
		// issuance reads further.
		_, _ = s.w.Exec(ctx, s.d.SetIssueCursor, req.PromotionID, out.firstPage)
	}
	return out.IssueOutcome, err
}

// issued is an issuance's outcome and the lowest heap page it took a code
// from (-1: none, or not known on this database).
type issued struct {
	promo.IssueOutcome
	firstPage int64
}

func (x stmts[T]) issue(ctx context.Context, req promo.IssueRequest) (issued, error) {
	if claimed, err := x.claim(ctx, req.IdempotencyKey, req.RequestHash, req.Now, ""); err != nil {
		return issued{}, err
	} else if !claimed {
		out, err := x.replayIssuance(ctx, req)
		return issued{IssueOutcome: out, firstPage: -1}, err
	}
	var (
		kind     string
		deleting bool
	)
	found, err := x.row(ctx, x.d.IssuablePromotion, []any{req.PromotionID}, &kind, &deleting)
	switch {
	case err != nil:
		return issued{}, fmt.Errorf("look up promotion: %w", err)
	case !found:
		return issued{}, promotionNotFound(req.PromotionID)
	case deleting:
		return issued{}, promotionDeleted(req.PromotionID)
	case promo.Kind(kind) != promo.KindGenerated:
		return issued{}, promo.Errorf(promo.EConflict,
			"promotion %d has one vanity code: only a generated promotion's codes are issued", req.PromotionID)
	}
	at := req.Now.UTC().Truncate(time.Microsecond)
	iss := promo.Issuance{ID: req.ID, PromotionID: req.PromotionID, UserID: req.UserID, IssuedAt: at}
	out := issued{firstPage: -1}
	if x.d.IssueCodesFrom == "" {
		iss.Codes, err = x.takeCodes(ctx, nil, x.d.IssueCodes, req.PromotionID, req.UserID, x.d.VarChar(req.ID), x.d.Time(at), req.Count)
	} else {
		iss.Codes, out.firstPage, err = x.takeCodesFrom(ctx, req, at)
	}
	if err != nil {
		return issued{}, fmt.Errorf("take codes: %w", err)
	}
	if len(iss.Codes) < req.Count {
		return issued{}, promo.Refusal(promo.ReasonPoolExhausted,
			"promotion %d has %d unassigned codes left, %d asked for: none issued", req.PromotionID, len(iss.Codes), req.Count)
	}
	slices.Sort(iss.Codes)
	if err := x.audit(ctx, promo.AuditEntry{ID: req.EventID, At: at, Actor: cmp.Or(req.Actor, "issuance"),
		Action: promo.ActionCodeIssued, PromotionID: req.PromotionID, Code: iss.Codes[0]},
		map[string]any{"issuanceId": iss.ID, "userId": iss.UserID, "codes": iss.Codes}); err != nil {
		return issued{}, err
	}
	if req.IdempotencyKey != "" {
		if err := x.exec(ctx, x.d.SaveIssuanceOutcome, req.IdempotencyKey, x.d.VarChar(iss.ID)); err != nil {
			return issued{}, fmt.Errorf("save idempotency record: %w", err)
		}
	}
	out.Issuance = iss
	return out, nil
}

// issueWindow is how many heap pages past the recorded cursor an issuance
// reads before it looks through the whole promotion (about 150,000 codes).
const issueWindow = 1024

// takeCodesFrom is IssueCodes on PostgreSQL: first the pages from where the
// promotion's last issuance began taking codes, then, when they hold fewer
// than asked for, the whole promotion (codes freed before the cursor, added
// after the window, or none left). The cursor is a hint: a wrong one costs
// a longer read, never a code. It returns the lowest page a code was taken
// from (-1: none), for Issue to record after the commit.
func (x stmts[T]) takeCodesFrom(ctx context.Context, req promo.IssueRequest, at time.Time) ([]string, int64, error) {
	var from int64
	found, err := x.row(ctx, x.d.IssueCursor, []any{req.PromotionID}, &from)
	if err != nil {
		return nil, -1, fmt.Errorf("read issue cursor: %w", err)
	}
	first := int64(-1)
	var codes []string
	take := func(lo, hi int64) error {
		more, err := x.takeCodes(ctx, &first, x.d.IssueCodesFrom, req.PromotionID, req.UserID, x.d.VarChar(req.ID),
			x.d.Time(at), req.Count-len(codes), tid(lo), tid(hi))
		codes = append(codes, more...)
		return err
	}
	if found {
		if err := take(from, min(from+issueWindow, maxPage)); err != nil {
			return nil, -1, err
		}
	}
	if len(codes) < req.Count {
		if err := take(0, maxPage); err != nil {
			return nil, -1, err
		}
	}
	return codes, first, nil
}

// maxPage is past the last page of any PostgreSQL table (block numbers are
// 32-bit; the highest is not a valid page).
const maxPage = 1<<32 - 1

func tid(page int64) string { return fmt.Sprintf("(%d,0)", page) }

// takeCodes runs an issuing statement (or IssuedCodes): its rows are a code,
// and with first set a page (the lowest is kept in *first).
func (x stmts[T]) takeCodes(ctx context.Context, first *int64, query string, args ...any) ([]string, error) {
	return collect(ctx, x.q, query, args, func(r Row, code *string) error {
		if first == nil {
			return r.Scan(code)
		}
		var page int64
		err := r.Scan(code, &page)
		if err == nil && (*first < 0 || page < *first) {
			*first = page
		}
		return err
	})
}

// replayIssuance answers an issuance whose idempotency key is recorded: the
// codes that issuance bound (a bound code is never unbound).
func (x stmts[T]) replayIssuance(ctx context.Context, req promo.IssueRequest) (promo.IssueOutcome, error) {
	var hash, id string
	if err := x.q.QueryRow(ctx, x.d.StoredIssuanceOutcome, req.IdempotencyKey).Scan(&hash, &id); err != nil {
		return promo.IssueOutcome{}, fmt.Errorf("read idempotency record: %w", err)
	}
	if hash != req.RequestHash || id == "" {
		// id "": the key was recorded by another kind of request.
		return promo.IssueOutcome{}, idempotencyConflict()
	}
	iss := promo.Issuance{ID: id, PromotionID: req.PromotionID, UserID: req.UserID}
	var err error
	if iss.Codes, err = x.takeCodes(ctx, nil, x.d.IssuedCodes, req.UserID, x.d.VarChar(id)); err != nil {
		return promo.IssueOutcome{}, fmt.Errorf("read issued codes: %w", err)
	}
	if len(iss.Codes) == 0 {
		return promo.IssueOutcome{}, promo.Errorf(promo.EGone,
			"the codes this Idempotency-Key issued (%s) were deleted with their promotion", id)
	}
	return promo.IssueOutcome{Issuance: iss, Replayed: true}, nil
}

// UserCodes lists the codes bound to userID, newest issued first, at most
// limit (promo.MaxUserCodes for 0 or less, and at most that), each with the
// state a redemption by its owner would meet at now.
func (s *Core[T]) UserCodes(ctx context.Context, userID string, now time.Time, limit int) ([]promo.UserCode, error) {
	if userID == "" {
		return nil, promo.FieldErrorf("userId", "is required")
	}
	limit = clampLimit(limit, promo.MaxUserCodes, promo.MaxUserCodes)
	out, err := collect(ctx, s.r, s.d.UserCodes, []any{userID, limit}, func(r Row, c *promo.UserCode) error {
		var (
			st  promo.CodeState
			pid int64
		)
		if err := r.Scan(&c.Code, &pid, &c.PromotionName, Time(&c.IssuedAt), &c.Used, &st.Promotion.MaxUsagePerCode,
			&st.Revoked, &st.Active, &st.Deleted, NullTime(&st.Promotion.StartsAt), NullTime(&st.Promotion.ExpiresAt)); err != nil {
			return err
		}
		st.Used = c.Used
		c.PromotionID, c.UsesLeft, c.Status = promo.FormatID(pid), st.UsesLeft(), st.Status(now, false)
		return nil
	})
	return out, wrap(err, "codes of user %q", userID)
}
