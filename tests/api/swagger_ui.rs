//! Swagger UI in a real browser: every documented operation is listed, and "Try it out" on the
//! open-games route answers 200 with the lobby as a JSON array.

use std::collections::BTreeSet;

use fantoccini::Locator;
use serde_json::Value;
use sqlx::PgPool;

use crate::{
    browser::{Browser, screenshot_path, wait_for},
    helpers::spawn_app,
};

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn swagger_ui_lists_every_operation_and_tries_open_games(db: PgPool) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = spawn_app(db).await;
    let game_id = app.open_game("exrps", "alice").await;

    let spec: Value = app
        .get("/api-docs/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    assert!(documented.len() >= 6, "{documented:?}");

    let page = browser.session().await;
    page.goto(&format!("{}/swagger-ui/", app.base))
        .await
        .unwrap();
    let listed: BTreeSet<(String, String)> = wait_for("the operations to render", || async {
        let found = page
            .execute(
                "return [...document.querySelectorAll('.opblock')].map(op => [
                    op.querySelector('.opblock-summary-method').textContent,
                    op.querySelector('.opblock-summary-path').getAttribute('data-path')])",
                vec![],
            )
            .await
            .ok()?;
        let listed: BTreeSet<(String, String)> = serde_json::from_value(found).ok()?;
        (listed.len() >= documented.len()).then_some(listed)
    })
    .await;
    assert_eq!(listed, documented);

    // Try it out: GET /game_lobby/{product_id}/open_games
    let op = page
        .find(Locator::Css("#operations-lobby-open_games"))
        .await
        .unwrap();
    op.find(Locator::Css(".opblock-summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the Try it out button", || async {
        op.find(Locator::Css(".try-out__btn")).await.ok()
    })
    .await
    .click()
    .await
    .unwrap();
    let product = op
        .find(Locator::Css("tr[data-param-name='product_id'] input"))
        .await
        .unwrap();
    product.clear().await.unwrap();
    product.send_keys("exrps").await.unwrap();
    op.find(Locator::Css("button.execute"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = wait_for("the live response", || async {
        let cell = op
            .find(Locator::Css(
                ".live-responses-table tr.response .response-col_status",
            ))
            .await
            .ok()?;
        let text = cell.text().await.ok()?;
        (!text.trim().is_empty()).then_some(text)
    })
    .await;
    let body = op
        .find(Locator::Css(
            ".live-responses-table tr.response .response-col_description pre",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.execute(
        "document.querySelector('#operations-lobby-open_games .live-responses-table').scrollIntoView()",
        vec![],
    )
    .await
    .unwrap();
    let shot = page.screenshot().await.unwrap();
    std::fs::write(screenshot_path("swagger-ui-open-games.png"), shot).unwrap();
    page.close().await.unwrap();

    assert_eq!(status.trim(), "200");
    let games: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let games = games.as_array().expect("a JSON array");
    assert_eq!(games.len(), 1);
    assert_eq!(games[0]["game_id"], Value::String(game_id));
}
