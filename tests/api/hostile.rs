//! Hostile input, as an attacker sends it: NUL and other control characters, invalid UTF-8,
//! huge values, wrong JSON types in token claims, repeated headers, and requests the framework
//! rejects before a handler runs.
//!
//! The rules (docs/api.md, "Hostile input"):
//!
//! - Nothing from outside is ever a 5xx. Every error answer, the framework's own rejections
//!   (path decoding, 404/405 fallbacks anywhere, 413) included, is `application/problem+json`
//!   with a non-empty `detail` and the answer's `status`.
//! - What Postgres cannot store (NUL in text or jsonb: a raw `\0` or `\u0000` in JSON; invalid
//!   UTF-8) is refused before it gets there, with a 4xx whose `detail` names the field: the
//!   product, game id and join-code messages for path segments, the paging message for `count`
//!   and `page`, a message containing `settings filter` for `settings.<key>=<value>`, the
//!   `Idempotency-Key` message for that header, `BAD_TOKEN` (401) for token claims, and outcome
//!   `malformed` with a `detail` naming the field for an event.
//! - `exp`, `nbf` and `iat` are numbers (integer or fractional NumericDate) when present; any
//!   other type, `null` included, is a 401; a negative or past `exp` is expired, a future `nbf`
//!   not yet valid. A request with more than one `Authorization` header is a 401.
//!
//! Requests reqwest would normalise (raw `%FF`, repeated headers, bare NUL) go over a plain TCP
//! connection ([`Req`]). Each table-driven test checks every row and then fails once, listing
//! every row that did not hold.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use redis::AsyncCommands;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    EVENT_KEY, GameServerStub, SECRET, TestApp, eventually, settings, spawn_app, spawn_with, token,
};

const BAD_TOKEN: &str = "Game Lobby: Unable to fetch user profile for user. Relog may be required.";
const INVALID_PRODUCT: &str = "Game Lobby: Invalid product ID.";
const INVALID_GAME_ID: &str = "Game Lobby: Invalid game ID - expected 32 hexadecimal characters.";
const INVALID_CODE: &str =
    "Game Lobby: Invalid join code - expected 6 characters from 23456789ABCDEFGHJKMNPQRSTUVWXYZ.";
const PAGING: &str = "Invalid request - page size and entry count must be integers.";
const INVALID_KEY: &str =
    "Game Lobby: Invalid Idempotency-Key - expected 1 to 255 visible ASCII characters.";
const EVENTS_NOT_AUTHORIZED: &str =
    "Game server not authorized: send `Authorization: Bearer <event_key>`.";
/// What every refused settings filter's `detail` contains.
const SETTINGS_FILTER: &str = "settings filter";

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: exactly the bytes given, one request per connection.

/// A request as bytes on the wire.
#[derive(Clone)]
struct Req {
    method: String,
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn req(method: &str, target: impl AsRef<[u8]>) -> Req {
    Req {
        method: method.into(),
        target: target.as_ref().to_vec(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl Req {
    fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.into(), value.as_ref().to_vec()));
        self
    }
    fn bearer(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }
    fn json(self, body: impl AsRef<[u8]>) -> Self {
        let mut r = self.header("Content-Type", "application/json");
        r.body = body.as_ref().to_vec();
        r
    }
    fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(b" HTTP/1.1\r\nHost: hostile.test\r\nConnection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty() || self.method == "POST" {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
    /// How the request is shown in a failure: the request line, escaped and cut short.
    fn show(&self) -> String {
        let target = String::from_utf8_lossy(&self.target)
            .escape_debug()
            .to_string();
        let target: String = target.chars().take(120).collect();
        format!("{} {target}", self.method)
    }
}

/// An answer read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends `request` on a connection of its own and reads the answer: the head, then the body by
/// `Content-Length` or chunks (an event stream's body is not waited for). Errors when the
/// server closes the connection without an answer or takes more than 10 s.
async fn send(app: &TestApp, request: &Req) -> Result<Answer, String> {
    let addr = app.base.trim_start_matches("http://").to_string();
    let bytes = request.bytes();
    let exchange = async move {
        let mut conn = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        // The server may answer (and close) before it has read a long request: keep reading.
        let _ = conn.write_all(&bytes).await;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(answer) = parse_answer(&buf) {
                return Ok(answer);
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        parse_answer(&buf)
            .or_else(|| parse_head(&buf).map(|(answer, _)| answer))
            .ok_or_else(|| {
                format!(
                    "connection closed without an answer ({:?})",
                    String::from_utf8_lossy(&buf)
                )
            })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
}

/// The head of an answer and where its body starts.
fn parse_head(buf: &[u8]) -> Option<(Answer, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((
        Answer {
            status,
            headers,
            body: Vec::new(),
        },
        end + 4,
    ))
}

/// A complete answer, if `buf` holds one.
fn parse_answer(buf: &[u8]) -> Option<Answer> {
    let (mut answer, start) = parse_head(buf)?;
    let rest = &buf[start..];
    if answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"))
    {
        return Some(answer);
    }
    if let Some(len) = answer.header("content-length") {
        let len: usize = len.parse().ok()?;
        answer.body = rest.get(..len)?.to_vec();
        return Some(answer);
    }
    if answer
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        let mut at = 0;
        let mut body = Vec::new();
        loop {
            let line_end = at + rest[at..].windows(2).position(|w| w == b"\r\n")?;
            let size = std::str::from_utf8(&rest[at..line_end]).ok()?;
            let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                answer.body = body;
                return Some(answer);
            }
            body.extend_from_slice(rest.get(at..at + size)?);
            at += size + 2;
        }
    }
    None
}

/// Checks that `answer` is a problem document with `status` (any 4xx when `None`); answers its
/// `detail`, or what is wrong.
fn problem_detail(answer: &Answer, status: Option<u16>) -> Result<String, String> {
    let seen = || {
        format!(
            "{} {:?} {}",
            answer.status,
            answer.header("content-type"),
            answer.text()
        )
    };
    match status {
        Some(s) if answer.status != s => return Err(format!("expected {s}, got {}", seen())),
        None if !(400..500).contains(&answer.status) => {
            return Err(format!("expected a 4xx, got {}", seen()));
        }
        _ => {}
    }
    if answer.header("content-type") != Some("application/problem+json") {
        return Err(format!("not application/problem+json: {}", seen()));
    }
    let Some(body) = answer.json() else {
        return Err(format!("body is not JSON: {}", seen()));
    };
    if body["status"] != answer.status {
        return Err(format!("`status` is not the answer's: {}", seen()));
    }
    match body["detail"].as_str() {
        Some(d) if !d.trim().is_empty() => Ok(d.to_string()),
        _ => Err(format!("no non-empty `detail`: {}", seen())),
    }
}

/// What a request may answer: a 2xx, or a problem document (never a 5xx).
fn never_a_5xx(answer: &Answer) -> Result<(), String> {
    if answer.status < 300 {
        return Ok(());
    }
    problem_detail(answer, None).map(|_| ())
}

/// Fails listing every failure, if there are any.
fn report(what: &str, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} of the {what} did not hold:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Tokens.

fn now() -> f64 {
    chrono::Utc::now().timestamp() as f64
}

fn sign(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// URL-safe base64 without padding, as in JWTs.
fn b64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// A validly signed HS256 token whose payload is exactly `payload` (which need not be valid
/// JSON or UTF-8).
fn sign_raw(payload: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(payload)
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

/// Good claims with `changes` applied (a `null` in `changes` sets the claim to null; use
/// [`without`] to drop one).
fn claims_with(user: &str, changes: Value) -> Value {
    let mut claims = json!({
        "user_id": user, "username": format!("{user}-name"), "token_type": "access",
        "iat": now() as i64, "exp": now() as i64 + 600,
    });
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// Every route that takes a player's token, on a real open game and a real private game's
/// code, so that a token that gets through reaches the database. (method, path)
async fn player_routes(app: &TestApp) -> Vec<(&'static str, String)> {
    let id = app.open_game("exrps", "alice").await;
    let res = app
        .http
        .post(format!("{}/game_lobby/exrps/create_game", app.base))
        .bearer_auth(token("carol"))
        .json(&json!({"private": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let private: Value = res.json().await.unwrap();
    let game = private["game_id"].as_str().unwrap().to_string();
    app.set_state("exrps", &game, "creator_joined").await;
    let code = private["join_code"].as_str().unwrap().to_string();
    vec![
        ("POST", "/game_lobby/exrps/create_game".to_string()),
        ("POST", "/game_lobby/exrps/quick_match".to_string()),
        ("POST", format!("/game_lobby/exrps/join_game/{id}")),
        ("GET", format!("/game_lobby/exrps/games/{id}")),
        ("POST", format!("/game_lobby/exrps/leave_game/{id}")),
        ("POST", format!("/game_lobby/exrps/join_by_code/{code}")),
        ("GET", "/game_lobby/exrps/open_games/stream".to_string()),
    ]
}

/// Sends `token` to every player route (and to the stream as `?access_token=`), expecting a
/// 401 with [`BAD_TOKEN`] from each; failures are added to `failures`.
async fn expect_refused_everywhere(
    app: &TestApp,
    routes: &[(&'static str, String)],
    case: &str,
    token: &str,
    failures: &mut Vec<String>,
) {
    let mut requests: Vec<Req> = routes
        .iter()
        .map(|(method, path)| req(method, path).bearer(token))
        .collect();
    requests.push(req(
        "GET",
        format!("/game_lobby/exrps/open_games/stream?access_token={token}"),
    ));
    let mut wrong = Vec::new();
    for request in requests {
        let seen = match send(app, &request).await {
            Ok(answer) => match problem_detail(&answer, Some(401)) {
                Ok(detail) if detail == BAD_TOKEN => continue,
                Ok(detail) => format!("401 {detail:?}"),
                Err(_) => format!(
                    "{} {}",
                    answer.status,
                    answer.text().chars().take(60).collect::<String>()
                ),
            },
            Err(e) => e,
        };
        wrong.push(format!("{} -> {seen}", route_label(&request)));
    }
    if !wrong.is_empty() {
        failures.push(format!("{case}: {}", wrong.join("; ")));
    }
}

/// A player route as a failure names it: `create_game`, `join_game/{id}`, `stream?access_token`.
fn route_label(request: &Req) -> String {
    let target = String::from_utf8_lossy(&request.target);
    let rest = target.trim_start_matches("/game_lobby/exrps/");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut label = path.split('/').next().unwrap_or(path).to_string();
    if path.starts_with("open_games/stream") {
        label = "stream".into();
    }
    if query.starts_with("access_token") {
        label.push_str("?access_token");
    }
    label
}

// ---------------------------------------------------------------------------------------------
// Token claims.

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn claims_of_the_wrong_type_or_holding_nul_are_refused_on_every_route(db: PgPool) {
    let app = spawn_app(db).await;
    let routes = player_routes(&app).await;
    let past = chrono::DateTime::from_timestamp(now() as i64 - 3600, 0)
        .unwrap()
        .to_rfc3339();
    let future = chrono::DateTime::from_timestamp(now() as i64 + 3600, 0)
        .unwrap()
        .to_rfc3339();
    let cases: Vec<(&str, Value)> = vec![
        // exp: a number when present, and not in the past
        ("exp as a past date string", json!({"exp": past})),
        ("exp as a future date string", json!({"exp": future})),
        (
            "exp as a numeric string in the past",
            json!({"exp": (now() as i64 - 60).to_string()}),
        ),
        (
            "exp as a numeric string in the future",
            json!({"exp": (now() as i64 + 600).to_string()}),
        ),
        ("exp negative", json!({"exp": -1})),
        ("exp negative fraction", json!({"exp": -1.5})),
        ("exp a fraction in the past", json!({"exp": now() - 30.5})),
        ("exp zero", json!({"exp": 0})),
        ("exp null", json!({"exp": null})),
        ("exp true", json!({"exp": true})),
        ("exp false", json!({"exp": false})),
        ("exp an object", json!({"exp": {"at": now() + 600.0}})),
        ("exp an array", json!({"exp": [now() + 600.0]})),
        // nbf: a number when present, and not in the future
        ("nbf as a date string", json!({"nbf": future})),
        (
            "nbf as a past numeric string",
            json!({"nbf": (now() as i64 - 60).to_string()}),
        ),
        (
            "nbf a fraction in the future",
            json!({"nbf": now() + 600.5}),
        ),
        ("nbf null", json!({"nbf": null})),
        ("nbf true", json!({"nbf": true})),
        // iat: a number when present
        ("iat as a date string", json!({"iat": past})),
        (
            "iat as a numeric string",
            json!({"iat": (now() as i64).to_string()}),
        ),
        ("iat true", json!({"iat": true})),
        ("iat an object", json!({"iat": {}})),
        ("iat null", json!({"iat": null})),
        // user_id and username: text Postgres can store, or an integer user id
        ("user_id with a NUL", json!({"user_id": "mal\u{0}lory"})),
        ("user_id only a NUL", json!({"user_id": "\u{0}"})),
        (
            "user_id ending in a NUL",
            json!({"user_id": "mallory\u{0}"}),
        ),
        ("username with a NUL", json!({"username": "Mal\u{0}lory"})),
        ("username only a NUL", json!({"username": "\u{0}"})),
        ("user_id a fraction", json!({"user_id": 1.5})),
        ("user_id a float", json!({"user_id": 42.0})),
        ("user_id true", json!({"user_id": true})),
        ("user_id an array", json!({"user_id": ["mallory"]})),
        ("user_id null", json!({"user_id": null})),
        ("username a number", json!({"username": 7})),
        ("username an array", json!({"username": ["Mallory"]})),
    ];
    let mut failures = Vec::new();
    for (i, (case, changes)) in cases.iter().enumerate() {
        let token = sign(&claims_with(&format!("mallory{i}"), changes.clone()));
        expect_refused_everywhere(&app, &routes, case, &token, &mut failures).await;
    }
    // Payloads JSON encoders will not write: invalid UTF-8, lone surrogates, duplicate claims.
    let exp = now() as i64 + 600;
    let raw_cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "user_id with an invalid JSON escape",
            format!(r#"{{"user_id":"mal\xFFlory","username":"m","exp":{exp}}}"#).into_bytes(),
        ),
        ("user_id with a raw 0xFF byte", {
            let mut p = br#"{"user_id":"mal"#.to_vec();
            p.push(0xFF);
            p.extend_from_slice(format!(r#"lory","username":"m","exp":{exp}}}"#).as_bytes());
            p
        }),
        ("username with a raw 0xC0 0x80 (overlong NUL)", {
            let mut p = br#"{"user_id":"mallory","username":"m"#.to_vec();
            p.extend_from_slice(&[0xC0, 0x80]);
            p.extend_from_slice(format!(r#"","exp":{exp}}}"#).as_bytes());
            p
        }),
        (
            "user_id with a lone surrogate",
            format!(r#"{{"user_id":"mal\ud800lory","username":"m","exp":{exp}}}"#).into_bytes(),
        ),
        (
            "user_id with an escaped NUL",
            format!(r#"{{"user_id":"mal\u0000lory","username":"m","exp":{exp}}}"#).into_bytes(),
        ),
        (
            "a raw NUL byte in the payload",
            format!("{{\"user_id\":\"mal\0lory\",\"username\":\"m\",\"exp\":{exp}}}").into_bytes(),
        ),
        (
            "exp twice: expired, then valid",
            format!(
                r#"{{"user_id":"mallory","username":"m","exp":{},"exp":{exp}}}"#,
                exp - 3600
            )
            .into_bytes(),
        ),
        (
            "user_id twice",
            format!(r#"{{"user_id":"mallory","user_id":"alice","username":"m","exp":{exp}}}"#)
                .into_bytes(),
        ),
    ];
    for (case, payload) in &raw_cases {
        expect_refused_everywhere(&app, &routes, case, &sign_raw(payload), &mut failures).await;
    }
    report("refused token cases", failures);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn more_than_one_authorization_header_is_refused(db: PgPool) {
    let app = spawn_app(db).await;
    let routes = player_routes(&app).await;
    let valid = format!("Bearer {}", token("mallory"));
    let also_valid = format!("Bearer {}", token("alice"));
    let forged = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoieCJ9.forged".to_string();
    let cases = [
        ("valid, then forged", valid.clone(), forged.clone()),
        ("forged, then valid", forged.clone(), valid.clone()),
        ("valid, then valid", valid.clone(), valid.clone()),
        (
            "two players' valid tokens",
            valid.clone(),
            also_valid.clone(),
        ),
        ("valid, then empty", valid.clone(), String::new()),
    ];
    let mut failures = Vec::new();
    for (case, first, second) in &cases {
        let mut wrong = Vec::new();
        for (method, path) in &routes {
            let request = req(method, path)
                .header("Authorization", first)
                .header("Authorization", second);
            let seen = match send(&app, &request).await {
                Ok(a) => match problem_detail(&a, Some(401)) {
                    Ok(d) if d == BAD_TOKEN => continue,
                    Ok(d) => format!("401 {d:?}"),
                    Err(_) => format!(
                        "{} {}",
                        a.status,
                        a.text().chars().take(60).collect::<String>()
                    ),
                },
                Err(e) => e,
            };
            wrong.push(format!("{} -> {seen}", route_label(&request)));
        }
        if !wrong.is_empty() {
            failures.push(format!("{case}: {}", wrong.join("; ")));
        }
    }
    // The game servers' route too: its key twice, or the key and something else, is a 401.
    let key = format!("Bearer {EVENT_KEY}");
    for (case, first, second) in [
        (
            "event key, then forged",
            key.as_str(),
            "Bearer forged-event-key",
        ),
        (
            "forged, then event key",
            "Bearer forged-event-key",
            key.as_str(),
        ),
        ("event key twice", key.as_str(), key.as_str()),
    ] {
        let request = req("POST", "/game_servers/exrps/events")
            .header("Authorization", first)
            .header("Authorization", second)
            .json(r#"{"type":"gameplay"}"#);
        match send(&app, &request)
            .await
            .and_then(|a| problem_detail(&a, Some(401)))
        {
            Ok(d) if d == EVENTS_NOT_AUTHORIZED => {}
            Ok(d) => failures.push(format!("{case}: events: 401 {d:?}")),
            Err(e) => failures.push(format!("{case}: events: {e}")),
        }
    }
    // One header with the token is still fine.
    let zed = format!("Bearer {}", token("zed"));
    let one = send(
        &app,
        &req("POST", "/game_lobby/exrps/create_game").header("Authorization", &zed),
    )
    .await
    .unwrap();
    assert_eq!(one.status, 200, "{}", one.text());
    report("repeated Authorization cases", failures);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn numeric_dates_may_be_fractional(db: PgPool) {
    // RFC 7519 §2: a NumericDate is a JSON number, "non-integer values can be represented".
    let stub = GameServerStub::start().await;
    let strict = settings(&stub, "require_token_expiry = true");
    let app = spawn_with(db, stub, strict).await;
    let cases = [
        ("exp a future fraction", json!({"exp": now() + 600.25})),
        (
            "exp, nbf and iat fractions",
            json!({"exp": now() + 600.5, "nbf": now() - 10.75, "iat": now() - 10.75}),
        ),
        (
            "nbf negative (valid since 1969)",
            json!({"nbf": -1, "exp": now() as i64 + 600}),
        ),
        ("iat in the far past", json!({"iat": 0})),
    ];
    let mut failures = Vec::new();
    for (i, (case, changes)) in cases.iter().enumerate() {
        let t = sign(&claims_with(&format!("frac{i}"), changes.clone()));
        for request in [
            req("POST", "/game_lobby/exrps/create_game").bearer(&t),
            req("GET", "/game_lobby/exrps/open_games/stream").bearer(&t),
        ] {
            match send(&app, &request).await {
                Ok(a) if a.status == 200 => {}
                Ok(a) => failures.push(format!(
                    "{case}: {}: {} {}",
                    request.show(),
                    a.status,
                    a.text()
                )),
                Err(e) => failures.push(format!("{case}: {}: {e}", request.show())),
            }
        }
    }
    // exponent notation (serde_json never writes it)
    let t = sign_raw(br#"{"user_id":"frac-e","username":"n","exp":1.9e9,"iat":1.7e9}"#);
    let a = send(
        &app,
        &req("POST", "/game_lobby/exrps/create_game").bearer(&t),
    )
    .await
    .unwrap();
    if a.status != 200 {
        failures.push(format!(
            "exp in exponent notation: {} {}",
            a.status,
            a.text()
        ));
    }
    // and without exp, under require_token_expiry, still refused
    let no_exp = sign(&without(claims_with("noexp", json!({})), "exp"));
    let a = send(
        &app,
        &req("POST", "/game_lobby/exrps/create_game").bearer(&no_exp),
    )
    .await
    .unwrap();
    if problem_detail(&a, Some(401)).as_deref() != Ok(BAD_TOKEN) {
        failures.push(format!(
            "no exp under require_token_expiry: {} {}",
            a.status,
            a.text()
        ));
    }
    report("fractional NumericDate cases", failures);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn control_characters_in_claims_are_never_a_5xx(db: PgPool) {
    let app = spawn_app(db).await;
    let routes = player_routes(&app).await;
    let values = [
        "a\u{1}b",
        "tab\there",
        "line\nbreak",
        "\r\n\r\nHTTP/1.1 200 OK",
        "\u{1b}[31mred",
        "del\u{7f}",
        "\u{202e}override",
        "\u{ffff}",
        "\u{feff}bom",
        "'; drop table games; --",
        "%00",
        "\\u0000",
    ];
    let mut failures = Vec::new();
    for (i, value) in values.iter().enumerate() {
        for claims in [
            claims_with(value, json!({})),
            claims_with(&format!("ctl{i}"), json!({"username": value})),
        ] {
            let t = sign(&claims);
            for (method, path) in &routes {
                let request = req(method, path).bearer(&t);
                match send(&app, &request).await {
                    Ok(a) => {
                        if let Err(e) = never_a_5xx(&a) {
                            failures.push(format!("claim {value:?}: {}: {e}", request.show()));
                        }
                    }
                    Err(e) => failures.push(format!("claim {value:?}: {}: {e}", request.show())),
                }
            }
        }
    }
    report("control-character claims", failures);
}

// ---------------------------------------------------------------------------------------------
// Query parameters and path segments.

/// Values, percent-encoded as sent, that Postgres cannot store once decoded: NUL (raw and as
/// JSON `\u0000` in a value that reads as JSON) and invalid UTF-8.
const UNSTORABLE: &[(&str, &str)] = &[
    ("a NUL", "%00"),
    ("a NUL inside", "ranked%00x"),
    ("a trailing NUL", "ranked%00"),
    ("invalid UTF-8", "%FF%FE"),
    ("a lone continuation byte", "ranked%80"),
    ("an overlong NUL", "%C0%80"),
    ("a UTF-8 surrogate", "%ED%A0%80"),
    ("a code point past U+10FFFF", "%F4%90%80%80"),
    ("a truncated sequence", "%E2%82"),
];

/// Settings filter values that read as JSON holding a NUL.
const JSON_NUL: &[(&str, &str)] = &[
    ("a JSON string \"\\u0000\"", "%22%5Cu0000%22"),
    ("a JSON string with \\u0000 inside", "%22ran%5Cu0000ked%22"),
    ("a JSON array holding \\u0000", "%5B%22%5Cu0000%22%5D"),
    (
        "a JSON object with a \\u0000 value",
        "%7B%22a%22%3A%22%5Cu0000%22%7D",
    ),
    (
        "a JSON object with a \\u0000 key",
        "%7B%22%5Cu0000%22%3A1%7D",
    ),
    (
        "a deeply nested \\u0000",
        "%5B%5B%5B%7B%22a%22%3A%5B%22x%5Cu0000%22%5D%7D%5D%5D%5D",
    ),
];

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn settings_filters_postgres_cannot_store_are_a_400_naming_the_filter(db: PgPool) {
    let app = spawn_app(db).await;
    app.open_game("quad", "alice").await;
    let player = token("bob");
    let mut queries = Vec::new();
    for (what, v) in UNSTORABLE.iter().chain(JSON_NUL) {
        queries.push((format!("value: {what}"), format!("settings.mode={v}")));
        queries.push((
            format!("value after a good filter: {what}"),
            format!("settings.num_players=4&settings.mode={v}"),
        ));
    }
    for (what, v) in UNSTORABLE {
        queries.push((format!("key: {what}"), format!("settings.{v}=ranked")));
        queries.push((format!("key only: {what}"), format!("settings.{v}")));
    }
    let mut failures = Vec::new();
    for (case, query) in &queries {
        for request in [
            req("GET", format!("/game_lobby/quad/open_games?{query}")),
            req("GET", format!("/game_lobby/quad/open_games/stream?{query}")).bearer(&player),
            req(
                "GET",
                format!("/game_lobby/quad/open_games/stream?{query}&access_token={player}"),
            ),
        ] {
            match send(&app, &request)
                .await
                .and_then(|a| problem_detail(&a, Some(400)))
            {
                Ok(detail) if detail.contains(SETTINGS_FILTER) => {}
                Ok(detail) => failures.push(format!(
                    "{case}: {}: detail {detail:?} does not name the settings filter",
                    request.show()
                )),
                Err(e) => failures.push(format!("{case}: {}: {e}", request.show())),
            }
        }
    }
    // Control characters other than NUL, and JSON that Postgres stores, are fine filters.
    for v in [
        "%01%02%1F%7F",
        "%0D%0A",
        "%22%5Cu0001%22",
        "%E2%80%AE",
        "%EF%BF%BF",
        "%22%5Cud800%22",
    ] {
        let request = req(
            "GET",
            format!("/game_lobby/quad/open_games?settings.mode={v}"),
        );
        match send(&app, &request).await {
            Ok(a) if a.status == 200 && a.json() == Some(json!([])) => {}
            Ok(a) => failures.push(format!("{}: {} {}", request.show(), a.status, a.text())),
            Err(e) => failures.push(format!("{}: {e}", request.show())),
        }
    }
    report("settings filter cases", failures);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn paging_values_postgres_cannot_store_are_a_400(db: PgPool) {
    let app = spawn_app(db).await;
    let player = token("bob");
    let mut failures = Vec::new();
    for (what, v) in UNSTORABLE.iter().chain(&[
        ("a digit then NUL", "1%00"),
        ("a NUL then a digit", "%001"),
        ("control characters", "%01%1F"),
        ("JSON", "%22%5Cu0000%22"),
        ("60 KB of x", &*"x".repeat(60_000).leak()),
    ]) {
        for name in ["count", "page"] {
            for request in [
                req("GET", format!("/game_lobby/exrps/open_games?{name}={v}")),
                req(
                    "GET",
                    format!("/game_lobby/exrps/open_games/stream?{name}={v}"),
                )
                .bearer(&player),
            ] {
                match send(&app, &request)
                    .await
                    .and_then(|a| problem_detail(&a, Some(400)))
                {
                    Ok(detail) if detail == PAGING => {}
                    Ok(detail) => {
                        failures.push(format!("{name} {what}: {}: {detail:?}", request.show()))
                    }
                    Err(e) => failures.push(format!("{name} {what}: {}: {e}", request.show())),
                }
            }
        }
    }
    report("paging cases", failures);
}

/// Path segments, percent-encoded as sent.
fn hostile_segments() -> Vec<(&'static str, String)> {
    let mut segments: Vec<(&'static str, String)> = UNSTORABLE
        .iter()
        .map(|(what, v)| (*what, v.to_string()))
        .collect();
    segments.extend([
        ("control characters", "%01%02%1F%7F".to_string()),
        ("CR LF", "a%0D%0Ab".to_string()),
        ("a JSON \\u0000", "%22%5Cu0000%22".to_string()),
        ("10 KB", "a".repeat(10_000)),
        ("10 KB of NUL", "%00".repeat(3_400)),
        ("dot segments", "..%2F..%2Fetc%2Fpasswd".to_string()),
        ("a percent sign", "%25".to_string()),
    ]);
    segments
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn path_segments_postgres_cannot_store_are_a_400_naming_the_segment(db: PgPool) {
    let app = spawn_app(db).await;
    let player = token("bob");
    let id = app.open_game("exrps", "alice").await;
    let mut failures = Vec::new();
    let check = |failures: &mut Vec<String>,
                 case: String,
                 request: Req,
                 answer: Result<Answer, String>,
                 want: (u16, &str)| {
        match answer.and_then(|a| problem_detail(&a, Some(want.0))) {
            Ok(detail) if detail == want.1 => {}
            Ok(detail) => failures.push(format!("{case}: {}: detail {detail:?}", request.show())),
            Err(e) => failures.push(format!("{case}: {}: {e}", request.show())),
        }
    };
    for (what, seg) in hostile_segments() {
        let invalid_utf8 = UNSTORABLE[3..].iter().any(|(_, v)| *v == seg);
        // the product segment: unknown on every route that checks it
        for (method, path) in [
            ("POST", format!("/game_lobby/{seg}/create_game")),
            ("POST", format!("/game_lobby/{seg}/quick_match")),
            ("POST", format!("/game_lobby/{seg}/join_game/{id}")),
            ("GET", format!("/game_lobby/{seg}/games/{id}")),
            ("POST", format!("/game_lobby/{seg}/leave_game/{id}")),
            ("POST", format!("/game_lobby/{seg}/join_by_code/ABCDEF")),
            ("GET", format!("/game_lobby/{seg}/open_games/stream")),
            ("POST", format!("/game_servers/{seg}/events")),
        ] {
            let request = req(method, path).bearer(&player);
            let answer = send(&app, &request).await;
            check(
                &mut failures,
                format!("product {what}"),
                request,
                answer,
                (400, INVALID_PRODUCT),
            );
        }
        // open_games: an unknown product is an empty list, but a segment that is not UTF-8
        // cannot name any product and is a 400
        let request = req("GET", format!("/game_lobby/{seg}/open_games"));
        let answer = send(&app, &request).await;
        if invalid_utf8 {
            check(
                &mut failures,
                format!("open_games product {what}"),
                request,
                answer,
                (400, INVALID_PRODUCT),
            );
        } else {
            match answer {
                Ok(a) if a.status == 200 && a.json() == Some(json!([])) => {}
                Ok(a) => failures.push(format!(
                    "open_games product {what}: {}: {} {}",
                    request.show(),
                    a.status,
                    a.text()
                )),
                Err(e) => failures.push(format!(
                    "open_games product {what}: {}: {e}",
                    request.show()
                )),
            }
        }
        // the game id: named as such (with a valid token: product, then token, then the rest)
        for (method, path) in [
            ("POST", format!("/game_lobby/exrps/join_game/{seg}")),
            ("GET", format!("/game_lobby/exrps/games/{seg}")),
            ("POST", format!("/game_lobby/exrps/leave_game/{seg}")),
        ] {
            let request = req(method, path).bearer(&player);
            let answer = send(&app, &request).await;
            check(
                &mut failures,
                format!("game id {what}"),
                request,
                answer,
                (400, INVALID_GAME_ID),
            );
        }
        let request = req("POST", format!("/game_lobby/exrps/join_by_code/{seg}")).bearer(&player);
        let answer = send(&app, &request).await;
        check(
            &mut failures,
            format!("join code {what}"),
            request,
            answer,
            (400, INVALID_CODE),
        );
        // without a token, authentication still comes first for a valid product
        let request = req("POST", format!("/game_lobby/exrps/join_game/{seg}"));
        let answer = send(&app, &request).await;
        check(
            &mut failures,
            format!("game id {what}, no token"),
            request,
            answer,
            (401, "Game Lobby: Not authorized."),
        );
    }
    report("path segment cases", failures);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn huge_and_odd_values_are_never_a_5xx(db: PgPool) {
    let app = spawn_app(db).await;
    let player = token("bob");
    let id = app.open_game("exrps", "alice").await;
    // 60 KB: a URI of 64 KiB or more is refused by hyper itself (414, see below)
    let big = "x".repeat(60_000);
    let big_digits = "9".repeat(60_000);
    let many_filters: Vec<String> = (0..3_000).map(|i| format!("settings.k{i}=v")).collect();
    let many_filters = many_filters.join("&");
    let mut requests = vec![
        // 100 KB query values
        (
            req(
                "GET",
                format!("/game_lobby/exrps/open_games?settings.mode={big}"),
            ),
            Some(400),
        ),
        (
            req(
                "GET",
                format!("/game_lobby/exrps/open_games?settings.{big}=1"),
            ),
            Some(400),
        ),
        (
            req(
                "GET",
                format!("/game_lobby/exrps/open_games?count={big_digits}"),
            ),
            Some(200),
        ),
        (
            req(
                "GET",
                format!("/game_lobby/exrps/open_games?page={big_digits}"),
            ),
            Some(200),
        ),
        (
            req(
                "GET",
                format!("/game_lobby/exrps/open_games?unrelated={big}"),
            ),
            Some(200),
        ),
        (
            req("GET", format!("/game_lobby/exrps/open_games?{big}")),
            Some(200),
        ),
        (
            req(
                "GET",
                format!("/game_lobby/exrps/open_games?{many_filters}"),
            ),
            Some(400),
        ),
        (
            req(
                "GET",
                format!("/game_lobby/exrps/open_games/stream?access_token={big}"),
            ),
            Some(401),
        ),
        (
            req(
                "GET",
                format!("/game_lobby/exrps/open_games/stream?settings.mode={big}"),
            )
            .bearer(&player),
            Some(400),
        ),
        // 10 KB path segments
        (
            req(
                "GET",
                format!("/game_lobby/{}/open_games", "p".repeat(10_000)),
            ),
            Some(200),
        ),
        (
            req(
                "POST",
                format!("/game_lobby/exrps/join_game/{}", "a".repeat(10_000)),
            )
            .bearer(&player),
            Some(400),
        ),
        (
            req(
                "POST",
                format!("/game_lobby/exrps/join_by_code/{}", "A".repeat(10_000)),
            )
            .bearer(&player),
            Some(400),
        ),
        (req("GET", format!("/{}", "z".repeat(10_000))), Some(404)),
        // headers
        (
            req("POST", "/game_lobby/exrps/create_game")
                .header("Authorization", format!("Bearer {big}")),
            Some(401),
        ),
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .header("Idempotency-Key", &big),
            Some(400),
        ),
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .header("X-Forwarded-For", "garbage, 999.1.1.1, ::g"),
            None,
        ),
        (
            req("POST", format!("/game_lobby/exrps/join_game/{id}"))
                .bearer(&player)
                .header("X-Request-Id", "a".repeat(8_000)),
            None,
        ),
        // wrong JSON types in bodies
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .json(r#"{"private":"true"}"#),
            Some(400),
        ),
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .json(r#"{"private":1}"#),
            Some(400),
        ),
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .json(r#"{"private":"\u0000"}"#),
            Some(400),
        ),
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .json(r#"{"private":[true]}"#),
            Some(400),
        ),
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .json(r#"{"private":{"\u0000":true}}"#),
            Some(400),
        ),
        (
            req("POST", "/game_lobby/exrps/quick_match")
                .bearer(&player)
                .json(r#"{"private":"\u0000"}"#),
            None,
        ),
    ];
    // a body nested deeper than any parser's recursion limit
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    requests.push((
        req("POST", "/game_lobby/exrps/create_game")
            .bearer(&player)
            .json(&deep),
        None,
    ));
    requests.push((
        req("POST", "/game_servers/exrps/events")
            .bearer(EVENT_KEY)
            .json(&deep),
        Some(400),
    ));
    let mut failures = Vec::new();
    for (request, want) in &requests {
        match send(&app, request).await {
            Ok(a) => {
                let checked = match want {
                    Some(s) if *s < 300 => {
                        if a.status == *s {
                            Ok(())
                        } else {
                            Err(format!("expected {s}, got {} {}", a.status, a.text()))
                        }
                    }
                    Some(s) => problem_detail(&a, Some(*s)).map(|_| ()),
                    None => never_a_5xx(&a),
                };
                if let Err(e) = checked {
                    failures.push(format!("{}: {e}", request.show()));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", request.show())),
        }
    }
    report("huge and odd values", failures);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn idempotency_keys_that_are_not_visible_ascii_are_a_400_naming_the_header(db: PgPool) {
    let app = spawn_app(db).await;
    let player = token("bob");
    let keys: Vec<(&str, Vec<u8>)> = vec![
        ("obs-text bytes", b"\xFF\xFE".to_vec()),
        ("a byte above 0x7F inside", b"key-\x80-1".to_vec()),
        ("UTF-8 text", "cl\u{e9}-\u{1f600}".as_bytes().to_vec()),
        ("a tab inside", b"key\t1".to_vec()),
        ("a space inside", b"key 1".to_vec()),
        ("256 characters", vec![b'k'; 256]),
        ("10 KB", vec![b'k'; 10_000]),
    ];
    let mut failures = Vec::new();
    for (case, key) in &keys {
        for path in [
            "/game_lobby/exrps/create_game",
            "/game_lobby/exrps/quick_match",
        ] {
            let request = req("POST", path)
                .bearer(&player)
                .header("Idempotency-Key", key);
            match send(&app, &request)
                .await
                .and_then(|a| problem_detail(&a, Some(400)))
            {
                Ok(d) if d == INVALID_KEY => {}
                Ok(d) => failures.push(format!("{case}: {}: detail {d:?}", request.show())),
                Err(e) => failures.push(format!("{case}: {}: {e}", request.show())),
            }
        }
    }
    // Idempotency-Key twice is refused as malformed too: which one would the retry match?
    let request = req("POST", "/game_lobby/exrps/create_game")
        .bearer(&player)
        .header("Idempotency-Key", "first")
        .header("Idempotency-Key", "second");
    match send(&app, &request)
        .await
        .and_then(|a| problem_detail(&a, Some(400)))
    {
        Ok(d) if d == INVALID_KEY => {}
        Ok(d) => failures.push(format!("two keys: detail {d:?}")),
        Err(e) => failures.push(format!("two keys: {e}")),
    }
    report("Idempotency-Key cases", failures);
}

// ---------------------------------------------------------------------------------------------
// Events.

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn http_events_postgres_cannot_store_are_malformed_naming_the_field(db: PgPool) {
    let app = spawn_app(db).await;
    let game = app.create("exrps", "alice").await;
    let id = game["game_id"].as_str().unwrap().to_string();
    let sc = |field: &str, value: Value| {
        let mut e = json!({"type": "state_change", "product_id": "exrps", "game_id": id, "new_state": "creator_joined"});
        e[field] = value;
        e
    };
    let pd = |value: Value| json!({"type": "player_disconnect", "game_id": id, "player_id": value});
    // (event, the field its `detail` must name)
    let cases: Vec<(Value, &str)> = vec![
        (sc("game_id", json!(format!("{id}\u{0}"))), "game_id"),
        (sc("game_id", json!("\u{0}")), "game_id"),
        (sc("new_state", json!("creator_joined\u{0}")), "new_state"),
        (sc("product_id", json!("exrps\u{0}")), "product_id"),
        (sc("type", json!("state_change\u{0}")), "type"),
        (pd(json!("bob\u{0}")), "player_id"),
        (pd(json!("\u{0}")), "player_id"),
        (
            json!({"type": "game_removed", "game_id": format!("\u{0}{id}")}),
            "game_id",
        ),
        // wrong types
        (sc("game_id", json!({"id": id})), "game_id"),
        (sc("game_id", json!([id])), "game_id"),
        (sc("game_id", json!(42)), "game_id"),
        (sc("new_state", json!(["creator_joined"])), "new_state"),
        (sc("new_state", json!(true)), "new_state"),
        (pd(json!({"id": "bob"})), "player_id"),
        (sc("type", json!(["state_change"])), "type"),
        // huge values
        (pd(json!("b".repeat(10_000))), "player_id"),
        (sc("product_id", json!("p".repeat(10_000))), "product_id"),
        (sc("game_id", json!("a".repeat(10_000))), "game_id"),
        // a NUL in a key: the field it spells is missing
        (
            json!({"type": "state_change", "game_id\u{0}": id, "new_state": "creator_joined"}),
            "game_id",
        ),
    ];
    let events: Vec<Value> = cases.iter().map(|(e, _)| e.clone()).collect();
    // and the good event last: it applies in the same request
    let mut body = events.clone();
    body.push(sc("new_state", json!("creator_joined")));
    let res = app.events("exrps", Value::Array(body)).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let answer: Value = res.json().await.unwrap();
    let results = answer["results"].as_array().unwrap();
    let mut failures = Vec::new();
    for (i, (event, field)) in cases.iter().enumerate() {
        let r = &results[i];
        let detail = r["detail"].as_str().unwrap_or_default();
        if r["index"] != i || r["outcome"] != "malformed" || !detail.contains(field) {
            let shown: String = event.to_string().chars().take(120).collect();
            failures.push(format!("{shown}: {r} (detail must name `{field}`)"));
        }
    }
    let last = &results[cases.len()];
    if last["outcome"] != "applied" || answer["applied"] != 1 {
        failures.push(format!("the good event after them: {answer}"));
    }
    // Each alone, too (a request of one event takes the same path as the stream's single entries).
    for (event, field) in &cases {
        let res = app.events("exrps", event.clone()).await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let r = &body["results"][0];
        if status != 200
            || r["outcome"] != "malformed"
            || !r["detail"].as_str().unwrap_or_default().contains(field)
        {
            let shown: String = event.to_string().chars().take(120).collect();
            failures.push(format!("alone: {shown}: {status} {body}"));
        }
    }
    // Control characters other than NUL are stored text: not malformed, never a 5xx.
    for value in ["bob\u{1}", "\u{1b}[2J", "tab\t", "\u{7f}"] {
        let res = app.events("exrps", pd(json!(value))).await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status != 200 || body["results"][0]["outcome"] != "invalid_transition" {
            failures.push(format!("player_id {value:?}: {status} {body}"));
        }
    }
    report("malformed event cases", failures);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn http_event_bodies_that_are_not_json_are_a_400(db: PgPool) {
    let app = spawn_app(db).await;
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (
            "invalid UTF-8 in a string",
            b"{\"type\":\"game\xFFplay\"}".to_vec(),
        ),
        ("invalid UTF-8 outside strings", b"\xFF\xFE".to_vec()),
        (
            "a raw NUL in a string",
            b"{\"type\":\"game\0play\"}".to_vec(),
        ),
        (
            "a raw NUL after the JSON",
            b"{\"type\":\"gameplay\"}\0".to_vec(),
        ),
        (
            "a lone surrogate",
            br#"{"type":"gameplay","x":"\ud800"}"#.to_vec(),
        ),
        (
            "a number out of range",
            br#"{"type":"gameplay","x":1e400}"#.to_vec(),
        ),
        ("a string", br#""state_change""#.to_vec()),
        ("null", b"null".to_vec()),
        ("empty", b"".to_vec()),
        ("truncated", br#"[{"type":"#.to_vec()),
        (
            "1001 events",
            format!("[{}]", vec![r#"{"type":"gameplay"}"#; 1001].join(",")).into_bytes(),
        ),
    ];
    let mut failures = Vec::new();
    for (case, body) in &bodies {
        let request = req("POST", "/game_servers/exrps/events")
            .bearer(EVENT_KEY)
            .json(body);
        if let Err(e) = send(&app, &request)
            .await
            .and_then(|a| problem_detail(&a, Some(400)))
        {
            failures.push(format!("{case}: {e}"));
        }
    }
    report("event body cases", failures);
}

fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .expect("REDIS_URL must name a Redis server for the stream tests (make test starts one)")
}

/// The value of one metric line, 0 when absent.
async fn metric(app: &TestApp, series: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn stream_entries_postgres_cannot_store_are_malformed_and_do_not_stall_it(db: PgPool) {
    let key = format!("test_stream_{}", uuid::Uuid::new_v4().simple());
    // Two games made without a reader, then the entries, then the reader: one batch.
    let writer = spawn_app(db.clone()).await;
    let first = writer.create("exrps", "alice").await["game_id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = writer.create("exrps", "bob").await["game_id"]
        .as_str()
        .unwrap()
        .to_string();
    writer.stop().await;

    let f = first.as_bytes();
    let long = vec![b'p'; 10_000];
    let f_nul = [f, &b"\0"[..]].concat();
    let malformed: Vec<Vec<(&str, &[u8])>> = vec![
        vec![
            ("type", b"state_change"),
            ("product_id", b"exrps\0"),
            ("game_id", f),
            ("new_state", b"creator_joined"),
        ],
        vec![
            ("type", b"state_change"),
            ("product_id", b"exrps"),
            ("game_id", &f_nul),
            ("new_state", b"creator_joined"),
        ],
        vec![
            ("type", b"state_change"),
            ("product_id", b"exrps"),
            ("game_id", f),
            ("new_state", b"creator_joined\0"),
        ],
        vec![
            ("type", b"state_change\0"),
            ("product_id", b"exrps"),
            ("game_id", f),
            ("new_state", b"creator_joined"),
        ],
        vec![
            ("type", b"player_disconnect"),
            ("product_id", b"exrps"),
            ("game_id", f),
            ("player_id", b"bob\0"),
        ],
        vec![
            ("type", b"player_disconnect"),
            ("product_id", b"exrps"),
            ("game_id", f),
            ("player_id", &long),
        ],
        vec![
            ("type", b"state_change"),
            ("product_id", b"exrps\xFF"),
            ("game_id", f),
            ("new_state", b"creator_joined"),
        ],
        vec![
            ("type", b"\xFF\xFE"),
            ("product_id", b"exrps"),
            ("game_id", f),
        ],
        vec![
            ("type", b"game_removed"),
            ("product_id", b"exrps"),
            ("game_id", b"\xC0\x80"),
        ],
    ];
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for fields in &malformed {
        let _: String = conn.xadd(&key, "*", fields.as_slice()).await.unwrap();
    }
    let ignored: &[(&str, &[u8])] = &[
        ("type", b"gameplay"),
        ("product_id", b"exrps"),
        ("payload", b"a\0b\xFF"),
    ];
    let _: String = conn.xadd(&key, "*", ignored).await.unwrap();
    // a run of two state changes (applied in one statement), after the malformed ones
    for id in [&first, &second] {
        let fields: &[(&str, &[u8])] = &[
            ("type", b"state_change"),
            ("product_id", b"exrps"),
            ("game_id", id.as_bytes()),
            ("new_state", b"creator_joined"),
        ];
        let _: String = conn.xadd(&key, "*", fields).await.unwrap();
    }

    let stub = GameServerStub::start().await;
    let extra = format!(
        "event_stream_url = \"{}\"\nevent_stream_key = \"{key}\"",
        redis_url()
    );
    let s = settings(&stub, &extra);
    let app = spawn_with(db, stub, s).await;
    let series = |outcome: &str| {
        format!(r#"matchmaker_events_total{{intake="stream",outcome="{outcome}"}}"#)
    };
    eventually("the reader has applied the whole stream", || async {
        metric(&app, &series("applied")).await == 2
    })
    .await;
    assert_eq!(
        metric(&app, &series("malformed")).await,
        malformed.len() as u64
    );
    assert_eq!(metric(&app, &series("ignored")).await, 1);
    let mut listed = app.open_ids("exrps", "").await;
    listed.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(listed, expected);
}

// ---------------------------------------------------------------------------------------------
// The framework's own rejections.

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn every_error_answer_is_a_problem_document(db: PgPool) {
    let app = spawn_app(db).await;
    let player = token("bob");
    let id = app.open_game("exrps", "alice").await;
    let over_limit = vec![b'x'; 70_000]; // max_body_bytes is 64 KiB by default
    let table: Vec<(Req, u16)> = vec![
        // path decoding
        (req("GET", "/game_lobby/%FF%FE/open_games"), 400),
        (req("GET", "/game_lobby/%C0%80/open_games"), 400),
        (
            req("GET", "/game_lobby/%FF%FE/open_games/stream").bearer(&player),
            400,
        ),
        (
            req("POST", "/game_lobby/%FF/create_game").bearer(&player),
            400,
        ),
        (
            req("POST", "/game_lobby/exrps/join_game/%FF%FE").bearer(&player),
            400,
        ),
        (
            req("GET", "/game_lobby/exrps/games/%ED%A0%80").bearer(&player),
            400,
        ),
        (
            req("POST", "/game_lobby/exrps/leave_game/%FF").bearer(&player),
            400,
        ),
        (
            req("POST", "/game_lobby/exrps/join_by_code/%FF").bearer(&player),
            400,
        ),
        (
            req("POST", "/game_servers/%FF/events")
                .bearer(EVENT_KEY)
                .json("{}"),
            400,
        ),
        // query decoding
        (req("GET", "/game_lobby/exrps/open_games?count=%FF"), 400),
        (req("GET", "/game_lobby/exrps/open_games?page=%00"), 400),
        (
            req("GET", "/game_lobby/exrps/open_games?settings.mode=%00"),
            400,
        ),
        (
            req("GET", "/game_lobby/exrps/open_games?settings.%00=1"),
            400,
        ),
        (
            req(
                "GET",
                "/game_lobby/exrps/open_games?settings.mode=%22%5Cu0000%22",
            ),
            400,
        ),
        (
            req("GET", "/game_lobby/exrps/open_games?settings.mode=%FF"),
            400,
        ),
        (
            req(
                "GET",
                "/game_lobby/exrps/open_games/stream?settings.mode=%00",
            )
            .bearer(&player),
            400,
        ),
        (
            req(
                "GET",
                "/game_lobby/exrps/open_games/stream?access_token=%FF%00",
            ),
            401,
        ),
        // 404 fallbacks, everywhere
        (req("GET", "/nope"), 404),
        (req("GET", "/%FF"), 404),
        (req("GET", "/%00"), 404),
        (req("GET", "//healthz"), 404),
        (req("GET", "/healthz/"), 404),
        (req("GET", "/game_lobby/exrps/open_games/%FF"), 404),
        (req("GET", "/game_lobby/exrps"), 404),
        (req("GET", "/swagger-ui/..%2f..%2fetc%2fpasswd"), 404),
        (req("GET", "/swagger-ui/../../etc/passwd"), 404),
        (req("GET", "/swagger-ui/nope.js"), 404),
        (req("GET", "/swagger-ui/%FF"), 400),
        (req("GET", "/swagger-ui/%00"), 404),
        (req("GET", "/api-docs/nope"), 404),
        (req("GET", "/api-docs/openapi.json/x"), 404),
        (req("GET", "/api-docs/%FF"), 404),
        (req("GET", "/lobby/nope.js"), 404),
        (req("GET", "/lobby/%FF"), 404),
        // 405 fallbacks, everywhere
        (req("DELETE", "/game_lobby/exrps/create_game"), 405),
        (req("GET", "/game_lobby/exrps/create_game"), 405),
        (req("GET", format!("/game_lobby/exrps/join_game/{id}")), 405),
        (req("POST", "/game_lobby/exrps/open_games"), 405),
        (req("PUT", "/healthz"), 405),
        (req("POST", "/metrics"), 405),
        (req("POST", "/api-docs/openapi.json"), 405),
        (req("DELETE", "/api-docs/openapi.json"), 405),
        (req("POST", "/swagger-ui/"), 405),
        (req("POST", "/swagger-ui/index.html"), 405),
        (req("POST", "/"), 405),
        (req("POST", "/lobby/app.js"), 405),
        (req("GET", "/game_servers/exrps/events"), 405),
        // 413, declared and not
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .body(&over_limit),
            413,
        ),
        (
            req("POST", "/game_servers/exrps/events")
                .bearer(EVENT_KEY)
                .json(&over_limit),
            413,
        ),
        (
            req("POST", "/game_lobby/exrps/quick_match")
                .bearer(&player)
                .body(&over_limit),
            413,
        ),
        // bodies that are not what the route takes
        (
            req("POST", "/game_servers/exrps/events")
                .bearer(EVENT_KEY)
                .json("{not json"),
            400,
        ),
        (
            req("POST", "/game_servers/exrps/events")
                .bearer(EVENT_KEY)
                .json(b"\xFF"),
            400,
        ),
        (
            req("POST", "/game_servers/exrps/events")
                .bearer(EVENT_KEY)
                .json("42"),
            400,
        ),
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .json(r#"{"private":"\u0000"}"#),
            400,
        ),
        // repeated and odd headers
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .header("Authorization", "Bearer forged.forged.forged"),
            401,
        ),
        (
            req("POST", "/game_lobby/exrps/create_game")
                .header("Authorization", b"Bearer \xFF\xFE"),
            401,
        ),
        (
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .header("Idempotency-Key", b"\xFF"),
            400,
        ),
        (
            req("POST", "/game_servers/exrps/events")
                .header("Authorization", b"Bearer \xFF")
                .json("{}"),
            401,
        ),
    ];
    let mut failures = Vec::new();
    for (request, status) in &table {
        if let Err(e) = send(&app, request)
            .await
            .and_then(|a| problem_detail(&a, Some(*status)))
        {
            failures.push(format!("{}: {e}", request.show()));
        }
    }
    report("error answers", failures);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn requests_hyper_cannot_parse_get_a_4xx_and_the_server_goes_on(db: PgPool) {
    // These never reach the router: hyper answers them itself (a bare 400, 414 for a URI of 64 KiB
    // or more, 431) or closes the
    // connection, and its answer cannot be shaped. Nothing of them may be a 5xx or stop the
    // server.
    let app = spawn_app(db).await;
    let player = token("bob");
    let cases: Vec<(&str, Req)> = vec![
        (
            "a raw NUL in the query",
            req("GET", b"/game_lobby/exrps/open_games?settings.mode=\0"),
        ),
        (
            "a raw NUL in the path",
            req("GET", b"/game_lobby/ex\0rps/open_games"),
        ),
        (
            "a raw 0xFF in the path",
            req("GET", b"/game_lobby/\xFF/open_games"),
        ),
        (
            "a raw space in the path",
            req("GET", b"/game_lobby/ex rps/open_games"),
        ),
        (
            "a NUL in a header value",
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .header("Idempotency-Key", b"a\0b"),
        ),
        (
            "a control character in a header value",
            req("POST", "/game_lobby/exrps/create_game")
                .bearer(&player)
                .header("Idempotency-Key", b"a\x01b"),
        ),
        (
            "a NUL in the token",
            req("POST", "/game_lobby/exrps/create_game")
                .header("Authorization", format!("Bearer {player}\0")),
        ),
        (
            "a NUL in a header name",
            req("GET", "/healthz").header("X-\0", "1"),
        ),
        (
            "two different Content-Lengths",
            req("POST", "/game_servers/exrps/events")
                .bearer(EVENT_KEY)
                .header("Content-Length", "1")
                .json("{}"),
        ),
        (
            "a 500 KB header",
            req("GET", "/healthz").header("X-Big", "b".repeat(500_000)),
        ),
        (
            "a 100 KB query value",
            req(
                "GET",
                format!(
                    "/game_lobby/exrps/open_games?settings.mode={}",
                    "x".repeat(100_000)
                ),
            ),
        ),
        (
            "a 100 KB path",
            req(
                "GET",
                format!("/game_lobby/{}/open_games", "p".repeat(100_000)),
            ),
        ),
        (
            "200 headers",
            (0..200).fold(req("GET", "/healthz"), |r, i| {
                r.header(&format!("X-{i}"), "1")
            }),
        ),
    ];
    let mut failures = Vec::new();
    for (case, request) in &cases {
        match send(&app, request).await {
            Ok(a) if (400..500).contains(&a.status) => {}
            Ok(a) => failures.push(format!("{case}: {} {}", a.status, a.text())),
            Err(e) if e.starts_with("connection closed") => {}
            Err(e) => failures.push(format!("{case}: {e}")),
        }
    }
    let healthy = send(&app, &req("GET", "/healthz")).await.unwrap();
    assert_eq!(healthy.status, 200);
    report("unparseable requests", failures);
}
