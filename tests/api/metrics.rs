use sqlx::PgPool;

use crate::helpers::spawn_app;

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn metrics_reflect_the_traffic(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    assert_eq!(app.join("exrps", &id, "bob").await.status(), 200);
    assert_eq!(app.join("exrps", &id, "carol").await.status(), 409);
    app.create("quad", "dave").await;

    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = res.text().await.unwrap();
    for line in [
        r#"matchmaker_http_requests_total{route="/game_lobby/{product_id}/create_game",method="POST",status="200"} 2"#,
        r#"matchmaker_http_requests_total{route="/game_lobby/{product_id}/join_game/{game_id}",method="POST",status="409"} 1"#,
        r#"matchmaker_lobby_operations_total{operation="join",outcome="ok"} 1"#,
        r#"matchmaker_lobby_operations_total{operation="join",outcome="conflict"} 1"#,
        r#"matchmaker_lobby_operations_total{operation="create",outcome="ok"} 2"#,
        r#"matchmaker_game_server_calls_total{product="exrps",call="join_game",outcome="ok"} 1"#,
        r#"matchmaker_game_server_calls_total{product="quad",call="create_game",outcome="ok"} 1"#,
        r#"matchmaker_events_total{intake="http",outcome="applied"} 1"#,
        r#"matchmaker_games{product="exrps",state="creator_joined"} 1"#,
        r#"matchmaker_games{product="quad",state="created"} 1"#,
        r#"matchmaker_games{product="closed",state="created"} 0"#,
        "matchmaker_outbox_pending 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    assert!(text.contains("matchmaker_http_request_duration_seconds_bucket"));
    assert!(text.contains("matchmaker_game_server_call_duration_seconds_count"));
    assert!(text.contains("matchmaker_db_pool_connections"));
    assert!(!text.contains(&id), "no raw ids in labels");
}
