//! Extractors: the product named by the path, the calling player, the client's address, the
//! `Idempotency-Key`. Handlers take the product before the player, so an unknown product
//! answers 400 before the token is even looked at.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, HeaderName, header::AUTHORIZATION, request::Parts},
};

use super::{
    error::{ApiError, ApiResult},
    state::AppState,
};
use crate::{
    auth::AuthError,
    domain::{LobbyError, Player, Product},
};

/// The calling player, from the `Authorization` header.
pub struct Caller(pub Player);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = authorization(&parts.headers)?;
        let player = state.auth.verify(header)?;
        tracing::Span::current().record("player", player.user_id.as_str());
        Ok(Caller(player))
    }
}

/// The one `Authorization` header's value. HTTP does not allow the header twice; a request that
/// repeats it (a valid token and a forged one, say) is refused rather than judged by either.
pub fn authorization(headers: &HeaderMap) -> ApiResult<Option<&[u8]>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let first = values.next().map(|v| v.as_bytes());
    if values.next().is_some() {
        return Err(AuthError::Invalid.into());
    }
    Ok(first)
}

/// Percent-decodes a path segment or a query component (`+` is a space only in queries).
pub fn percent_decode(raw: &str, plus_is_space: bool) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The path's segments after the route's prefix (`/game_lobby/{product_id}/...`), decoded.
fn segment(parts: &Parts, index: usize) -> Option<Vec<u8>> {
    parts
        .uri
        .path()
        .split('/')
        .nth(index)
        .map(|s| percent_decode(s, false))
}

/// The `{product_id}` segment as text; a segment that is not UTF-8 names no product (400).
/// Read from the raw path, so that another segment's bytes cannot make the product unknown.
pub struct ProductSegment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ProductSegment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        segment(parts, 2)
            .and_then(|b| String::from_utf8(b).ok())
            .map(Self)
            .ok_or_else(ApiError::invalid_product)
    }
}

/// The last segment of `/game_lobby/{product_id}/<route>/{segment}` (a game id or a join
/// code), decoded; bytes that are not UTF-8 become U+FFFD, which no game id or code holds, so
/// the use case refuses it with its own message.
pub struct LastSegment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for LastSegment {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let bytes = segment(parts, 4).unwrap_or_default();
        Ok(Self(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// The player of a live-lobby stream: the `Authorization` header, or else an `access_token`
/// query parameter, because a browser's `EventSource` cannot send headers. Accepted on that
/// route only: everywhere else a token in a URL is ignored.
pub struct StreamCaller(pub Player);

impl FromRequestParts<AppState> for StreamCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(AUTHORIZATION) {
            let Caller(player) = Caller::from_request_parts(parts, state).await?;
            return Ok(StreamCaller(player));
        }
        let token = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| format!("Bearer {v}"));
        let player = state.auth.verify(token.as_deref().map(str::as_bytes))?;
        tracing::Span::current().record("player", player.user_id.as_str());
        Ok(StreamCaller(player))
    }
}

/// The product named by the `{product_id}` path segment; 400 when it is not configured.
pub struct ProductRef(pub Arc<Product>);

impl FromRequestParts<AppState> for ProductRef {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ProductSegment(id) = ProductSegment::from_request_parts(parts, state).await?;
        let product = state
            .lobby
            .product(&id)
            .ok_or_else(ApiError::invalid_product)?;
        tracing::Span::current().record("product", product.product_id.as_str());
        Ok(ProductRef(product))
    }
}

/// The peer's address, when the server knows it (tests that call the router directly don't).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer replayed from an earlier request.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const MAX_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "Game Lobby: Invalid Idempotency-Key - expected 1 to 255 visible ASCII characters.",
        )
    };
    // Two keys: which one would the retry match?
    if values.next().is_some() {
        return Err(bad());
    }
    let text = value.to_str().map_err(|_| bad())?;
    if text.is_empty() || text.len() > MAX_KEY_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(text.to_string()))
}

/// A non-negative integer; digits beyond u64 saturate (a huge page is simply empty).
pub fn paging(raw: Option<&str>) -> ApiResult<Option<u64>> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "Invalid request - page size and entry count must be integers.",
        ));
    }
    if negative && digits.bytes().any(|b| b != b'0') {
        return Err(ApiError::bad_request(
            "Invalid request - page size and entry count must not be negative.",
        ));
    }
    Ok(Some(digits.parse::<u64>().unwrap_or(u64::MAX)))
}

/// The region a create or quick match asks for (docs/fleets.md): `region` in a JSON object
/// body, or `?region=`; both may be given only if they agree.
pub fn region(body: &[u8], query: Option<&str>) -> ApiResult<Option<String>> {
    let invalid = |detail: &str| ApiError::from(LobbyError::InvalidRegion(detail.into()));
    let from_body = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(fields)) => match fields.get("region") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(r)) => Some(r.clone()),
            Some(_) => return Err(invalid("\"region\" must be a string")),
        },
        _ => None,
    };
    let mut from_query = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "region" {
            if from_query.is_some() {
                return Err(invalid("give ?region= once"));
            }
            from_query = Some(v.into_owned());
        }
    }
    let region = match (from_body, from_query) {
        (Some(b), Some(q)) if b != q => {
            return Err(invalid("the body's region and ?region= differ"));
        }
        (b, q) => b.or(q),
    };
    if let Some(r) = &region {
        crate::domain::fleet::check_region(r)?;
    }
    Ok(region)
}

/// Checks that a game server presents the product's `event_key` as `Authorization: Bearer`
/// (the event and instance routes, docs/api.md).
pub fn game_server_key(product: &Product, headers: &HeaderMap) -> ApiResult<()> {
    let Some(expected) = &product.event_key else {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "Game-server routes are off for this product (no event_key configured).",
        ));
    };
    // A repeated header presents no key.
    let presented = authorization(headers)
        .ok()
        .flatten()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes())) {
        return Err(ApiError::unauthorized(
            "Game server not authorized: send `Authorization: Bearer <event_key>`.",
        ));
    }
    Ok(())
}

/// Compares without an early exit, so timing does not reveal how much of a key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", true), b"a b c");
        assert_eq!(percent_decode("a%20b+c", false), b"a b+c");
        assert_eq!(percent_decode("%FF%fe%00", false), [0xFF, 0xFE, 0]);
        assert_eq!(percent_decode("100%", false), b"100%");
        assert_eq!(percent_decode("%4", false), b"%4");
        assert_eq!(percent_decode("%zz", false), b"%zz");
    }

    #[test]
    fn paging_values() {
        assert_eq!(paging(Some("7")).unwrap(), Some(7));
        assert_eq!(paging(Some("-0")).unwrap(), Some(0));
        assert_eq!(
            paging(Some("99999999999999999999999")).unwrap(),
            Some(u64::MAX)
        );
        for bad in ["abc", "1.5", ""] {
            assert!(paging(Some(bad)).unwrap_err().detail.contains("integers"));
        }
        assert!(paging(Some("-3")).unwrap_err().detail.contains("negative"));
    }
}
