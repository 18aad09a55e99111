package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/promocodes/promocodes/pkg/client"
	"github.com/promocodes/promocodes/pkg/promo"
	"github.com/promocodes/promocodes/pkg/wire"
)

// recorder keeps the body of the last answer the client read.
type recorder struct {
	rt   http.RoundTripper
	last []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.last = b
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, err
}

// The typed client decodes every answer the API encodes without losing a
// field: each body, decoded strictly (no unknown field) into the type the
// client decodes it into and encoded again, is the body the API sent (only
// check's type of v counts, not its value). A field the
// API adds and the client does not know, a name or an omitempty that
// differs, fails here.
func TestClientDecodesWhatTheAPIEncodes(t *testing.T) {
	const admin = "admin-token-0123456789"
	e := newEnv(t, envConfig{AdminTokens: []string{admin}}, nil)
	e.token = admin
	rec := &recorder{rt: http.DefaultTransport}
	c, err := client.New(e.srv.URL, admin, client.WithHTTPClient(&http.Client{Transport: rec}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(name string, v any, err error) {
		t.Helper()
		var p *client.ProblemError
		if v == nil && errors.As(err, &p) { // a refusal is what the step asks for
			v, err = p, nil
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %s", name, bytes.TrimSpace(rec.last))
		typ := reflect.TypeOf(v)
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		strict := reflect.New(typ)
		dec := json.NewDecoder(bytes.NewReader(rec.last))
		dec.DisallowUnknownFields()
		if err := dec.Decode(strict.Interface()); err != nil {
			t.Errorf("%s: the client's %s does not take the API's answer: %v\n%s", name, typ, err, rec.last)
			return
		}
		again, err := json.Marshal(strict.Interface())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var sent, kept any
		if err := json.Unmarshal(rec.last, &sent); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := json.Unmarshal(again, &kept); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(sent, kept) {
			t.Errorf("%s: the client's %s loses or changes fields\n sent %s\n kept %s", name, typ, rec.last, again)
		}
	}

	expires := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	v, err := c.CreatePromotion(ctx, client.CreateRequest{Name: "drift", Code: "DRIFT2026", MaxUsagePerCode: new(3),
		PerUserLimit: new(0), ExpiresAt: &expires}, "drift-key")
	check("create vanity", v, err)
	id := v.ID
	st, err := c.GetPromotion(ctx, id)
	check("get", st, err)
	_, err = c.ListPromotions(ctx, client.ListQuery{Limit: 1})
	check("list", wire.PromotionPage{}, err) // what the client decodes (its page is the items as Status)
	settings, err := c.UpdatePromotion(ctx, id, client.PromotionUpdate{Name: new("drift 2"), SetEligibility: true,
		Eligibility: &promo.Eligibility{Segments: []string{"vip"}, Countries: []string{"DE"}}})
	check("patch", settings, err)
	cv, err := c.LookupCode(ctx, "DRIFT2026", "u1")
	check("validate", cv.CodeView, err) // the detail's fields are the admin's
	if cv.Detail() {
		t.Error("a validation for a user came back as the admin's detail")
	}
	r := e.do(http.MethodPost, "/v1/codes/DRIFT2026/redemptions", `{"userId":"u1","orderId":"o1","metadata":{"k":1},
		"segments":["vip"],"country":"DE","order":{"amount":"49.99","currency":"EUR","discount":"5.00","firstOrder":true}}`, nil)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("redeem = %d %s", r.StatusCode, r.body)
	}
	r = e.do(http.MethodPost, "/v1/codes/DRIFT2026/reservations", `{"userId":"u2","ttl":"10m","segments":["vip"],"country":"DE"}`, nil)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("reserve = %d %s", r.StatusCode, r.body)
	}
	cv, err = c.LookupCode(ctx, "DRIFT2026", "")
	check("code detail", cv, err)
	if !cv.Detail() || len(cv.Reservations) != 1 || cv.Used != 1 {
		t.Errorf("code detail = %+v, want the admin's detail with one reservation and one use", cv)
	}
	rp, err := c.ListRedemptions(ctx, client.RedemptionQuery{PromotionID: id})
	check("redemptions", rp, err)
	if len(rp.Redemptions) != 1 {
		t.Fatalf("redemptions = %+v", rp)
	}
	rb, _, err := c.RollbackRedemption(ctx, rp.Redemptions[0].ID, "returned")
	check("rollback", rb, err)
	rp, err = c.ListRedemptions(ctx, client.RedemptionQuery{UserID: "u1", Limit: 1})
	check("user redemptions", rp, err)
	rv, err := c.RevokeCode(ctx, "DRIFT2026", "leaked")
	check("revoke", rv, err)
	audit, err := c.AuditLog(ctx, id, "", 1)
	check("audit", audit, err)
	stats, err := c.PromotionStats(ctx, id, promo.BucketDay)
	check("stats", stats, err)
	uc, err := c.UserCodes(ctx, "u1")
	check("user codes", wire.UserCodes{Codes: uc, UserID: "u1"}, err) // the client answers the list
	gen, err := c.CreatePromotion(ctx, client.CreateRequest{Name: "drift generated", CodeCount: 100,
		Format: &promo.Format{Charset: "ABCDEFGHJKLMNPQRSTUVWXYZ23456789", Length: 8}}, "")
	check("create generated", gen, err)
	tu, tst, err := c.TopUpPromotion(ctx, gen.ID, 50, "top-up-key")
	check("top up", wire.ToppedUp{Promotion: tst.Promotion, TopUp: tu.TopUp}, err)
	cst, _, err := c.CancelPromotion(ctx, gen.ID)
	check("cancel", cst, err)
	del, _, err := c.DeletePromotion(ctx, id)
	check("delete", wire.Deleted{Deletion: del, ID: id}, err)
	st, err = c.GetPromotion(ctx, id)
	check("get deleting", st, err)
	_, err = c.GetPromotion(ctx, "999999")
	check("not found", nil, err)
	_, err = c.CreatePromotion(ctx, client.CreateRequest{Name: "short", CodeCount: 1_000_000,
		Format: &promo.Format{Charset: "AB", Length: 4}}, "")
	check("refused", nil, err)
}
