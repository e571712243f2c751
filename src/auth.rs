//! Authentication of players (docs/api.md: the 401 rows): the portal's HS256 JWT, as the
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
    require_expiry: bool,
}

/// The claims, as they came: a claim present as `null` is not an absent claim, and a claim
/// given twice (which one would the portal have meant?) makes the token invalid.
struct Claims(serde_json::Map<String, Value>);

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Claims;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Claims, A::Error> {
                let mut claims = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    if claims.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "claim `{key}` given twice"
                        )));
                    }
                    claims.insert(key, value);
                }
                Ok(Claims(claims))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Our own check of the time claims: jsonwebtoken checks them only when they parse as unsigned
/// integers and lets a string, a negative or a fractional date through unchecked. A time claim,
/// when present, must be a number (RFC 7519's NumericDate may be fractional).
fn time_claims_hold(claims: &Claims, require_exp: bool) -> bool {
    let date = |v: &Option<Value>| match v {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().filter(|t| t.is_finite()).map(Some).ok_or(()),
        Some(_) => Err(()),
    };
    let claim = |name| claims.0.get(name).cloned();
    let (Ok(exp), Ok(nbf), Ok(_iat)) = (
        date(&claim("exp")),
        date(&claim("nbf")),
        date(&claim("iat")),
    ) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if require_exp && exp.is_none() {
        return false;
    }
    // No leeway: the portal and the matchmaker share a clock source in practice.
    exp.is_none_or(|exp| now <= exp) && nbf.is_none_or(|nbf| nbf <= now)
}

/// A user id or username fit to store and show: not blank, not absurdly long, no control
/// characters (Postgres text cannot even hold NUL).
fn plausible_name(s: &str) -> bool {
    !s.trim().is_empty() && s.len() <= MAX_CLAIM_LEN && !s.chars().any(char::is_control)
}

impl Authenticator {
    pub fn new(secret: &str, require_expiry: bool) -> Self {
        // HS256 only: `alg: none`, RS256 with the secret as a "public key", and every other
        // algorithm fail here before the signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        // The time claims are checked by `time_claims_hold`, by type too.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            require_expiry,
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
        if !time_claims_hold(&claims, self.require_expiry) {
            return Err(refuse());
        }
        if let Some(kind) = claims.0.get("token_type").filter(|v| !v.is_null()) {
            if kind.as_str() != Some("access") {
                return Err(refuse());
            }
        }
        let user_id = match claims.0.get("user_id").cloned() {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => return Err(refuse()),
        };
        let username = match claims.0.get("username").cloned() {
            Some(Value::String(s)) => s,
            _ => return Err(refuse()),
        };
        if !plausible_name(&user_id) || !plausible_name(&username) {
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
        // time claims must be numbers, and hold
        let signed = |claims: serde_json::Value| {
            let t = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"k"),
            )
            .unwrap();
            auth.verify(Some(format!("Bearer {t}").as_bytes()))
        };
        let now = jsonwebtoken::get_current_timestamp() as f64;
        let who = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"user_id": "u", "username": "n"});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        assert!(signed(who(serde_json::json!({"exp": now + 60.5}))).is_ok());
        for bad in [
            serde_json::json!({"exp": "9999999999"}),
            serde_json::json!({"exp": -1}),
            serde_json::json!({"exp": now - 0.5}),
            serde_json::json!({"exp": null}),
            serde_json::json!({"nbf": now + 60.0}),
            serde_json::json!({"nbf": "0"}),
            serde_json::json!({"iat": "yesterday"}),
            serde_json::json!({"user_id": "a\u{0}b"}),
            serde_json::json!({"username": "tab\there"}),
        ] {
            assert_eq!(signed(who(bad.clone())), Err(AuthError::Invalid), "{bad}");
        }
        // no exp: refused only when expiry is required
        let strict = Authenticator::new("k", true);
        assert!(
            strict
                .verify(Some(format!("Bearer {numeric}").as_bytes()))
                .is_err()
        );
    }
}
