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

// RedeemBatch redeems reqs, all for one code, in one write transaction: the
// combined form of Redeem for a hot code, whose row lock would otherwise be
// taken (and held through a commit) once per request. Each request gets its
// own result, exactly as Redeem would have answered it had the requests run
// one after another: its own redemption or refusal reason, its own
// idempotency outcome (a recorded key is replayed; a key that appears twice
// in reqs is answered, after the transaction, as Redeem answers a retry).
//
// Why it cannot over-redeem, on any database and across replicas: the
// transaction locks the code row with LockCode (a conditional statement, so
// the code's state is checked on the latest committed row once the lock is
// granted), then counts uses plus live holds under that lock (CodeLoad, a new
// statement); no other redeemer, reserver or confirmer of this code can add a
// use until it commits. It grants at most max minus that load, each grant
// also passing the user's allowance (UseAllowance, conditional, then the
// user's live holds under its lock, in this same transaction, so two
// requests of one user in one batch are counted one after the other), and
// takes the granted uses with one conditional statement (AddCodeUses) that
// re-checks the maximum. Locks are taken in the order every redemption takes
// them: idempotency keys (in key order), the code row, allowance rows (in
// user order, so two batches on different codes of one promotion cannot
// deadlock on two users' rows).
//
// Personal codes are never decided here: a request with shopper fields, a
// code bound to a user, and a promotion with eligibility rules go to Redeem,
// one request after another, so that not_your_code, not_eligible (with its
// rule) and the shopper's audit fields are exactly Redeem's. The last two are
// found under the code row's lock (the lock statement is run for no user, so
// a bound code matches nothing; the eligibility is what it read), and the
// combined transaction is then rolled back, having decided nothing.
func (s *Core[T]) RedeemBatch(ctx context.Context, reqs []promo.RedeemRequest) ([]promo.RedeemResult, error) {
	res := make([]promo.RedeemResult, len(reqs))
	var todo, again, single []int
	keys := map[string]bool{}
	for i, req := range reqs {
		if err := checkRedeemRequest(req); err != nil {
			res[i].Err = err
			continue
		}
		if req.Code != reqs[0].Code {
			return nil, promo.Errorf(promo.EInvalid, "a combined redemption is for one code: %q and %q", reqs[0].Code, req.Code)
		}
		if req.Shopper != nil {
			// Eligibility to check and shopper fields to record: Redeem's
			// statement path.
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
	for _, i := range single {
		res[i].Outcome, res[i].Err = s.Redeem(ctx, reqs[i])
	}
	for _, i := range again {
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
		req := reqs[i]
		ok, err := x.claim(ctx, req.IdempotencyKey, req.RequestHash, req.Now)
		if err != nil {
			return err
		}
		if ok {
			claimed[i] = true
			continue
		}
		out, err := x.replay(ctx, req)
		if err != nil && promo.Code(err) == promo.EInternal {
			return err
		}
		res[i] = promo.RedeemResult{Outcome: out, Err: err}
	}
	var live []int
	for _, i := range todo {
		if claimed[i] {
			live = append(live, i)
		}
	}
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
		if err != nil {
			return err
		}
		for _, i := range live {
			if err := refuse(i, reason, pid); err != nil {
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
		req := reqs[i]
		if load+len(granted) >= u.MaxUsage {
			if err := refuse(i, promo.ReasonCodeExhausted, u.PromotionID); err != nil {
				return err
			}
			continue
		}
		if u.PerUserLimit != promo.UnlimitedPerUser {
			ok, err := x.UseAllowance(ctx, u.PromotionID, req.UserID, u.PerUserLimit)
			if err != nil {
				return fmt.Errorf("use allowance: %w", err)
			}
			if ok {
				userLoad, err := x.allowanceLoad(ctx, u.PromotionID, req.UserID, now, "")
				if err != nil {
					return fmt.Errorf("count user holds: %w", err)
				}
				if ok = userLoad <= u.PerUserLimit; !ok {
					if err := x.ReleaseAllowance(ctx, u.PromotionID, req.UserID); err != nil {
						return fmt.Errorf("take back allowance use: %w", err)
					}
				}
			}
			if !ok {
				if err := refuse(i, promo.ReasonUserLimitReached, u.PromotionID); err != nil {
					return err
				}
				continue
			}
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
		req := reqs[i]
		k++
		r := promo.Redemption{ID: req.ID, Code: code, PromotionID: u.PromotionID, UserID: req.UserID,
			OrderID: req.OrderID, Metadata: req.Metadata, RedeemedAt: req.Now.UTC().Truncate(time.Microsecond),
			UsesLeft: max(0, u.MaxUsage-load-k), IdempotencyKey: req.IdempotencyKey,
			ClientAddr: req.ClientAddr, UserAgent: req.UserAgent}
		if err := x.redeemed(ctx, r, req.EventID, u.Used+k); err != nil {
			return err
		}
		res[i].Outcome = promo.RedeemOutcome{Redemption: r}
		if err := x.saveOutcome(ctx, x.d.SaveOutcome, req.IdempotencyKey, "", r.ID); err != nil {
			return err
		}
	}
	return nil
}

// redeemBatchOnce is RedeemBatch's transaction in one statement
// (RedeemBatchOnce); recorded keys are then answered from their records.
func (s *Core[T]) redeemBatchOnce(ctx context.Context, reqs []promo.RedeemRequest, todo []int, res []promo.RedeemResult) error {
	n := len(todo)
	c, err := columnsOf(len(todo), func(j int) promo.RedeemRequest { return reqs[todo[j]] })
	if err != nil {
		return err
	}
	rs := c.rs
	first := reqs[todo[0]]
	var replays []int
	// A deadlock's victim wrote nothing and answered no row: run it again.
	err = s.retry(ctx, func() error {
		replays = replays[:0]
		return s.redeemBatchRows(ctx, n, todo, res, rs, &replays, []any{first.Code, s.d.Time(first.Now), c.ids,
			c.users, c.orders, c.metadata, c.at, c.keys, c.hashes, promo.StreamRedemptions, c.heads, c.bodies,
			c.addrs, c.agents})
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

// redeemBatchRows runs RedeemBatchOnce with args and fills the results of
// the requests todo from its rows (replays: those to answer from their
// records).
func (s *Core[T]) redeemBatchRows(ctx context.Context, n int, todo []int,
	res []promo.RedeemResult, rs []promo.Redemption, replays *[]int, args []any) error {
	return each(ctx, s.w, s.d.RedeemBatchOnce, args, func(row Row) error {
		j, outcome, pid, left, err := scanMemberRow(row, n, "combined redemption")
		if err != nil {
			return err
		}
		i := todo[j-1]
		switch outcome {
		case "replay":
			*replays = append(*replays, i)
		case "redeemed":
			r := rs[j-1]
			r.PromotionID, r.UsesLeft = pid, left
			res[i].Outcome = promo.RedeemOutcome{Redemption: r}
		default:
			res[i].Outcome = promo.RedeemOutcome{Refused: promo.Reason(outcome), PromotionID: pid}
		}
		return nil
	})
}

// scanMemberRow reads one row of a function that redeems several requests
// in one statement (RedeemBatchOnce, RedeemGroupOnce): the request's index
// (1..n), its outcome, its code's promotion and the uses left.
func scanMemberRow(row Row, n int, what string) (j int, outcome string, pid int64, left int, err error) {
	if err = row.Scan(&j, &outcome, &pid, &left); err != nil {
		return 0, "", 0, 0, err
	}
	if j < 1 || j > n {
		return 0, "", 0, 0, fmt.Errorf("%s answered for request %d of %d", what, j, n)
	}
	return j, outcome, pid, left, nil
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
		c.rs[j] = promo.Redemption{ID: r.ID, Code: r.Code, UserID: r.UserID, OrderID: r.OrderID,
			Metadata: r.Metadata, RedeemedAt: r.Now.UTC().Truncate(time.Microsecond), IdempotencyKey: r.IdempotencyKey,
			ClientAddr: r.ClientAddr, UserAgent: r.UserAgent}
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
