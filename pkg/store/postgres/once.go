package postgres

import "github.com/promocodes/promocodes/pkg/store/internal/sqlstore"

// onceStatements are the reservation, its confirmation and a redemption's
// rollback in one round trip each: the functions of migration 00015, which
// says why none of them can over-redeem or over-reserve at READ COMMITTED.
var onceStatements = sqlstore.OnceStatements{
	ReserveOnce: `SELECT o_outcome, COALESCE(o_promotion_id, 0) FROM reserve_code($1, $2, $3, $4, $5, $6, $7)`,

	ConfirmOnce: `SELECT o_outcome, COALESCE(o_promotion_id, 0), COALESCE(o_code, ''), COALESCE(o_user, ''),
	COALESCE(o_uses_left, 0)
FROM confirm_reservation($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,

	RollbackOnce: `SELECT f.o_outcome, ` + sqlstore.RedemptionCols + `
FROM rollback_redemption($1, $2, $3, $4, $5, $6, $7) f CROSS JOIN LATERAL (SELECT (f.o_r).*) r`,
}
