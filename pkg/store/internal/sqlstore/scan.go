package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/promocodes/promocodes/pkg/promo"
)

// TimeLayout is how SQLite stores times: UTC, fixed width, so that text
// order is time order.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// FormatTime is SQLite's time argument: t in UTC in TimeLayout, written
// digit by digit (time.Format parses its layout at every call, and a
// redemption formats five times on SQLite's one writer); a year outside
// 0-9999 through time.Format.
func FormatTime(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(TimeLayout)
	}
	hour, minute, sec := t.Clock()
	var buf [len(TimeLayout)]byte
	b := digits(buf[:0], year, 4, '-')
	b = digits(b, int(month), 2, '-')
	b = digits(b, day, 2, 'T')
	b = digits(b, hour, 2, ':')
	b = digits(b, minute, 2, ':')
	b = digits(b, sec, 2, '.')
	return string(digits(b, t.Nanosecond()/1000, 6, 'Z'))
}

// digits appends v's last width digits, zero-padded, then sep.
func digits(b []byte, v, width int, sep byte) []byte {
	n := len(b)
	b = append(b, "000000"[:width]...)
	for i := n + width - 1; i >= n; i-- {
		b[i] += byte(v % 10)
		v /= 10
	}
	return append(b, sep)
}

// UTC is the time argument of PostgreSQL and SQL Server: the time in UTC (SQL
// Server's driver sends datetimeoffset, which the server converts to
// datetime2 by dropping the offset, so it must be UTC already).
func UTC(t time.Time) any { return t.UTC() }

// Time scans a time column into *dst, in UTC: a time.Time (PostgreSQL, SQL
// Server) or ISO 8601 text (SQLite).
func Time(dst *time.Time) sql.Scanner { return timeDest{dst} }

// NullTime scans a nullable time column: NULL leaves *dst nil.
func NullTime(dst **time.Time) sql.Scanner { return nullTimeDest{dst} }

type timeDest struct{ dst *time.Time }

func (d timeDest) Scan(v any) error {
	var err error
	switch x := v.(type) {
	case time.Time:
		*d.dst = x
	case string:
		*d.dst, err = time.Parse(time.RFC3339Nano, x)
	case []byte:
		return d.Scan(string(x))
	default:
		return fmt.Errorf("cannot scan %T into a time", v)
	}
	*d.dst = d.dst.UTC()
	return err
}

type nullTimeDest struct{ dst **time.Time }

func (d nullTimeDest) Scan(v any) error {
	if v == nil {
		*d.dst = nil
		return nil
	}
	*d.dst = new(time.Time)
	return timeDest{*d.dst}.Scan(v)
}

// scanPromotion scans promotionCols (see Statements) into p, then extra.
func scanPromotion(row Row, p *promo.Promotion, extra ...any) error {
	var format, vanity, eligibility sql.NullString
	dest := append([]any{&p.ID, &p.Name, (*string)(&p.Kind), &p.CodeCount, &format, &vanity, &p.MaxUsagePerCode,
		&p.PerUserLimit, NullTime(&p.StartsAt), NullTime(&p.ExpiresAt), &p.CounterName, &p.SeqStart,
		Time(&p.CreatedAt), &eligibility}, extra...)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	p.VanityCode = vanity.String
	e, err := promo.DecodeEligibility(eligibility.String)
	if err != nil {
		return fmt.Errorf("promotion %d: %w", p.ID, err)
	}
	p.Eligibility = e
	return decodeFormat(p, format.String)
}

// decodeFormat sets p.Format from its stored JSON ("" for none).
func decodeFormat(p *promo.Promotion, stored string) error {
	if stored == "" {
		return nil
	}
	p.Format = new(promo.Format)
	return wrap(json.Unmarshal([]byte(stored), p.Format), "decode format of promotion %d", p.ID)
}

// scanRedemption scans redemptionCols (see Statements), after first (the
// columns before them, if any).
func scanRedemption(row Row, first ...any) (promo.Redemption, error) {
	var (
		r                  promo.Redemption
		metadata           sql.NullString
		amount, discount   sql.NullInt64
		currency, segments string
	)
	// first_order scans as **bool: NULL leaves it nil.
	err := row.Scan(append(first, &r.ID, &r.PromotionID, &r.Code, &r.UserID, &r.OrderID, &metadata, Time(&r.RedeemedAt),
		&r.UsesLeft, NullTime(&r.RolledBackAt), &r.RollbackReason, &r.IdempotencyKey, (*string)(&r.CodeRelease),
		&r.ClientAddr, &r.UserAgent, &amount, &currency, &discount, &r.FirstOrder, &segments, &r.Country)...)
	r.IdempotencyKey = promo.ClientKey(r.IdempotencyKey)
	if segments != "" {
		r.Segments = strings.Split(segments, "\n")
	}
	if currency != "" {
		r.Order = &promo.Order{Amount: promo.Amount(amount.Int64), Currency: currency}
		if discount.Valid {
			d := promo.Amount(discount.Int64)
			r.Order.Discount = &d
		}
	}
	if metadata.Valid {
		r.Metadata = []byte(metadata.String)
	}
	return r, err
}

// scanReservation scans reservationCols.
func scanReservation(row Row) (promo.Reservation, error) {
	var r promo.Reservation
	err := row.Scan(&r.ID, &r.PromotionID, &r.Code, &r.UserID, (*string)(&r.Status), Time(&r.CreatedAt), Time(&r.ExpiresAt),
		NullTime(&r.SettledAt), &r.RedemptionID, &r.OrderID)
	return r, err
}

// scanTopUp scans topUpCols, then extra.
func scanTopUp(row Row, extra ...any) (promo.TopUp, error) {
	var t promo.TopUp
	err := row.Scan(append([]any{&t.No, &t.CodeCount, &t.SeqStart, &t.FirstBatchNo, &t.BatchCount, Time(&t.CreatedAt)}, extra...)...)
	return t, err
}

// statusTail is where the status columns after the progress scan to: the
// switch, the deletion, the totals.
func statusTail(st *promo.PromotionStatus) []any {
	return []any{&st.Active, NullTime(&st.Deletion.RequestedAt), NullTime(&st.Deletion.DeletedAt),
		&st.Totals.Redemptions, &st.Totals.CodesRedeemed, &st.Totals.RolledBack}
}

// progress is where the Progress columns scan to.
func progress(st *promo.PromotionStatus) []any {
	b := &st.Batches
	return []any{&b.Total, &st.GeneratedCount, &b.Completed, &b.Retrying, &b.Parked, &b.Cancelled}
}

// scanBatch scans batchCols.
func scanBatch(row Row, b *promo.Batch) error {
	return row.Scan(&b.PromotionID, &b.BatchNo, &b.SeqStart, &b.CodeCount, &b.Done, (*string)(&b.State), &b.LastError)
}
