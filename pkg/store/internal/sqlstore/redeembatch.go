package sqlstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// RedeemBatch redeems reqs, all for one code, in one write transaction (or
// one RedeemBatchOnce statement): the combined form of Redeem for a hot
// code, whose row lock is then taken once for the batch. Each request gets
// its own result, as Redeem would have answered it had the requests run one
// after another (a key that appears twice in reqs is answered, after the
// transaction, as Redeem answers a retry). Personal codes (shopper fields, a
// bound code, eligibility rules) go to Redeem one by one: see docs/store.md,
// "Combined redemptions of one code".
//
// Why it cannot over-redeem, across replicas too: the code row is locked by
// the conditional LockCode, uses plus live holds are counted under that lock
// (CodeLoad, a new statement), at most max minus that load is granted, each
// grant through the user's allowance under its lock (useAllowance), and the
// grants are taken by one conditional AddCodeUses that re-checks the
// maximum. Lock order: keys (in key order), the code row, allowance rows (in
// user order, so that two batches on codes of one promotion cannot deadlock).
func (s *Core[T]) RedeemBatch(ctx context.Context, reqs []promo.RedeemRequest) ([]promo.RedeemResult, error) {
	res := make([]promo.RedeemResult, len(reqs))
	var todo, again, single []int
	keys := map[string]bool{}
	for i, req := range reqs {
		err := req.Validate()
		switch {
		case err != nil:
			res[i].Err = err
		case req.Code != reqs[0].Code:
			return nil, promo.Errorf(promo.EInvalid, "a combined redemption is for one code: %q and %q", reqs[0].Code, req.Code)
		case req.Shopper != nil:
			single = append(single, i)
		case keys[req.IdempotencyKey]:
			again = append(again, i)
		default:
			keys[req.IdempotencyKey] = req.IdempotencyKey != ""
			todo = append(todo, i)
		}
	}
	var err error
	if len(todo) > 0 && s.d.RedeemBatchOnce != "" {
		err = s.redeemBatchOnce(ctx, reqs, todo, res)
	} else if len(todo) > 0 {
		_, err = run1(ctx, s, func(x stmts[T]) (any, error) { return nil, x.redeemBatch(ctx, reqs, todo, res) })
	}
	if errors.Is(err, errNotCombinable) {
		err, single = nil, append(todo, single...)
	}
	if err != nil {
		return nil, wrap(err, "redeem %q for %d requests", reqs[todo[0]].Code, len(todo))
	}
	slices.Sort(single)
	for _, i := range append(single, again...) {
		res[i].Outcome, res[i].Err = s.Redeem(ctx, reqs[i])
	}
	return res, nil
}

// errNotCombinable rolls back a combined redemption that found a code bound
// to a user or a promotion with eligibility rules: its requests are redeemed
// one by one (Redeem), which decides those.
var errNotCombinable = errors.New("not combinable: a personal code or eligibility rules")

// redeemBatch is RedeemBatch's transaction for the requests todo (indexes
// into reqs, in arrival order). It sets each one's whole result, so that a
// run again (a deadlock's victim) leaves none of the first run's.
func (x stmts[T]) redeemBatch(ctx context.Context, reqs []promo.RedeemRequest, todo []int, res []promo.RedeemResult) error {
	byKey := slices.Clone(todo)
	slices.SortStableFunc(byKey, func(a, b int) int { return cmp.Compare(reqs[a].IdempotencyKey, reqs[b].IdempotencyKey) })
	claimed := map[int]bool{}
	for _, i := range byKey {
		ok, err := x.claim(ctx, reqs[i].IdempotencyKey, reqs[i].RequestHash, reqs[i].Now, reqs[i].ID)
		if err == nil && !ok {
			err = x.replayInto(ctx, reqs[i], &res[i])
		}
		if err != nil {
			return err
		}
		claimed[i] = ok
	}
	live := slices.DeleteFunc(slices.Clone(todo), func(i int) bool { return !claimed[i] })
	if len(live) == 0 {
		return nil
	}
	code, now := reqs[live[0]].Code, reqs[live[0]].Now
	refuse := func(i int, reason promo.Reason, pid int64) error {
		res[i] = promo.RedeemResult{Outcome: promo.RedeemOutcome{Refused: reason, PromotionID: pid}}
		return x.saveOutcome(ctx, x.d.SaveOutcome, reqs[i].IdempotencyKey, reason, "")
	}
	// For no user: a code bound to anyone matches nothing.
	u, ok, err := x.codeUse(ctx, x.d.LockCode, code, "", now)
	if err != nil {
		return fmt.Errorf("lock code: %w", err)
	}
	if ok && u.Eligibility != nil {
		return errNotCombinable
	}
	if !ok {
		reason, st, err := x.refusal(ctx, code, "", now)
		if err != nil {
			return err
		}
		if st.Owner != "" {
			return errNotCombinable
		}
		for _, i := range live {
			if err := refuse(i, reason, st.Promotion.ID); err != nil {
				return err
			}
		}
		return nil
	}
	load, err := x.codeLoad(ctx, code, now, "")
	if err != nil {
		return fmt.Errorf("count code holds: %w", err)
	}
	byUser := slices.Clone(live)
	slices.SortStableFunc(byUser, func(a, b int) int { return cmp.Compare(reqs[a].UserID, reqs[b].UserID) })
	granted := map[int]bool{}
	for _, i := range byUser {
		ok, reason := load+len(granted) < u.MaxUsage, promo.ReasonCodeExhausted
		if ok {
			if ok, err = x.useAllowance(ctx, u, reqs[i].UserID, now, "", false); err != nil {
				return err
			}
			reason = promo.ReasonUserLimitReached
		}
		if ok {
			granted[i] = true
		} else if err := refuse(i, reason, u.PromotionID); err != nil {
			return err
		}
	}
	if len(granted) == 0 {
		return nil
	}
	if ok, err := x.one(ctx, x.d.AddCodeUses, x.d.VarChar(code), len(granted)); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("the code's uses changed under its lock")
		}
		return fmt.Errorf("add %d code uses: %w", len(granted), err)
	}
	k := 0
	for _, i := range live {
		if !granted[i] {
			continue
		}
		k++
		r := redemptionOf(reqs[i])
		r.PromotionID, r.UsesLeft = u.PromotionID, max(0, u.MaxUsage-load-k)
		if err := x.redeemed(ctx, r, reqs[i].EventID, u.Used+k); err != nil {
			return err
		}
		res[i] = promo.RedeemResult{Outcome: promo.RedeemOutcome{Redemption: r}}
	}
	return nil
}

// replayInto answers req, whose key is recorded, from its record into r.
// An internal error fails the combined redemption; a domain error
// (idempotency_conflict, a purged redemption) is req's alone.
func (x stmts[T]) replayInto(ctx context.Context, req promo.RedeemRequest, r *promo.RedeemResult) error {
	out, err := x.replay(ctx, req)
	if err != nil && promo.Code(err) == promo.EInternal {
		return err
	}
	*r = promo.RedeemResult{Outcome: out, Err: err}
	return nil
}

// redeemBatchOnce is RedeemBatch's transaction in one statement
// (RedeemBatchOnce); recorded keys are then answered from their records.
func (s *Core[T]) redeemBatchOnce(ctx context.Context, reqs []promo.RedeemRequest, todo []int, res []promo.RedeemResult) error {
	args, rs, err := requestArgs(len(todo), func(j int) promo.RedeemRequest { return reqs[todo[j]] })
	if err != nil {
		return err
	}
	// RedeemGroupOnce's arguments but the codes, after the code and the time.
	first := reqs[todo[0]]
	args = append([]any{first.Code, s.d.Time(first.Now), args[0]}, args[2:]...)
	var outcomes []string
	var out []promo.RedeemOutcome
	// A deadlock's victim wrote nothing and answered no row: run it again.
	err = s.retry(ctx, func() (err error) {
		outcomes, out, err = s.redeemInOne(ctx, s.d.RedeemBatchOnce, args, rs)
		return err
	})
	if err != nil && s.d.StatementPath(err) {
		return errNotCombinable
	} else if err != nil {
		return fmt.Errorf("redeem in one statement: %w", err)
	}
	for j, i := range todo {
		res[i].Outcome = out[j]
		if outcomes[j] != "replay" {
			continue
		}
		if err := s.on(s.w).replayInto(ctx, reqs[i], &res[i]); err != nil {
			return err
		}
	}
	return nil
}

// redeemInOne runs query, a function that redeems the requests of rs (their
// audit rows) in one statement (RedeemBatchOnce, RedeemGroupOnce), and
// returns each request's outcome and answer: its redemption, or a refusal
// of that reason. An error when it answered fewer than all.
func (s *Core[T]) redeemInOne(ctx context.Context, query string, args []any, rs []promo.Redemption) ([]string,
	[]promo.RedeemOutcome, error) {
	outcomes, outs, seen := make([]string, len(rs)), make([]promo.RedeemOutcome, len(rs)), 0
	err := each(ctx, s.w, query, args, func(row Row) error {
		var (
			j, left int
			outcome string
			pid     int64
		)
		if err := row.Scan(&j, &outcome, &pid, &left); err != nil {
			return err
		}
		if j < 1 || j > len(rs) || outcomes[j-1] != "" {
			return fmt.Errorf("answered for request %d of %d", j, len(rs))
		}
		seen++
		outcomes[j-1], outs[j-1] = outcome, promo.RedeemOutcome{Refused: promo.Reason(outcome), PromotionID: pid}
		if outcome == "redeemed" {
			outs[j-1] = promo.RedeemOutcome{Redemption: rs[j-1]}
			outs[j-1].Redemption.PromotionID, outs[j-1].Redemption.UsesLeft = pid, left
		}
		return nil
	})
	if err == nil && seen != len(rs) {
		err = fmt.Errorf("answered %d of %d requests", seen, len(rs))
	}
	return outcomes, outs, err
}

// requestArgs are RedeemGroupOnce's arguments for n requests, req(j) the
// j-th: one array per RedeemOnce argument. rs are the audit rows they would
// write (their events are built from them).
func requestArgs(n int, req func(j int) promo.RedeemRequest) (args []any, rs []promo.Redemption, err error) {
	col := func() []string { return make([]string, n) }
	ids, codes, users, keys, hashes, heads, bodies, addrs, agents := col(), col(), col(), col(), col(), col(), col(),
		col(), col()
	orders, metadata, at := make([]*string, n), make([]*string, n), make([]time.Time, n)
	rs = make([]promo.Redemption, n)
	for j := range n {
		r := req(j)
		rs[j] = redemptionOf(r)
		if heads[j], bodies[j], err = EventParts(r.EventID, rs[j]); err != nil {
			return nil, nil, err
		}
		ids[j], codes[j], users[j], keys[j], hashes[j] = r.ID, r.Code, r.UserID, r.IdempotencyKey, r.RequestHash
		addrs[j], agents[j], at[j] = r.ClientAddr, r.UserAgent, rs[j].RedeemedAt
		if r.OrderID != "" {
			orders[j] = &rs[j].OrderID
		}
		if len(r.Metadata) > 0 {
			m := string(r.Metadata)
			metadata[j] = &m
		}
	}
	return []any{ids, codes, users, orders, metadata, at, keys, hashes, promo.StreamRedemptions, heads, bodies, addrs,
		agents}, rs, nil
}
