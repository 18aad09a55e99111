package sqlserver

// errStatementPath is qRedeemOnce's THROW for a promotion with rules,
// having written nothing (Dialect.StatementPath).
const errStatementPath = 50001

// refusal is why code row c (promotion p) is refused to user @p3 at @p6, in
// promo.CodeState.Status's order, NULL if allowed: qRedeemOnce's condition
// and reason, as promo_refusal (the statement path's is sqlstore.CodeUsable).
const refusal = `CASE
			WHEN p.delete_requested_at IS NOT NULL THEN 'promotion_deleted'
			WHEN c.revoked_at IS NOT NULL THEN 'revoked'
			WHEN c.user_id IS NOT NULL AND c.user_id <> @p3 THEN 'not_your_code'
			WHEN p.active = 0 THEN 'deactivated'
			WHEN @p6 < p.starts_at THEN 'not_started'
			WHEN @p6 >= p.expires_at THEN 'expired'
			WHEN c.used >= p.max_usage_per_code THEN 'code_exhausted' END`

// qRedeemOnce is RedeemOnce (its arguments and row: sqlstore.Statements):
// one batch that is its own transaction, the core's steps in its lock order.
//
// It cannot over-redeem for the reasons queries.go gives (UseCode); the
// key's and the allowance's inserts hold UPDLOCK, HOLDLOCK (a key-range
// lock to the end). XACT_ABORT with TRY/CATCH rolls the whole batch back on
// any error. The payload is nvarchar(max): no cut at 4,000 characters.
const qRedeemOnce = `SET NOCOUNT ON;
SET XACT_ABORT ON;
DECLARE @outcome varchar(32), @pid bigint, @used int, @max int, @limit int, @rules int, @load int, @uu int, @left int;
DECLARE @t TABLE (promotion_id bigint, used int, max_usage int, per_user int, rules int);
DECLARE @a TABLE (used int);
BEGIN TRY
	BEGIN TRANSACTION;
	IF @p7 <> ''
	BEGIN
		INSERT INTO idempotency_keys (idem_key, request_hash, redemption_id, created_at)
		SELECT @p7, @p8, @p1, @p6
		WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys WITH (UPDLOCK, HOLDLOCK) WHERE idem_key = @p7);
		IF @@ROWCOUNT = 0 SET @outcome = 'replay';
	END
	IF @outcome IS NULL
	BEGIN
		UPDATE c SET c.used = c.used + 1
		OUTPUT inserted.promotion_id, inserted.used, p.max_usage_per_code, p.per_user_limit,
			CASE WHEN p.eligibility IS NULL THEN 0 ELSE 1 END INTO @t
		FROM codes AS c JOIN promotions AS p ON p.id = c.promotion_id
		WHERE c.code = @p2 AND ` + refusal + ` IS NULL;
		SELECT @pid = promotion_id, @used = used, @max = max_usage, @limit = per_user, @rules = rules FROM @t;
		IF @pid IS NULL
		BEGIN
			SELECT @pid = c.promotion_id, @outcome = COALESCE(` + refusal + `, 'code_exhausted')
			FROM codes AS c JOIN promotions AS p ON p.id = c.promotion_id WHERE c.code = @p2;
			IF @outcome IS NULL SET @outcome = 'code_not_found';
		END
		ELSE IF @rules = 1
		BEGIN
			SET @outcome = 'rules';
			THROW 50001, N'the promotion has eligibility rules: the store redeems on its statement path', 1;
		END
		ELSE
		BEGIN
			SELECT @load = @used + COUNT(*) FROM reservations AS r
			WHERE r.code = @p2 AND r.promotion_id = @pid AND r.status = 'held' AND r.expires_at > @p6;
			IF @load > @max
				SET @outcome = 'code_exhausted';
			ELSE IF @limit <> 0
			BEGIN
				UPDATE user_uses SET used = used + 1 OUTPUT inserted.used INTO @a
				WHERE promotion_id = @pid AND user_id = @p3 AND used < @limit;
				IF @@ROWCOUNT = 0
				BEGIN
					INSERT INTO user_uses (promotion_id, user_id, used) OUTPUT inserted.used INTO @a
					SELECT @pid, @p3, 1 WHERE NOT EXISTS
						(SELECT 1 FROM user_uses WITH (UPDLOCK, HOLDLOCK) WHERE promotion_id = @pid AND user_id = @p3);
					IF @@ROWCOUNT = 0
						UPDATE user_uses SET used = used + 1 OUTPUT inserted.used INTO @a
						WHERE promotion_id = @pid AND user_id = @p3 AND used < @limit;
				END
				SELECT @uu = used FROM @a;
				IF @uu IS NULL
					SET @outcome = 'user_limit_reached';
				ELSE
				BEGIN
					SELECT @uu = @uu + COUNT(*) FROM reservations AS r
					WHERE r.promotion_id = @pid AND r.user_id = @p3 AND r.status = 'held' AND r.expires_at > @p6;
					IF @uu > @limit
					BEGIN
						UPDATE user_uses SET used = used - 1 WHERE promotion_id = @pid AND user_id = @p3 AND used > 0;
						SET @outcome = 'user_limit_reached';
					END
				END
			END
			IF @outcome IS NOT NULL
				UPDATE codes SET used = used - 1 WHERE code = @p2 AND used > 0;
		END
	END
	IF @outcome IS NULL
	BEGIN
		SET @outcome = 'redeemed';
		SET @left = CASE WHEN @max - @load > 0 THEN @max - @load ELSE 0 END;
		INSERT INTO redemptions (id, promotion_id, code, user_id, order_id, metadata, redeemed_at, uses_left,
			idempotency_key, client_addr, user_agent)
		VALUES (@p1, @pid, @p2, @p3, @p4, @p5, @p6, @left, NULLIF(@p7, ''), NULLIF(@p12, ''), NULLIF(@p13, ''));
		INSERT INTO events (stream, event_key, payload, created_at)
		VALUES (@p9, CAST(@pid AS varchar(20)), CAST(@p10 AS nvarchar(max)) + CAST(@pid AS varchar(20)) + @p11
			+ CAST(@left AS varchar(11)) + N'},"codeUses":' + CAST(@used AS varchar(11)) + N'}', @p6);
	END
	ELSE IF @outcome <> 'replay' AND @p7 <> ''
		UPDATE idempotency_keys SET refused = @outcome, redemption_id = NULL WHERE idem_key = @p7;
	COMMIT TRANSACTION;
END TRY
BEGIN CATCH
	IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
	THROW;
END CATCH
SELECT @outcome, COALESCE(@pid, 0), COALESCE(@left, 0);`
