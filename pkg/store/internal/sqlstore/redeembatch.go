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
		if err := req.Validate(); err != nil {
			res[i].Err = err
			continue
		}
		if req.Code != reqs[0].Code {
			return nil, promo.Errorf(promo.EInvalid, "a combined redemption is for one code: %q and %q", reqs[0].Code, req.Code)
		}
		if req.Shopper != nil {
			single = append(single, i)
			continue
		}
		if k := req.IdempotencyKey; k != "" {
			if keys[k] {
				again = append(again, i)
				continue
			}
			keys[k] = true
		}
		todo = append(todo, i)
	}
	var err error
	if len(todo) > 0 && s.d.RedeemBatchOnce != "" {
		err = s.redeemBatchOnce(ctx, reqs, todo, res)
	} else if len(todo) > 0 {
		err = s.retry(ctx, func() error {
			return s.inTx(ctx, func(tx T) error {
				for _, i := range todo {
					res[i] = promo.RedeemResult{}
				}
				return s.on(tx).redeemBatch(ctx, reqs, todo, res)
			})
		})
	}
	if errors.Is(err, errNotCombinable) {
		err = nil
		for _, i := range todo {
			res[i] = promo.RedeemResult{}
		}
		single = append(todo, single...)
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
// into reqs, in arrival order).
func (x stmts[T]) redeemBatch(ctx context.Context, reqs []promo.RedeemRequest, todo []int, res []promo.RedeemResult) error {
	byKey := slices.Clone(todo)
	slices.SortStableFunc(byKey, func(a, b int) int { return cmp.Compare(reqs[a].IdempotencyKey, reqs[b].IdempotencyKey) })
	claimed := map[int]bool{}
	for _, i := range byKey {
		ok, err := x.claim(ctx, reqs[i].IdempotencyKey, reqs[i].RequestHash, reqs[i].Now, reqs[i].ID)
		if err != nil {
			return err
		}
		if ok {
			claimed[i] = true
			continue
		}
		out, err := x.replay(ctx, reqs[i])
		if err != nil && promo.Code(err) == promo.EInternal {
			return err
		}
		res[i] = promo.RedeemResult{Outcome: out, Err: err}
	}
	live := slices.DeleteFunc(slices.Clone(todo), func(i int) bool { return !claimed[i] })
	if len(live) == 0 {
		return nil
	}
	code, now := reqs[live[0]].Code, reqs[live[0]].Now
	refuse := func(i int, reason promo.Reason, pid int64) error {
		res[i].Outcome = promo.RedeemOutcome{Refused: reason, PromotionID: pid}
		return x.saveOutcome(ctx, x.d.SaveOutcome, reqs[i].IdempotencyKey, reason, "")
	}
	// For no user: a code bound to anyone matches nothing.
	u, ok, err := x.lockCode(ctx, code, "", now)
	if err != nil {
		return fmt.Errorf("lock code: %w", err)
	}
	if ok && u.Eligibility != nil {
		return errNotCombinable
	}
	if !ok {
		st, found, err := x.CodeState(ctx, code, "", now)
		if err != nil {
			return fmt.Errorf("read code state: %w", err)
		}
		if found && st.Owner != "" {
			return errNotCombinable
		}
		reason, pid, err := x.refusal(ctx, code, "", now)
		for _, i := range live {
			if err == nil {
				err = refuse(i, reason, pid)
			}
		}
		return err
	}
	load, err := x.codeLoad(ctx, code, now, "")
	if err != nil {
		return fmt.Errorf("count code holds: %w", err)
	}
	byUser := slices.Clone(live)
	slices.SortStableFunc(byUser, func(a, b int) int { return cmp.Compare(reqs[a].UserID, reqs[b].UserID) })
	granted := map[int]bool{}
	for _, i := range byUser {
		reason := promo.ReasonCodeExhausted
		ok := load+len(granted) < u.MaxUsage
		if ok {
			reason = promo.ReasonUserLimitReached
			if ok, err = x.useAllowance(ctx, u, reqs[i].UserID, now, "", false); err != nil {
				return err
			}
		}
		if !ok {
			if err := refuse(i, reason, u.PromotionID); err != nil {
				return err
			}
			continue
		}
		granted[i] = true
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
		res[i].Outcome = promo.RedeemOutcome{Redemption: r}
	}
	return nil
}

// redeemBatchOnce is RedeemBatch's transaction in one statement
// (RedeemBatchOnce); recorded keys are then answered from their records.
func (s *Core[T]) redeemBatchOnce(ctx context.Context, reqs []promo.RedeemRequest, todo []int, res []promo.RedeemResult) error {
	c, err := columnsOf(len(todo), func(j int) promo.RedeemRequest { return reqs[todo[j]] })
	if err != nil {
		return err
	}
	first := reqs[todo[0]]
	args := []any{first.Code, s.d.Time(first.Now), c.ids, c.users, c.orders, c.metadata, c.at, c.keys, c.hashes,
		promo.StreamRedemptions, c.heads, c.bodies, c.addrs, c.agents}
	var replays []int
	// A deadlock's victim wrote nothing and answered no row: run it again.
	err = s.retry(ctx, func() error {
		replays = replays[:0]
		return s.eachMember(ctx, s.d.RedeemBatchOnce, args, c.rs, func(j int, outcome string, out promo.RedeemOutcome) {
			if outcome == "replay" {
				replays = append(replays, todo[j])
			} else {
				res[todo[j]].Outcome = out
			}
		})
	})
	if err != nil && s.d.StatementPath(err) {
		return errNotCombinable
	}
	if err != nil {
		return fmt.Errorf("redeem in one statement: %w", err)
	}
	for _, i := range replays {
		out, err := s.on(s.w).replay(ctx, reqs[i])
		if err != nil && promo.Code(err) == promo.EInternal {
			return err
		}
		res[i] = promo.RedeemResult{Outcome: out, Err: err}
	}
	return nil
}

// eachMember runs query, a function that redeems the requests of rs in one
// statement (RedeemBatchOnce, RedeemGroupOnce), and calls fn with each of
// its rows: the request's index in rs, its outcome, and its answer (its
// redemption, or a refusal of that reason).
func (s *Core[T]) eachMember(ctx context.Context, query string, args []any, rs []promo.Redemption,
	fn func(j int, outcome string, out promo.RedeemOutcome)) error {
	return each(ctx, s.w, query, args, func(row Row) error {
		var (
			j, left int
			outcome string
			pid     int64
		)
		if err := row.Scan(&j, &outcome, &pid, &left); err != nil {
			return err
		}
		if j < 1 || j > len(rs) {
			return fmt.Errorf("answered for request %d of %d", j, len(rs))
		}
		out := promo.RedeemOutcome{Refused: promo.Reason(outcome), PromotionID: pid}
		if outcome == "redeemed" {
			out = promo.RedeemOutcome{Redemption: rs[j-1]}
			out.Redemption.PromotionID, out.Redemption.UsesLeft = pid, left
		}
		fn(j-1, outcome, out)
		return nil
	})
}

// requestColumns are redemption requests as the array arguments of a
// function that redeems them in one statement (RedeemBatchOnce,
// RedeemGroupOnce), index j for the j-th request, and the audit rows they
// would write (rs: their event is built from it).
type requestColumns struct {
	ids, codes, users, keys, hashes, heads, bodies, addrs, agents []string
	orders, metadata                                              []*string
	at                                                            []time.Time
	rs                                                            []promo.Redemption
}

// columnsOf builds the columns of n requests, req(j) the j-th.
func columnsOf(n int, req func(j int) promo.RedeemRequest) (requestColumns, error) {
	strs := func() []string { return make([]string, n) }
	c := requestColumns{ids: strs(), codes: strs(), users: strs(), keys: strs(), hashes: strs(), heads: strs(),
		bodies: strs(), addrs: strs(), agents: strs(), orders: make([]*string, n), metadata: make([]*string, n),
		at: make([]time.Time, n), rs: make([]promo.Redemption, n)}
	for j := range n {
		r := req(j)
		c.rs[j] = redemptionOf(r)
		head, body, err := EventParts(r.EventID, c.rs[j])
		if err != nil {
			return c, err
		}
		c.ids[j], c.codes[j], c.users[j], c.keys[j], c.hashes[j] = r.ID, r.Code, r.UserID, r.IdempotencyKey, r.RequestHash
		c.heads[j], c.bodies[j], c.addrs[j], c.agents[j] = head, body, r.ClientAddr, r.UserAgent
		if r.OrderID != "" {
			c.orders[j] = &c.rs[j].OrderID
		}
		if len(r.Metadata) > 0 {
			m := string(r.Metadata)
			c.metadata[j] = &m
		}
		c.at[j] = c.rs[j].RedeemedAt
	}
	return c, nil
}
