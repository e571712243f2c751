//! `idempotency_keys`: the first answer to a player's create or quick match under an
//! `Idempotency-Key`, kept for a day.

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

/// How long an answer is replayed.
pub const KEEP_SECS: f64 = 86_400.0;

pub struct Key<'a> {
    pub player_id: &'a str,
    pub key: &'a str,
    pub operation: &'a str,
    pub product_id: &'a str,
    pub request: &'a str,
}

/// Claims the key for a new request: true when this request runs. A key is free when unused,
/// older than a day, or held by a request that has not finished for `stale_secs` (presumed dead).
pub async fn claim(
    db: impl PgExecutor<'_>,
    k: &Key<'_>,
    claim_id: Uuid,
    stale_secs: f64,
) -> sqlx::Result<bool> {
    let claimed = sqlx::query_scalar!(
        r#"
        insert into idempotency_keys
            (player_id, idempotency_key, operation, product_id, request, claim_id)
        values ($1, $2, $3, $4, $5, $6)
        on conflict (player_id, idempotency_key) do update
            set operation = excluded.operation, product_id = excluded.product_id,
                request = excluded.request, claim_id = excluded.claim_id, response = null,
                created_at = now(), completed_at = null
            where idempotency_keys.created_at < now() - make_interval(secs => $7)
               or (idempotency_keys.response is null
                   and idempotency_keys.created_at < now() - make_interval(secs => $8))
        returning true as "claimed!"
        "#,
        k.player_id,
        k.key,
        k.operation,
        k.product_id,
        k.request,
        claim_id,
        KEEP_SECS,
        stale_secs
    )
    .fetch_optional(db)
    .await?;
    Ok(claimed.is_some())
}

#[derive(Debug)]
pub struct Stored {
    pub operation: String,
    pub product_id: String,
    pub request: String,
    /// `None` while the first request runs.
    pub response: Option<Value>,
}

/// The key's record, if it is less than a day old.
pub async fn lookup(
    db: impl PgExecutor<'_>,
    player_id: &str,
    key: &str,
) -> sqlx::Result<Option<Stored>> {
    sqlx::query_as!(
        Stored,
        r#"
        select operation, product_id, request, response from idempotency_keys
        where player_id = $1 and idempotency_key = $2
          and created_at >= now() - make_interval(secs => $3)
        "#,
        player_id,
        key,
        KEEP_SECS
    )
    .fetch_optional(db)
    .await
}

/// Records the answer of the request that holds the claim.
pub async fn complete(
    db: impl PgExecutor<'_>,
    player_id: &str,
    key: &str,
    claim_id: Uuid,
    response: &Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update idempotency_keys set response = $4, completed_at = now()
         where player_id = $1 and idempotency_key = $2 and claim_id = $3",
        player_id,
        key,
        claim_id,
        response
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Frees the key after a failed request (it created nothing), so a retry runs again.
pub async fn release(
    db: impl PgExecutor<'_>,
    player_id: &str,
    key: &str,
    claim_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from idempotency_keys
         where player_id = $1 and idempotency_key = $2 and claim_id = $3",
        player_id,
        key,
        claim_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes keys older than a day; returns how many.
pub async fn purge(db: impl PgExecutor<'_>) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "delete from idempotency_keys where created_at < now() - make_interval(secs => $1)",
        KEEP_SECS
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
