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
// statement (one round trip, one transaction, one commit) instead of one
// each. Groups form as NewRedeemGroup's do (the first goes at once, alone;
// those arriving meanwhile form the next group, at most max), but up to
// flights groups are written at once, on as many connections.
//
// Each member is the dialect's RedeemOnce with its own arguments, run in
// code order after the members before it in the group's transaction: what a
// serial execution would have answered. When the statement fails (a
// deadlock between two groups, a serialization failure, a promotion with
// eligibility rules, a member's bad input), it has written nothing and the
// members are redeemed one by one (Core.Redeem), each answered with its own
// outcome or error. A member whose context has ended is answered with its
// context's end and not redeemed by that fallback.
func NewRedeemGroupOnce[T Tx](s *Core[T], max, flights int) *RedeemGroup[T] {
	g := &RedeemGroup[T]{core: s, max: max, flights: cmp.Or(flights, 1)}
	g.run = func(ctx context.Context, ms []*groupMember) []promo.RedeemResult {
		return s.redeemGroupOnce(ctx, ms, &g.fallbacks)
	}
	return g
}

// redeemGroupOnce redeems ms: a lone member with RedeemOnce, more in one
// RedeemGroupOnce statement, ordered by code (the code rows' lock order, so
// that two groups on overlapping codes queue rather than deadlock; members
// of one code keep their arrival order, so two with one idempotency key are
// answered as two calls in that order).
func (s *Core[T]) redeemGroupOnce(ctx context.Context, ms []*groupMember, fallbacks *atomic.Int64) []promo.RedeemResult {
	res := make([]promo.RedeemResult, len(ms))
	var todo []int
	for i, m := range ms {
		if err := m.ctx.Err(); err != nil {
			res[i].Err = wrap(err, "redeem %q for %q", m.req.Code, m.req.UserID)
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) == 1 {
		m := ms[todo[0]]
		res[todo[0]] = s.redeemAlone(ctx, m.req)
		return res
	}
	if len(todo) == 0 {
		return res
	}
	slices.SortStableFunc(todo, func(a, b int) int { return cmp.Compare(ms[a].req.Code, ms[b].req.Code) })
	if err := s.redeemGroupStatement(ctx, ms, todo, res); err != nil {
		// Nothing was written (the database answered with an error, which
		// rolled the statement's transaction back): each member on its own,
		// concurrently (each its own transaction, on the pool), with its own
		// context.
		fallbacks.Add(1)
		var wg sync.WaitGroup
		for _, i := range todo {
			m := ms[i]
			if err := m.ctx.Err(); err != nil {
				res[i] = promo.RedeemResult{Err: wrap(err, "redeem %q for %q", m.req.Code, m.req.UserID)}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = s.redeemAlone(m.ctx, m.req)
			}()
		}
		wg.Wait()
	}
	return res
}

// redeemAlone is Core.Redeem as a result.
func (s *Core[T]) redeemAlone(ctx context.Context, req promo.RedeemRequest) promo.RedeemResult {
	out, err := s.Redeem(ctx, req)
	return promo.RedeemResult{Outcome: out, Err: err}
}

// redeemGroupStatement runs RedeemGroupOnce for ms[todo...] (in that order)
// and fills their results; an error means the statement wrote nothing (the
// request was not sent, or the database answered it with an error) and no
// result was set.
func (s *Core[T]) redeemGroupStatement(ctx context.Context, ms []*groupMember, todo []int, res []promo.RedeemResult) error {
	n := len(todo)
	c, err := columnsOf(n, func(j int) promo.RedeemRequest { return ms[todo[j]].req })
	if err != nil {
		return err
	}
	rs := c.rs
	outs := make([]promo.RedeemResult, n)
	replay, alone := make([]bool, n), make([]bool, n)
	seen := 0
	err = each(ctx, s.w, s.d.RedeemGroupOnce, []any{c.ids, c.codes, c.users, c.orders, c.metadata, c.at, c.keys,
		c.hashes, promo.StreamRedemptions, c.heads, c.bodies, c.addrs, c.agents}, func(row Row) error {
		j, outcome, pid, left, err := scanMemberRow(row, n, "group redemption")
		if err != nil {
			return err
		}
		seen++
		switch outcome {
		case "replay":
			replay[j-1] = true
		case "rules":
			alone[j-1] = true
		case "redeemed":
			r := rs[j-1]
			r.PromotionID, r.UsesLeft = pid, left
			outs[j-1].Outcome = promo.RedeemOutcome{Redemption: r}
		default:
			outs[j-1].Outcome = promo.RedeemOutcome{Refused: promo.Reason(outcome), PromotionID: pid}
		}
		return nil
	})
	switch {
	case err != nil && s.d.ServerError(err):
		return err
	case err == nil && seen != n:
		err = fmt.Errorf("group redemption answered %d of %d members", seen, n)
		fallthrough
	case err != nil:
		// The statement may have committed (a connection lost after it was
		// sent): redeeming again could use a code twice for one request, so
		// every member is answered with the error, as a lone redemption is.
		err = fmt.Errorf("redeem a group of %d in one statement: %w", n, err)
		for _, i := range todo {
			res[i].Err = wrap(err, "redeem %q for %q", ms[i].req.Code, ms[i].req.UserID)
		}
		return nil
	}
	var wg sync.WaitGroup
	for j, i := range todo {
		switch {
		case replay[j]:
			out, err := s.on(s.w).replay(ms[i].ctx, ms[i].req)
			outs[j] = promo.RedeemResult{Outcome: out, Err: wrap(err, "redeem %q for %q", ms[i].req.Code, ms[i].req.UserID)}
		case alone[j]:
			// Its promotion has eligibility rules: redeemed alone, on the
			// statement path, after the group (as if it came next).
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = s.redeemAlone(ms[i].ctx, ms[i].req)
			}()
			continue
		}
		res[i] = outs[j]
	}
	wg.Wait()
	return nil
}
