//! Authentication of players (docs/api.md, "Authentication"): the portal's HS256 JWT, as the
//! value of an `Authorization` header.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::domain::Player;

/// Why a request carries no player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// A header that is not a valid token of ours.
    Invalid,
}

/// Longest `Authorization` value looked at; real tokens are a few hundred bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest user id or username accepted from a token.
const MAX_CLAIM_LEN: usize = 256;

/// Verifies tokens with the secret shared with the portal.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    user_id: Option<Value>,
    username: Option<Value>,
    token_type: Option<Value>,
}

impl Authenticator {
    pub fn new(secret: &str, require_expiry: bool) -> Self {
        // HS256 only: `alg: none`, RS256 with the secret as a "public key", and every other
        // algorithm fail here before the signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        if require_expiry {
            validation.set_required_spec_claims(&["exp"]);
        }
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Checks an `Authorization` header value: `Bearer <jwt>` or `Token <jwt>`.
    pub fn verify(&self, header: Option<&[u8]>) -> Result<Player, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let refuse = || AuthError::Invalid;
        if header.len() > MAX_TOKEN_LEN {
            return Err(refuse());
        }
        let text = std::str::from_utf8(header).map_err(|_| refuse())?;
        let mut parts = text.split_ascii_whitespace();
        let (Some(scheme), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(refuse());
        };
        if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
            return Err(refuse());
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| {
                tracing::debug!(error = %e, "token refused");
                refuse()
            })?
            .claims;
        if let Some(kind) = &claims.token_type {
            if kind.as_str() != Some("access") {
                return Err(refuse());
            }
        }
        let user_id = match claims.user_id {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => return Err(refuse()),
        };
        let username = match claims.username {
            Some(Value::String(s)) => s,
            _ => return Err(refuse()),
        };
        let fits = |s: &str| !s.trim().is_empty() && s.len() <= MAX_CLAIM_LEN;
        if !fits(&user_id) || !fits(&username) {
            return Err(refuse());
        }
        Ok(Player { user_id, username })
    }
}

#[derive(Serialize)]
struct MintClaims<'a> {
    user_id: &'a str,
    username: &'a str,
    token_type: &'static str,
    iat: u64,
    exp: u64,
    jti: String,
}

/// A portal-style access token, for `matchmaker token`, `make run` and tests.
pub fn mint_token(secret: &str, user_id: &str, username: &str, ttl_secs: u64) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = MintClaims {
        user_id,
        username,
        token_type: "access",
        iat: now,
        exp: now + ttl_secs,
        jti: uuid::Uuid::new_v4().simple().to_string(),
    };
    // Encoding with an HMAC key and serde-able claims cannot fail.
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_schemes_and_numeric_ids() {
        let auth = Authenticator::new("k", false);
        let t = mint_token("k", "u1", "alice", 60);
        let p = auth.verify(Some(format!("Bearer {t}").as_bytes())).unwrap();
        assert_eq!(p.user_id, "u1");
        assert!(auth.verify(Some(format!("Token {t}").as_bytes())).is_ok());
        assert!(auth.verify(Some(format!("Basic {t}").as_bytes())).is_err());
        assert_eq!(auth.verify(None).unwrap_err(), AuthError::Missing);

        let numeric = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"user_id": 42, "username": "bob"}),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        let p = auth
            .verify(Some(format!("Bearer {numeric}").as_bytes()))
            .unwrap();
        assert_eq!(p.user_id, "42");
        // no exp: refused only when expiry is required
        let strict = Authenticator::new("k", true);
        assert!(
            strict
                .verify(Some(format!("Bearer {numeric}").as_bytes()))
                .is_err()
        );
    }
}
