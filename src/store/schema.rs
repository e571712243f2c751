//! The schema's version, for readiness.

use sqlx::{PgExecutor, migrate::Migrator};

/// The migrations in `migrations/`, embedded for `matchmaker migrate` and start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// The newest migration this build knows.
pub fn expected_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest migration applied successfully; `Ok(None)` on a database never migrated.
pub async fn applied_version(db: impl PgExecutor<'_>) -> sqlx::Result<Option<i64>> {
    match sqlx::query_scalar!("select max(version) from _sqlx_migrations where success")
        .fetch_one(db)
        .await
    {
        Ok(v) => Ok(v),
        // undefined_table: no `_sqlx_migrations` yet
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Ok(None),
        Err(e) => Err(e),
    }
}
