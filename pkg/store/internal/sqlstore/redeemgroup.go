package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/promocodes/promocodes/pkg/promo"
)

// NewRedeemGroupOnce returns group commit on s for a database with many
// writers (PostgreSQL), through the dialect's RedeemGroupOnce: the
// redemptions concurrent in this process, of any codes, are sent as one
// statement (one round trip, one transaction, one commit). Groups form as
// NewRedeemGroup's do, but up to flights groups are written at once, on as
// many connections.
//
// Each member is the dialect's RedeemOnce with its own arguments, run in
// code order after the members before it: what a serial execution would
// have answered. When the statement fails it has written nothing, and the
// members are redeemed one by one (Core.Redeem). docs/store.md, "Group
// commit on PostgreSQL", says why it cannot over-redeem or deadlock.
func NewRedeemGroupOnce[T Tx](s *Core[T], max, flights int) *RedeemGroup[T] {
	g := &RedeemGroup[T]{max: max, flights: cmp.Or(flights, 1), once: true}
	g.run = func(ctx context.Context, ms []*groupMember) ([]promo.RedeemResult, waitFunc) {
		return s.redeemGroupOnce(ctx, ms, &g.fallbacks), nil
	}
	return g
}

// redeemGroupOnce redeems ms: more than one in one RedeemGroupOnce
// statement, ordered by code (the code rows' lock order, so that two groups
// on overlapping codes queue rather than deadlock; members of one code keep
// their arrival order, so two with one idempotency key are answered as two
// calls in that order), a lone one with Core.Redeem. A member whose context
// has ended is answered with its end and not redeemed.
func (s *Core[T]) redeemGroupOnce(ctx context.Context, ms []*groupMember, fallbacks *atomic.Int64) []promo.RedeemResult {
	res := make([]promo.RedeemResult, len(ms))
	var todo []int
	for i, m := range ms {
		if err := m.ctx.Err(); err != nil {
			res[i].Err = redeemErr(err, m.req)
		} else {
			todo = append(todo, i)
		}
	}
	if len(todo) > 1 {
		slices.SortStableFunc(todo, func(a, b int) int { return cmp.Compare(ms[a].req.Code, ms[b].req.Code) })
		if s.redeemGroupStatement(ctx, ms, todo, res) == nil {
			return res
		}
		// Nothing was written (the database answered with an error): each
		// member on its own, with its own context.
		fallbacks.Add(1)
	}
	s.redeemAlone(ms, todo, res)
	return res
}

// redeemAlone redeems ms[todo...] each with Core.Redeem and its own
// context, concurrently (each its own transaction, on the pool; the last
// on this goroutine, so that a lone member starts none); a member whose
// context has ended is answered with its end.
func (s *Core[T]) redeemAlone(ms []*groupMember, todo []int, res []promo.RedeemResult) {
	var wg sync.WaitGroup
	for k, i := range todo {
		if err := ms[i].ctx.Err(); err != nil {
			res[i] = promo.RedeemResult{Err: redeemErr(err, ms[i].req)}
			continue
		}
		redeem := func() {
			out, err := s.Redeem(ms[i].ctx, ms[i].req)
			res[i] = promo.RedeemResult{Outcome: out, Err: err}
		}
		if k == len(todo)-1 {
			redeem()
		} else {
			wg.Go(redeem)
		}
	}
	wg.Wait()
}

// redeemGroupStatement runs RedeemGroupOnce for ms[todo...] (in that order)
// and fills their results; an error means the statement wrote nothing (the
// request was not sent, or the database answered it with an error) and the
// results are the caller's to set.
func (s *Core[T]) redeemGroupStatement(ctx context.Context, ms []*groupMember, todo []int, res []promo.RedeemResult) error {
	args, rs, err := requestArgs(len(todo), func(j int) promo.RedeemRequest { return ms[todo[j]].req })
	if err != nil {
		return err
	}
	outcomes, outs, err := s.redeemInOne(ctx, s.d.RedeemGroupOnce, args, rs)
	if err != nil && s.d.ServerError(err) {
		return err
	} else if err != nil {
		// The statement may have committed (a connection lost after it was
		// sent): redeeming again could use a code twice for one request, so
		// every member is answered with the error, as a lone redemption is.
		err = fmt.Errorf("redeem a group of %d in one statement: %w", len(todo), err)
		for _, i := range todo {
			res[i] = promo.RedeemResult{Err: redeemErr(err, ms[i].req)}
		}
		return nil
	}
	var rules []int
	for j, i := range todo {
		res[i].Outcome = outs[j]
		switch outcomes[j] {
		case "replay":
			out, err := s.on(s.w).replay(ms[i].ctx, ms[i].req)
			res[i] = promo.RedeemResult{Outcome: out, Err: redeemErr(err, ms[i].req)}
		case "rules":
			// Its promotion has eligibility rules: redeemed alone, on the
			// statement path, after the group (as if it came next).
			rules = append(rules, i)
		}
	}
	s.redeemAlone(ms, rules, res)
	return nil
}
