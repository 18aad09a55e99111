package contract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// RedemptionTx is one dialect's statements of the redemption and rollback
// transactions, each bound to the open transaction. Redeem and Rollback below
// are the algorithm, written once; the stores supply the SQL. Every limit is
// enforced by a conditional statement that the database re-checks under the
// row lock it takes (UseCode, UseAllowance, MarkRolledBack): nothing here
// reads a count and decides in Go whether to write.
type RedemptionTx interface {
	// ClaimKey inserts the idempotency record for key; false when it exists
	// (committed by an earlier or concurrent transaction, which the insert
	// waited for).
	ClaimKey(ctx context.Context, key, hash string, now time.Time) (bool, error)
	// StoredOutcome reads an existing idempotency record.
	StoredOutcome(ctx context.Context, key string) (hash, refused, redemptionID string, err error)
	// SaveOutcome completes the idempotency record claimed by ClaimKey.
	SaveOutcome(ctx context.Context, key, refused, redemptionID string) error
	// UseCode adds one use to code if, in one statement, the code is not
	// revoked, the promotion is active, now is inside its window and the code
	// has a use left (committed uses only: live reservations are counted by
	// CodeLoad once the row is locked). ok is false when the statement
	// matched no row.
	UseCode(ctx context.Context, code string, now time.Time) (u CodeUse, ok bool, err error)
	// UnuseCode takes back the use UseCode added in this transaction.
	UnuseCode(ctx context.Context, code string) error
	// UseAllowance adds one use to the user's allowance in the promotion if
	// it stays within limit (creating the row at 1); false when it would not.
	UseAllowance(ctx context.Context, promotionID int64, userID string, limit int) (bool, error)
	// InsertRedemption writes the audit row and its event's outbox row.
	InsertRedemption(ctx context.Context, r promo.Redemption, ev promo.OutboxEvent) error
	// CodeState reads a code with its promotion, the user's uses and the
	// reservations live at now; found is false when there is no such code.
	CodeState(ctx context.Context, code, userID string, now time.Time) (st promo.CodeState, found bool, err error)
	// MarkRolledBack marks a redemption rolled back if it is not already;
	// ok is false when it matched no row (no such redemption, or rolled back
	// before).
	MarkRolledBack(ctx context.Context, id string, now time.Time, reason string) (r promo.Redemption, ok bool, err error)
	// Redemption reads one audit row.
	Redemption(ctx context.Context, id string) (r promo.Redemption, found bool, err error)
	// ReleaseCode and ReleaseAllowance give one use back (never below 0).
	// ReleaseCode touches only the code row of that promotion (a code with
	// the same string in another promotion is another row) and returns its
	// uses after it; ok is false when it matched no row (the row is gone, or
	// had no use to give back).
	ReleaseCode(ctx context.Context, promotionID int64, code string) (used int, ok bool, err error)
	ReleaseAllowance(ctx context.Context, promotionID int64, userID string) error
	// RecordCodeRelease stores on a rolled-back redemption what its
	// rollback did to the code row, so that a replayed rollback answers it.
	RecordCodeRelease(ctx context.Context, id string, release promo.CodeRelease) error
	// InsertEvent writes an outbox row.
	InsertEvent(ctx context.Context, ev promo.OutboxEvent) error

	// CodeLoad reads, under the code row lock this transaction holds (taken
	// by UseCode or LockCode), the code's committed uses plus its live
	// reservations (held, expires_at > now) other than exclude.
	CodeLoad(ctx context.Context, code string, now time.Time, exclude string) (int, error)
	// AllowanceLoad reads, under the allowance row lock this transaction
	// holds (UseAllowance or LockAllowance), the user's committed uses in the
	// promotion plus the user's live reservations in it other than exclude.
	AllowanceLoad(ctx context.Context, promotionID int64, userID string, now time.Time, exclude string) (int, error)
	ReservationTx
	LifecycleTx
}

// CodeUse is what UseCode's statement returns about the code it updated.
type CodeUse struct {
	PromotionID  int64
	Used         int
	MaxUsage     int
	PerUserLimit int
}

// Redeem runs the redemption algorithm in tx, which the caller commits when
// Redeem returns no error (a refusal is an outcome, not an error, so that its
// idempotency record commits too) and rolls back otherwise.
//
// Order of locks, the same in every transaction that takes them, so that
// concurrent redemptions and rollbacks cannot deadlock: idempotency key,
// code row, allowance row; a rollback locks its (existing) redemption row,
// which no redemption locks, then the code row, then the allowance row.
func Redeem(ctx context.Context, tx RedemptionTx, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if req.IdempotencyKey != "" {
		claimed, err := tx.ClaimKey(ctx, req.IdempotencyKey, req.RequestHash, req.Now)
		if err != nil {
			return promo.RedeemOutcome{}, fmt.Errorf("claim idempotency key: %w", err)
		}
		if !claimed {
			return replay(ctx, tx, req)
		}
	}
	out, err := redeem(ctx, tx, req)
	if err != nil {
		return out, err
	}
	if req.IdempotencyKey != "" {
		if err := tx.SaveOutcome(ctx, req.IdempotencyKey, string(out.Refused), out.Redemption.ID); err != nil {
			return promo.RedeemOutcome{}, fmt.Errorf("save idempotency record: %w", err)
		}
	}
	return out, nil
}

func redeem(ctx context.Context, tx RedemptionTx, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	u, left, refused, err := take(ctx, tx, req.Code, req.UserID, req.Now, "")
	if err != nil || refused != "" {
		return promo.RedeemOutcome{Refused: refused, PromotionID: u.PromotionID}, err
	}
	r := promo.Redemption{ID: req.ID, Code: req.Code, PromotionID: u.PromotionID, UserID: req.UserID,
		OrderID: req.OrderID, Metadata: req.Metadata, RedeemedAt: req.Now.UTC().Truncate(time.Microsecond),
		UsesLeft: left, IdempotencyKey: req.IdempotencyKey}
	if err := insertRedemption(ctx, tx, r, req.EventID, u.Used); err != nil {
		return promo.RedeemOutcome{}, err
	}
	return promo.RedeemOutcome{Redemption: r}, nil
}

// take adds one use of code for userID at now, within every limit: the
// conditional UseCode takes the code row's lock, then CodeLoad (a new
// statement, so under PostgreSQL's READ COMMITTED a new snapshot that sees
// every reservation committed by the lock's earlier holders) counts live
// reservations on top of the uses; the same two steps on the user's
// allowance row. Whatever does not fit is taken back in the transaction and
// named as the refusal. exclude is a reservation that is being confirmed:
// its own hold makes room for the use, so it is not counted.
//
// A subquery counting reservations inside UseCode's WHERE would not do: under
// READ COMMITTED PostgreSQL re-checks the WHERE of a row it waited for against
// the new row version, but a subquery keeps the statement's original
// snapshot, so two reservers could both fit into the last use.
func take(ctx context.Context, tx RedemptionTx, code, userID string, now time.Time, exclude string) (CodeUse, int, promo.Reason, error) {
	u, ok, err := tx.UseCode(ctx, code, now)
	if err != nil {
		return u, 0, "", fmt.Errorf("use code: %w", err)
	}
	if !ok {
		reason, pid, err := refusal(ctx, tx, code, now)
		u.PromotionID = pid
		return u, 0, reason, err
	}
	load, err := tx.CodeLoad(ctx, code, now, exclude)
	if err != nil {
		return u, 0, "", fmt.Errorf("count code holds: %w", err)
	}
	if load > u.MaxUsage {
		if err := tx.UnuseCode(ctx, code); err != nil {
			return u, 0, "", fmt.Errorf("take back code use: %w", err)
		}
		return u, 0, promo.ReasonCodeExhausted, nil
	}
	if u.PerUserLimit != promo.UnlimitedPerUser {
		ok, err := tx.UseAllowance(ctx, u.PromotionID, userID, u.PerUserLimit)
		if err != nil {
			return u, 0, "", fmt.Errorf("use allowance: %w", err)
		}
		if ok {
			userLoad, err := tx.AllowanceLoad(ctx, u.PromotionID, userID, now, exclude)
			if err != nil {
				return u, 0, "", fmt.Errorf("count user holds: %w", err)
			}
			if userLoad > u.PerUserLimit {
				if err := tx.ReleaseAllowance(ctx, u.PromotionID, userID); err != nil {
					return u, 0, "", fmt.Errorf("take back allowance use: %w", err)
				}
				ok = false
			}
		}
		if !ok {
			if err := tx.UnuseCode(ctx, code); err != nil {
				return u, 0, "", fmt.Errorf("take back code use: %w", err)
			}
			return u, 0, promo.ReasonUserLimitReached, nil
		}
	}
	return u, max(0, u.MaxUsage-load), "", nil
}

// refusal names why a conditional statement on code matched no row; it reads
// the state only to name the reason.
func refusal(ctx context.Context, tx RedemptionTx, code string, now time.Time) (promo.Reason, int64, error) {
	st, found, err := tx.CodeState(ctx, code, "", now)
	if err != nil {
		return "", 0, fmt.Errorf("read code state: %w", err)
	}
	if !found {
		return promo.ReasonCodeNotFound, 0, nil
	}
	reason := st.Status(now, false)
	if reason == promo.ReasonRedeemable {
		// Only a concurrent change can get here (an admin reactivated
		// the promotion in between): refuse rather than guess.
		reason = promo.ReasonCodeExhausted
	}
	return reason, st.Promotion.ID, nil
}

// insertRedemption writes the audit row and its redemption.created event;
// codeUses is the code's uses after this one (UseCode's count), which the
// totals rollup needs to count codes redeemed.
func insertRedemption(ctx context.Context, tx RedemptionTx, r promo.Redemption, eventID string, codeUses int) error {
	payload, err := promo.NewRedemptionEvent(promo.EventRedeemed, eventID, r.RedeemedAt, r, &codeUses)
	if err != nil {
		return fmt.Errorf("encode redemption event: %w", err)
	}
	ev := promo.OutboxEvent{Stream: promo.StreamRedemptions, Key: promo.FormatID(r.PromotionID), Payload: payload}
	if err := tx.InsertRedemption(ctx, r, ev); err != nil {
		return fmt.Errorf("insert redemption: %w", err)
	}
	return nil
}

// replay answers a redemption whose idempotency key is already recorded.
func replay(ctx context.Context, tx RedemptionTx, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	hash, refused, id, err := tx.StoredOutcome(ctx, req.IdempotencyKey)
	if err != nil {
		return promo.RedeemOutcome{}, fmt.Errorf("read idempotency record: %w", err)
	}
	if hash != req.RequestHash {
		return promo.RedeemOutcome{}, IdempotencyConflict()
	}
	if refused != "" {
		return promo.RedeemOutcome{Refused: promo.Reason(refused), Replayed: true}, nil
	}
	r, found, err := tx.Redemption(ctx, id)
	if err != nil {
		return promo.RedeemOutcome{}, fmt.Errorf("read redemption %s: %w", id, err)
	}
	if !found {
		// purge --with-redemptions deletes a redemption's idempotency record
		// with it; a record left from before that (or from a concurrent
		// purge) still answers clearly.
		return promo.RedeemOutcome{}, promo.Refusal(promo.ReasonRedemptionPurged,
			"the redemption this Idempotency-Key made (%s) was deleted by a purge", id)
	}
	return promo.RedeemOutcome{Redemption: r, Replayed: true}, nil
}

// Rollback gives a redemption's use back to its code and its user, once: the
// conditional MarkRolledBack lets exactly one transaction through. A second
// rollback answers the redemption as it is (replayed = true), releasing
// nothing. ENotFound for an unknown id.
//
// The use goes back to the exact code row the redemption took: the code
// string in the redemption's promotion. When that row is gone (the promotion
// was deleted or purged, and the string may since name another promotion's
// code), no code is changed and the answer says so (CodeGone).
func Rollback(ctx context.Context, tx RedemptionTx, req promo.RollbackRequest) (promo.Redemption, bool, error) {
	now := req.Now.UTC().Truncate(time.Microsecond)
	r, ok, err := tx.MarkRolledBack(ctx, req.RedemptionID, now, req.Reason)
	if err != nil {
		return promo.Redemption{}, false, fmt.Errorf("mark redemption rolled back: %w", err)
	}
	if !ok {
		r, found, err := tx.Redemption(ctx, req.RedemptionID)
		if err != nil {
			return promo.Redemption{}, false, fmt.Errorf("read redemption: %w", err)
		}
		if !found {
			return promo.Redemption{}, false, promo.Errorf(promo.ENotFound, "no redemption %q", req.RedemptionID)
		}
		return r, true, nil
	}
	used, found, err := tx.ReleaseCode(ctx, r.PromotionID, r.Code)
	if err != nil {
		return promo.Redemption{}, false, fmt.Errorf("release code use: %w", err)
	}
	var codeUses *int
	r.CodeRelease = promo.CodeGone
	if found {
		codeUses, r.CodeRelease = &used, promo.CodeReleased
	}
	if err := tx.RecordCodeRelease(ctx, r.ID, r.CodeRelease); err != nil {
		return promo.Redemption{}, false, fmt.Errorf("record code release: %w", err)
	}
	if err := tx.ReleaseAllowance(ctx, r.PromotionID, r.UserID); err != nil {
		return promo.Redemption{}, false, fmt.Errorf("release user allowance: %w", err)
	}
	payload, err := promo.NewRedemptionEvent(promo.EventRolledBack, req.EventID, now, r, codeUses)
	if err != nil {
		return promo.Redemption{}, false, fmt.Errorf("encode rollback event: %w", err)
	}
	ev := promo.OutboxEvent{Stream: promo.StreamRedemptions, Key: promo.FormatID(r.PromotionID), Payload: payload}
	if err := tx.InsertEvent(ctx, ev); err != nil {
		return promo.Redemption{}, false, fmt.Errorf("insert rollback event: %w", err)
	}
	return r, false, nil
}

// CheckRedeemRequest validates what the store relies on.
func CheckRedeemRequest(req promo.RedeemRequest) error {
	switch {
	case req.ID == "" || req.EventID == "":
		return promo.Errorf(promo.EInvalid, "redemption id and event id are required")
	case req.Code == "":
		return promo.FieldErrorf("code", "is required")
	case req.UserID == "":
		return promo.FieldErrorf("userId", "is required")
	case req.Now.IsZero():
		return promo.Errorf(promo.EInvalid, "redemption time is required")
	}
	return nil
}

// DefaultRedemptionPage is the page size when a filter's Limit is 0 or less;
// MaxRedemptionPage bounds it.
const (
	DefaultRedemptionPage = 100
	MaxRedemptionPage     = 1000
)

// PageLimit applies the page-size defaults.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultRedemptionPage
	case n > MaxRedemptionPage:
		return MaxRedemptionPage
	}
	return n
}

// DecodeFormat sets p.Format from its stored JSON ("" for none).
func DecodeFormat(p *promo.Promotion, stored string) error {
	if stored == "" {
		p.Format = nil
		return nil
	}
	p.Format = new(promo.Format)
	if err := json.Unmarshal([]byte(stored), p.Format); err != nil {
		return fmt.Errorf("decode format of promotion %d: %w", p.ID, err)
	}
	return nil
}

// TxFunc runs fn in one transaction of a store, bound to that store's
// statements, committing when fn returns nil and rolling back otherwise.
type TxFunc func(ctx context.Context, fn func(tx RedemptionTx) error) error

// errRolledBack ends a RunRolledBack transaction.
var errRolledBack = fmt.Errorf("rolled back on purpose")

// RunRolledBack runs fn on a store's statements in one transaction and then
// rolls it back whatever fn did: for tests that drive single statements
// (storetest's StatementStore).
func RunRolledBack(ctx context.Context, inTx TxFunc, fn func(tx RedemptionTx) error) error {
	err := inTx(ctx, func(tx RedemptionTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRolledBack
	})
	if errors.Is(err, errRolledBack) {
		return nil
	}
	return err
}

// RunRedeem is a store's Redeem: the request checked, then Redeem in one
// transaction.
func RunRedeem(ctx context.Context, inTx TxFunc, req promo.RedeemRequest) (promo.RedeemOutcome, error) {
	if err := CheckRedeemRequest(req); err != nil {
		return promo.RedeemOutcome{}, err
	}
	var out promo.RedeemOutcome
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		out, err = Redeem(ctx, tx, req)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("redeem %q for %q: %w", req.Code, req.UserID, err)
	}
	return out, err
}

// RunRollback is a store's Rollback: Rollback in one transaction; replayed
// is true when the redemption had been rolled back before.
func RunRollback(ctx context.Context, inTx TxFunc, req promo.RollbackRequest) (promo.Redemption, bool, error) {
	var (
		r        promo.Redemption
		replayed bool
	)
	err := inTx(ctx, func(tx RedemptionTx) error {
		var err error
		r, replayed, err = Rollback(ctx, tx, req)
		return err
	})
	if err != nil && promo.Code(err) == promo.EInternal {
		err = fmt.Errorf("roll back redemption %q: %w", req.RedemptionID, err)
	}
	return r, replayed, err
}

// ReadCodeState is a store's CodeState, with the reservations live now:
// ENotFound for an unknown code.
func ReadCodeState(ctx context.Context, q RedemptionTx, code, userID string) (promo.CodeState, error) {
	st, found, err := q.CodeState(ctx, code, userID, time.Now().UTC())
	if err != nil {
		return st, fmt.Errorf("read code state: %w", err)
	}
	if !found {
		return st, CodeNotFound()
	}
	return st, nil
}

// RedemptionSelection is the audit-trail query a filter needs; each store
// has one per selection, side by side.
type RedemptionSelection int

// The audit-trail selections.
const (
	ByPromotion     RedemptionSelection = iota // one promotion's
	ByPromotionUser                            // one promotion's, of one user
	ByPromotionCode                            // one promotion's, of one code
	ByUser                                     // one user's, in every promotion
)

// SelectRedemptions names the query for f, or refuses a filter no query
// serves: no promotion and no user, or a user and a code together.
func SelectRedemptions(f promo.RedemptionFilter) (RedemptionSelection, error) {
	switch {
	case f.UserID != "" && f.Code != "":
		return 0, promo.Errorf(promo.EInvalid, "the audit trail is filtered by a user or by a code, not both")
	case f.PromotionID == 0 && f.UserID == "":
		return 0, promo.Errorf(promo.EInvalid, "the audit trail is read for a promotion or for a user")
	case f.PromotionID == 0:
		return ByUser, nil
	case f.UserID != "":
		return ByPromotionUser, nil
	case f.Code != "":
		return ByPromotionCode, nil
	}
	return ByPromotion, nil
}

// RedemptionsOf names what f reads, for errors: "promotion 7" or "user u".
func RedemptionsOf(f promo.RedemptionFilter) string {
	if f.PromotionID == 0 {
		return fmt.Sprintf("user %q", f.UserID)
	}
	return fmt.Sprintf("promotion %d", f.PromotionID)
}

// CollectPage gathers one page of the audit trail from a store's row
// iterator (each(limit, fn) calls fn for each row, newest first).
func CollectPage(f promo.RedemptionFilter, each func(limit int, fn func(promo.Redemption) error) error) ([]promo.Redemption, error) {
	var out []promo.Redemption
	err := each(PageLimit(f.Limit), func(r promo.Redemption) error {
		out = append(out, r)
		return nil
	})
	return out, err
}
