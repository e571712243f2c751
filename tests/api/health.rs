use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::spawn_app;

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn health_readiness_and_docs(db: PgPool) {
    let app = spawn_app(db).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let res = app.get("/api-docs/openapi.json").await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    for path in [
        "/game_lobby/{product_id}/create_game",
        "/game_lobby/{product_id}/join_game/{game_id}",
        "/game_lobby/{product_id}/open_games",
        "/game_servers/{product_id}/events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let ui = app.get("/swagger-ui/").await;
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
    let res = app.get("/no/such/route").await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = app.get("/game_lobby/exrps/create_game").await;
    assert_eq!(res.status(), 405);
    let (id, echoed) = (
        "req-123",
        app.http
            .get(format!("{}/healthz", app.base))
            .header("x-request-id", "req-123")
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(echoed.headers()["x-request-id"], id);
    app.stop().await;
}
