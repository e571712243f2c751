use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{SECRET, problem, spawn_app};

const BAD: &str = "Game Lobby: Unable to fetch user profile for user. Relog may be required.";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(claims: Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn create_with(app: &crate::helpers::TestApp, authorization: &str) -> (u16, String) {
    let res = app
        .http
        .post(format!("{}/game_lobby/exrps/create_game", app.base))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    if res.status() == 200 {
        return (200, String::new());
    }
    problem(res).await
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn product_is_checked_before_authentication(db: PgPool) {
    let app = spawn_app(db).await;
    let res = app.post("/game_lobby/nope/create_game", None).await;
    assert_eq!(
        problem(res).await,
        (400, "Game Lobby: Invalid product ID.".into())
    );
    let res = app.post("/game_lobby/nope/join_game/abc", None).await;
    assert_eq!(
        problem(res).await,
        (400, "Game Lobby: Invalid product ID.".into())
    );
    let res = app.post("/game_lobby/exrps/create_game", None).await;
    assert_eq!(
        problem(res).await,
        (401, "Game Lobby: Not authorized.".into())
    );
    // authentication comes before the game lookup
    let res = app.post("/game_lobby/exrps/join_game/abc", None).await;
    assert_eq!(
        problem(res).await,
        (401, "Game Lobby: Not authorized.".into())
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn tokens_are_checked_as_the_portal_issues_them(db: PgPool) {
    let app = spawn_app(db).await;
    let good =
        json!({"user_id": "u-1", "username": "ann", "exp": now() + 60, "token_type": "access"});
    let ok = sign(good.clone(), SECRET);
    assert_eq!(create_with(&app, &format!("Bearer {ok}")).await.0, 200);
    assert_eq!(create_with(&app, &format!("Token {ok}")).await.0, 200);
    // extra spaces and a lowercase scheme are tolerated (the token itself decides)
    assert_eq!(create_with(&app, &format!("  bearer   {ok} ")).await.0, 200);
    // numeric user ids become their decimal text
    let numeric = sign(json!({"user_id": 42, "username": "num"}), SECRET);
    assert_eq!(create_with(&app, &format!("Bearer {numeric}")).await.0, 200);
    let last = app.stub.calls("create_game").pop().unwrap();
    assert_eq!(last["userId"], "42");

    let mut refused = vec![
        ("empty", String::new()),
        ("scheme only", "Bearer".to_string()),
        ("other scheme", format!("Basic {ok}")),
        ("garbage", "Bearer not.a.jwt".to_string()),
        (
            "wrong secret",
            format!("Bearer {}", sign(good.clone(), "other")),
        ),
        (
            "expired",
            format!(
                "Bearer {}",
                sign(
                    json!({"user_id": "u", "username": "n", "exp": now() - 5}),
                    SECRET
                )
            ),
        ),
        (
            "not yet valid",
            format!(
                "Bearer {}",
                sign(
                    json!({"user_id": "u", "username": "n", "nbf": now() + 600}),
                    SECRET
                )
            ),
        ),
        (
            "refresh token",
            format!(
                "Bearer {}",
                sign(
                    json!({"user_id": "u", "username": "n", "token_type": "refresh"}),
                    SECRET
                )
            ),
        ),
        (
            "no user_id",
            format!("Bearer {}", sign(json!({"username": "n"}), SECRET)),
        ),
        (
            "no username",
            format!("Bearer {}", sign(json!({"user_id": "u"}), SECRET)),
        ),
        (
            "user_id of the wrong type",
            format!(
                "Bearer {}",
                sign(json!({"user_id": {"a": 1}, "username": "n"}), SECRET)
            ),
        ),
    ];
    // alg none and another HMAC algorithm
    let none_token = {
        use base64_helpers::b64;
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(good.to_string().as_bytes())
        )
    };
    refused.push(("alg none", format!("Bearer {none_token}")));
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &good,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    refused.push(("HS512", format!("Bearer {hs512}")));
    refused.push(("huge", format!("Bearer {}", "a".repeat(20_000))));
    // algorithm confusion: a valid HS256 signature under a header claiming RS256 or ES256
    for alg in ["RS256", "ES256", "HS384"] {
        let (_, rest) = ok.split_once('.').unwrap();
        let header = base64_helpers::b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        refused.push(("header alg swapped", format!("Bearer {header}.{rest}")));
    }
    refused.push(("two tokens", format!("Bearer {ok} {ok}")));
    refused.push(("scheme glued to the token", format!("Bearer{ok}")));
    refused.push(("token without a scheme", ok.clone()));
    refused.push((
        "truncated signature",
        format!("Bearer {}", &ok[..ok.len() - 3]),
    ));

    for (case, header) in refused {
        assert_eq!(
            create_with(&app, &header).await,
            (401, BAD.to_string()),
            "{case}"
        );
    }
}

mod base64_helpers {
    /// URL-safe base64 without padding, as in JWTs.
    pub fn b64(bytes: &[u8]) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn expiry_can_be_required(db: PgPool) {
    let stub = crate::helpers::GameServerStub::start().await;
    let settings = crate::helpers::settings(&stub, "require_token_expiry = true");
    let app = crate::helpers::spawn_with(db, stub, settings).await;
    let no_exp = sign(json!({"user_id": "u", "username": "n"}), SECRET);
    assert_eq!(
        create_with(&app, &format!("Bearer {no_exp}")).await,
        (401, BAD.to_string())
    );
    let with_exp = sign(
        json!({"user_id": "u", "username": "n", "exp": now() + 60}),
        SECRET,
    );
    assert_eq!(
        create_with(&app, &format!("Bearer {with_exp}")).await.0,
        200
    );
}
