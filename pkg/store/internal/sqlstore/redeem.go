package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// Redeem uses a code once for a user in one transaction (or RedeemOnce):
// every limit by a conditional statement, the audit row, the event and the
// idempotency record. A refusal is an outcome, so its record commits too.
func (s *Core[T]) Redeem(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	// Shopper fields, or a promotion's rules (RedeemOnce aborts), take the
	// statement path.
	return onceOr(ctx, s, req, s.d.RedeemOnce != "" && req.Shopper == nil, s.redeemOnce, stmts[T].redeemTx,
		"redeem %q for %q", req.Code, req.UserID)
}

// redeemTx is Redeem's transaction: redeem, its event encoded there (no group).
func (x stmts[T]) redeemTx(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	return x.redeem(ctx, req, nil, nil)
}

// redeemErr says which redemption an internal error is of.
func redeemErr(err error, req promo.RedeemRequest) error {
	return wrap(err, "redeem %q for %q", req.Code, req.UserID)
}

// redemptionOf is the audit row of req, but for what the database decides
// (the promotion, the uses left).
func redemptionOf(req promo.RedeemRequest) promo.Redemption {
	return promo.Redemption{ID: req.ID, Code: req.Code, UserID: req.UserID, OrderID: req.OrderID,
		Metadata: req.Metadata, RedeemedAt: req.Now.UTC().Truncate(time.Microsecond),
		IdempotencyKey: req.IdempotencyKey, ClientAddr: req.ClientAddr, UserAgent: req.UserAgent}
}

// redeemOnce is Redeem in one round trip (RedeemOnce); a recorded key is
// answered from its record.
func (s *Core[T]) redeemOnce(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, bool, error) {
	r := redemptionOf(req)
	head, body, err := EventParts(req.EventID, r)
	if err != nil {
		return promo.RedeemOutcome{}, false, err
	}
	outcome, err := s.once(ctx, "redeem", s.d.RedeemOnce, []any{s.d.VarChar(r.ID), s.d.VarChar(r.Code), r.UserID,
		text(r.OrderID), text(string(r.Metadata)), s.d.Time(r.RedeemedAt), req.IdempotencyKey, req.RequestHash,
		s.d.VarChar(promo.StreamRedemptions), head, body, req.ClientAddr, req.UserAgent},
		&r.PromotionID, &r.UsesLeft)
	switch {
	case err != nil || outcome == "":
		return promo.RedeemOutcome{}, false, err
	case outcome == "replay":
		out, err := s.on(s.w).replay(ctx, req)
		return out, true, err
	case outcome != "redeemed":
		return promo.RedeemOutcome{Refused: promo.Reason(outcome), PromotionID: r.PromotionID}, true, nil
	}
	return promo.RedeemOutcome{Redemption: r}, true, nil
}

// EventParts splits the redemption.created event of r (whose PromotionID
// and UsesLeft are not known yet) around the three values that a
// one-statement redemption learns in the database: the payload is head ||
// promotion id || body || uses left || `},"codeUses":` || code uses || `}`,
// byte for byte what NewRedemptionEvent encodes. The promotion id is the
// first value after ours (version, type, event id, time), and usesLeft the
// last field of the redemption (every field after it is empty and omitted),
// so no user-supplied text can stand where they are cut.
func EventParts(eventID string, r promo.Redemption) (head, body string, err error) {
	const pid, tail = `"promotionId":"0"`, `"usesLeft":0},"codeUses":0}`
	r.PromotionID, r.UsesLeft, r.RolledBackAt, r.RollbackReason, r.CodeRelease = 0, 0, nil, "", ""
	zero := 0
	p, err := promo.NewRedemptionEvent(promo.EventRedeemed, eventID, r.RedeemedAt, r, &zero)
	if err != nil {
		return "", "", fmt.Errorf("encode redemption event: %w", err)
	}
	s := string(p)
	i := strings.Index(s, pid)
	if i < 0 || !strings.HasSuffix(s, tail) || i+len(pid) > len(s)-len(tail) {
		return "", "", fmt.Errorf("redemption event %s: not the expected shape", s)
	}
	return s[:i+len(pid)-2], s[i+len(pid)-1 : len(s)-len(tail)+len(`"usesLeft":`)], nil
}

// redeem is the redemption's transaction (ev: its event, cut beforehand;
// nil: encoded here). Locks are taken in one order in every transaction, so
// that redemptions and rollbacks cannot deadlock: idempotency key, code row,
// allowance row; a rollback locks its redemption row (which no redemption
// locks) first. With b (a group's, OneWriter) the audit row and the event
// of a redemption with ev are added to b, written at the group's end; b is
// written first wherever this transaction could read them (a replay) or
// writes after them (a redemption without ev), so the rows and their order
// are the same.
func (x stmts[T]) redeem(ctx context.Context, req promo.RedeemRequest, ev *eventParts, b *rowBatch) (promo.RedeemOutcome, error) {
	if claimed, err := x.claim(ctx, req.IdempotencyKey, req.RequestHash, req.Now, req.ID); err != nil {
		return promo.RedeemOutcome{}, err
	} else if !claimed {
		if err := b.flush(ctx); err != nil {
			return promo.RedeemOutcome{}, err
		}
		return x.replay(ctx, req)
	}
	u, left, refused, rule, err := x.take(ctx, req.Code, req.UserID, req.Now, "", req.Shopper)
	if err != nil || refused != "" {
		if err == nil {
			err = x.saveOutcome(ctx, x.d.SaveOutcome, req.IdempotencyKey, promo.Reason(promo.Refused(refused, rule)), "")
		}
		return promo.RedeemOutcome{Refused: refused, PromotionID: u.PromotionID, Rule: rule}, err
	}
	r := redemptionOf(req)
	r.PromotionID, r.UsesLeft = u.PromotionID, left
	r.WithShopper(req.Shopper)
	switch {
	case ev != nil && b != nil:
		x.batch(b, r, ev.event(r, u.Used))
	case ev == nil:
		if err = b.flush(ctx); err == nil {
			err = x.redeemed(ctx, r, req.EventID, u.Used)
		}
	default:
		err = wrap(x.insertRedemption(ctx, r, ev.event(r, u.Used)), "insert redemption")
	}
	if err != nil {
		return promo.RedeemOutcome{}, err
	}
	return promo.RedeemOutcome{Redemption: r}, nil
}

// eventParts is a redemption's event cut by EventParts on the request's
// goroutine, so that a group's one writer (SQLite) only puts in what the
// database decided; nil for a request with shopper fields (they follow
// usesLeft).
type eventParts struct{ head, body string }

func cutEvent(req promo.RedeemRequest) *eventParts {
	if req.Shopper != nil {
		return nil
	}
	head, body, err := EventParts(req.EventID, redemptionOf(req))
	if err != nil {
		return nil // the writer encodes it, and meets the error
	}
	return &eventParts{head, body}
}

// event is the payload NewRedemptionEvent encodes for r (TestEventParts).
func (p *eventParts) event(r promo.Redemption, codeUses int) promo.OutboxEvent {
	pid := promo.FormatID(r.PromotionID)
	b := make([]byte, 0, len(p.head)+len(pid)+len(p.body)+40)
	b = strconv.AppendInt(append(append(append(b, p.head...), pid...), p.body...), int64(r.UsesLeft), 10)
	b = append(strconv.AppendInt(append(b, `},"codeUses":`...), int64(codeUses), 10), '}')
	return promo.OutboxEvent{Stream: promo.StreamRedemptions, Key: pid, Payload: b}
}

// saveOutcome completes the idempotency record of key (none: nothing to do)
// through query (SaveOutcome or SaveReservationOutcome).
func (x stmts[T]) saveOutcome(ctx context.Context, query, key string, refused promo.Reason, id string) error {
	if key == "" {
		return nil
	}
	return wrap(x.exec(ctx, query, key, string(refused), x.d.VarChar(id)), "save idempotency record")
}

// take adds one use of code for userID at now, within every limit and the
// rules for shopper (as UseCode read them); what does not fit is taken back
// and named as the refusal. exclude is a reservation being confirmed: its
// own hold makes room for the use.
//
// Why holds cannot over-allocate (here and in Reserve, on every dialect):
// the conditional UseCode (LockCode) takes the code row's lock, then
// codeLoad, a new statement, counts uses plus live holds. Every transaction
// that adds a use or a hold locks that row first and keeps the lock to its
// commit, and under READ COMMITTED the new statement's snapshot sees all
// the lock's earlier holders committed: the count is complete (releases
// and expiries leave it without the lock: too high for a moment, never too
// low). A subquery in UseCode's WHERE would not do: PostgreSQL re-checks a
// waited-for row's WHERE but keeps the statement's snapshot in a subquery,
// so two reservers could share the last use. The allowance row likewise.
func (x stmts[T]) take(ctx context.Context, code, userID string, now time.Time, exclude string,
	shopper *promo.Shopper) (u CodeUse, left int, reason promo.Reason, rule string, err error) {
	// folded: the dialect counts the holds in the statements that take the
	// uses (UseCodeLoad, UseAllowanceLoad).
	folded := exclude == "" && x.d.UseCodeLoad != ""
	u, load, ok, err := x.useCode(ctx, x.d.UseCode, code, userID, now, exclude, folded)
	if err != nil {
		return u, 0, "", "", fmt.Errorf("use code, count its holds: %w", err)
	}
	if !ok {
		reason, st, err := x.refusal(ctx, code, userID, now)
		u.PromotionID = st.Promotion.ID
		return u, 0, reason, "", err
	}
	if load > u.MaxUsage {
		reason = promo.ReasonCodeExhausted
	} else if rule = u.Eligibility.Check(shopper); rule != "" {
		reason = promo.ReasonNotEligible
	} else if ok, err := x.useAllowance(ctx, u, userID, now, exclude, folded); err != nil || !ok {
		if err != nil {
			return u, 0, "", "", err
		}
		reason = promo.ReasonUserLimitReached
	}
	if reason != "" {
		return u, 0, reason, rule, x.takeBack(ctx, u, code, "", false)
	}
	return u, max(0, u.MaxUsage-load), "", "", nil
}

// useAllowance is take's allowance step (none without a per-user limit):
// false, having added nothing, when the use does not fit.
func (x stmts[T]) useAllowance(ctx context.Context, u CodeUse, userID string, now time.Time, exclude string,
	folded bool) (bool, error) {
	if u.PerUserLimit == promo.UnlimitedPerUser {
		return true, nil
	}
	ok, load, err := x.allowanceLoad(ctx, x.d.UseAllowance, x.d.UseAllowanceInsert, u, userID, now, exclude, folded)
	if err != nil {
		return false, fmt.Errorf("use allowance, count its holds: %w", err)
	}
	if ok && load > u.PerUserLimit {
		if err := x.ReleaseAllowance(ctx, u.PromotionID, userID); err != nil {
			return false, fmt.Errorf("take back allowance use: %w", err)
		}
		return false, nil
	}
	return ok, nil
}

// takeBack gives back take's use of code (and of the allowance).
func (x stmts[T]) takeBack(ctx context.Context, u CodeUse, code, userID string, allowance bool) error {
	if allowance && u.PerUserLimit != promo.UnlimitedPerUser {
		if err := x.ReleaseAllowance(ctx, u.PromotionID, userID); err != nil {
			return fmt.Errorf("take back allowance use: %w", err)
		}
	}
	return wrap(x.UnuseCode(ctx, code), "take back code use")
}

// refusal names why a conditional statement on code matched no row, from
// the code's state (read only to name the reason; zero for no such code).
func (x stmts[T]) refusal(ctx context.Context, code, userID string, now time.Time) (promo.Reason, promo.CodeState, error) {
	st, found, err := x.CodeState(ctx, code, userID, now)
	switch reason := st.Status(now, false); {
	case err != nil:
		return "", st, fmt.Errorf("read code state: %w", err)
	case !found:
		return promo.ReasonCodeNotFound, st, nil
	case reason == promo.ReasonRedeemable:
		// Only a concurrent change can get here (an admin reactivated
		// the promotion in between): refuse rather than guess.
		return promo.ReasonCodeExhausted, st, nil
	default:
		return reason, st, nil
	}
}

// redeemed writes the audit row and its event; codeUses (the code's uses
// after this one) lets the rollup count codes redeemed.
func (x stmts[T]) redeemed(ctx context.Context, r promo.Redemption, eventID string, codeUses int) error {
	ev, err := redemptionEvent(promo.EventRedeemed, eventID, r.RedeemedAt, r, &codeUses)
	if err == nil {
		err = x.insertRedemption(ctx, r, ev)
	}
	return wrap(err, "insert redemption")
}

// redemptionEvent is r's outbox event of kind.
func redemptionEvent(kind, eventID string, at time.Time, r promo.Redemption, codeUses *int) (promo.OutboxEvent, error) {
	payload, err := promo.NewRedemptionEvent(kind, eventID, at, r, codeUses)
	if err != nil {
		return promo.OutboxEvent{}, fmt.Errorf("encode %s event: %w", kind, err)
	}
	return promo.OutboxEvent{Stream: promo.StreamRedemptions, Key: promo.FormatID(r.PromotionID), Payload: payload}, nil
}

// replay answers a redemption whose idempotency key is already recorded.
func (x stmts[T]) replay(ctx context.Context, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	reason, rule, id, err := x.recorded(ctx, x.d.StoredOutcome, req.IdempotencyKey, req.RequestHash)
	if err != nil || reason != "" {
		return promo.RedeemOutcome{Refused: reason, Rule: rule, Replayed: true}, err
	}
	// A record left from before a purge --with-redemptions (which deletes
	// the records with the redemptions) or from a concurrent one.
	r, found, err := x.redemption(ctx, x.d.Redemption, x.d.VarChar(id))
	r, err = need(r, found, err, promo.Refusal(promo.ReasonRedemptionPurged,
		"the redemption this Idempotency-Key made (%s) was deleted by a purge", id), "read redemption %s", id)
	if err != nil {
		return promo.RedeemOutcome{}, err
	}
	return promo.RedeemOutcome{Redemption: r, Replayed: true}, nil
}

// Rollback gives a redemption's use back to its code row (none if gone:
// CodeGone) and its user, once (MarkRolledBack); again, it answers replayed
// (docs/redemption.md, "Rollback").
func (s *Core[T]) Rollback(ctx context.Context, req promo.RollbackRequest) (promo.Redemption, bool, error) {
	if s.d.RollbackOnce != "" {
		r, replayed, err := s.rollbackOnce(ctx, req)
		return r, replayed, wrap(err, "roll back redemption %q", req.RedemptionID)
	}
	r, replayed, err := run(ctx, s, func(x stmts[T]) (promo.Redemption, bool, error) { return x.rollback(ctx, req) })
	return r, replayed, wrap(err, "roll back redemption %q", req.RedemptionID)
}

func (x stmts[T]) rollback(ctx context.Context, req promo.RollbackRequest) (promo.Redemption, bool, error) {
	now := req.Now.UTC().Truncate(time.Microsecond)
	id := x.d.VarChar(req.RedemptionID)
	r, ok, err := x.redemption(ctx, x.d.MarkRolledBack, id, x.d.Time(now), text(req.Reason))
	if err != nil {
		return promo.Redemption{}, false, fmt.Errorf("mark redemption rolled back: %w", err)
	}
	if !ok {
		r, found, err := x.redemption(ctx, x.d.Redemption, id)
		r, err = need(r, found, err, promo.Errorf(promo.ENotFound, "no redemption %q", req.RedemptionID), "read redemption")
		return r, err == nil, err
	}
	used, found, err := x.ReleaseCode(ctx, r.PromotionID, r.Code)
	if err != nil {
		return promo.Redemption{}, false, fmt.Errorf("release code use: %w", err)
	}
	var codeUses *int
	r.CodeRelease = promo.CodeGone
	if found {
		codeUses, r.CodeRelease = &used, promo.CodeReleased
	}
	if err := x.exec(ctx, x.d.RecordCodeRelease, id, x.d.VarChar(string(r.CodeRelease))); err != nil {
		return promo.Redemption{}, false, fmt.Errorf("record code release: %w", err)
	}
	if err := x.ReleaseAllowance(ctx, r.PromotionID, r.UserID); err != nil {
		return promo.Redemption{}, false, fmt.Errorf("release user allowance: %w", err)
	}
	ev, err := redemptionEvent(promo.EventRolledBack, req.EventID, now, r, codeUses)
	if err == nil {
		err = x.insertEvent(ctx, ev)
	}
	if err != nil {
		return promo.Redemption{}, false, fmt.Errorf("insert rollback event: %w", err)
	}
	return r, false, nil
}

// rollbackOnce is Rollback in one round trip.
func (s *Core[T]) rollbackOnce(ctx context.Context, req promo.RollbackRequest) (r promo.Redemption, replayed bool, err error) {
	now := req.Now.UTC().Truncate(time.Microsecond)
	head, rolled, err := RollbackEventParts(req.EventID, now, req.Reason)
	if err != nil {
		return promo.Redemption{}, false, err
	}
	var outcome string
	err = s.retry(ctx, func() error {
		r, err = scanRedemption(s.w.QueryRow(ctx, s.d.RollbackOnce, s.d.VarChar(req.RedemptionID), s.d.Time(now),
			req.Reason, s.d.VarChar(promo.StreamRedemptions), head, rolled, s.d.Time(time.Now())), &outcome)
		return err
	})
	switch {
	case err != nil:
		return promo.Redemption{}, false, fmt.Errorf("roll back in one statement: %w", err)
	case outcome == "not_found":
		return promo.Redemption{}, false, promo.Errorf(promo.ENotFound, "no redemption %q", req.RedemptionID)
	}
	return r, outcome == "replayed", nil
}

// RollbackEventParts is what a one-statement rollback's event needs from
// the request: its head up to the promotion id's digits
// (`{"v":1,"type":"redemption.rolled_back","eventId":…,"occurredAt":…,"promotionId":"`)
// and its rollback fields (`"rolledBackAt":…` and `,"rollbackReason":…`),
// in NewRedemptionEvent's encoding; the database writes the rest from the
// audit row (docs/store.md, migration 00015).
func RollbackEventParts(eventID string, now time.Time, reason string) (head, rolled string, err error) {
	at := now.UTC()
	p, err := promo.NewRedemptionEvent(promo.EventRolledBack, eventID, at,
		promo.Redemption{RolledBackAt: &at, RollbackReason: reason}, nil)
	if err != nil {
		return "", "", fmt.Errorf("encode rollback event: %w", err)
	}
	s := string(p)
	const pid, from = `"promotionId":"0"`, `"rolledBackAt":`
	i, j, k := strings.Index(s, pid), strings.Index(s, from), strings.LastIndex(s, "}}")
	if i < 0 || j < 0 || k < j || !strings.HasSuffix(s, "}}") {
		return "", "", fmt.Errorf("rollback event %s: not the expected shape", s)
	}
	return s[:i+len(pid)-2], s[j:k], nil
}

// CodeState reads a code with its promotion, userID's uses (if set) and the
// live reservations; ENotFound for no such code.
func (s *Core[T]) CodeState(ctx context.Context, code, userID string) (promo.CodeState, error) {
	st, found, err := s.on(s.r).CodeState(ctx, code, userID, time.Now().UTC())
	return need(st, found, err, codeNotFound(), "read code state")
}

// Redemptions returns a page of the audit trail f selects, newest first.
func (s *Core[T]) Redemptions(ctx context.Context, f promo.RedemptionFilter) ([]promo.Redemption, error) {
	var out []promo.Redemption
	err := s.eachRedemption(ctx, f, pageLimit(f.Limit), func(r promo.Redemption) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// ExportRedemptions streams every redemption f selects to fn.
func (s *Core[T]) ExportRedemptions(ctx context.Context, f promo.RedemptionFilter, fn func(promo.Redemption) error) error {
	return s.eachRedemption(ctx, f, s.d.AllRows, fn)
}

// eachRedemption reads the audit trail f selects: a promotion's (ENotFound
// for an unknown one), narrowed to a user or a code, or a user's across
// promotions; UUIDv7 ids give the order and the cursors.
func (s *Core[T]) eachRedemption(ctx context.Context, f promo.RedemptionFilter, limit any, fn func(promo.Redemption) error) error {
	args := []any{f.PromotionID, limit, s.d.VarChar(f.After), s.d.VarChar(f.Since)}
	var q string
	switch {
	case f.UserID != "" && f.Code != "":
		return promo.Errorf(promo.EInvalid, "the audit trail is filtered by a user or by a code, not both")
	case f.PromotionID == 0 && f.UserID == "":
		return promo.Errorf(promo.EInvalid, "the audit trail is read for a promotion or for a user")
	case f.PromotionID == 0:
		q, args[0] = s.d.UserRedemptions, f.UserID
	case f.UserID != "":
		q, args = s.d.RedemptionsByUser, append(args, f.UserID)
	case f.Code != "":
		q, args = s.d.RedemptionsByCode, append(args, s.d.VarChar(f.Code))
	default:
		q = s.d.Redemptions
	}
	of := fmt.Sprintf("user %q", f.UserID)
	if f.PromotionID != 0 {
		of = fmt.Sprintf("promotion %d", f.PromotionID)
		if err := s.promotionExists(ctx, f.PromotionID); err != nil {
			return err
		}
	}
	err := each(ctx, s.r, q, args, func(row Row) error {
		r, err := scanRedemption(row)
		if err != nil {
			return err
		}
		return fn(r)
	})
	return wrap(err, "list redemptions of %s", of)
}

// promotionExists is nil for a promotion that exists, ENotFound otherwise.
func (s *Core[T]) promotionExists(ctx context.Context, id int64) error {
	var exists bool
	err := s.r.QueryRow(ctx, s.d.PromotionExists, id).Scan(&exists)
	if err == nil && !exists {
		return promotionNotFound(id)
	}
	return wrap(err, "look up promotion %d", id)
}

// ClaimEvents leases up to limit unpublished events, in outbox order, which
// other publishers skip until the lease ends.
func (s *Core[T]) ClaimEvents(ctx context.Context, limit int, lease time.Duration) ([]promo.OutboxEvent, error) {
	evs, err := collect(ctx, s.w, s.d.ClaimEvents, []any{limit, s.d.Lease(lease)}, func(r Row, ev *promo.OutboxEvent) error {
		return r.Scan(&ev.Seq, &ev.Stream, &ev.Key, &ev.Payload)
	})
	slices.SortFunc(evs, func(a, b promo.OutboxEvent) int { return cmp.Compare(a.Seq, b.Seq) })
	return evs, wrap(err, "claim events")
}

// MarkEventsPublished records that the broker acknowledged these events.
func (s *Core[T]) MarkEventsPublished(ctx context.Context, seqs []int64) error {
	var err error
	if s.d.Arrays {
		_, err = s.w.Exec(ctx, s.d.MarkEventPublished, seqs)
	} else {
		err = s.inTx(ctx, func(tx T) error {
			return execEach(ctx, tx, s.d.MarkEventPublished, seqs, func(seq int64) []any { return []any{seq} })
		})
	}
	return wrap(err, "mark %d events published", len(seqs))
}

// PruneEvents deletes up to limit events published before before and
// counted: how many.
func (s *Core[T]) PruneEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.count(ctx, "prune published events", s.d.PruneEvents, s.d.Time(before), limit)
}

// count runs a bounded write and returns how many rows it changed.
func (s *Core[T]) count(ctx context.Context, what, query string, args ...any) (int64, error) {
	n, err := s.w.Exec(ctx, query, args...)
	return n, wrap(err, "%s", what)
}
