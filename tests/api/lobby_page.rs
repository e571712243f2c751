//! The lobby page at `/`, end to end in headless Chromium: two players in two browser profiles
//! create, see, join (by click and by code) and leave games, with the list updated live.

use fantoccini::{Client, Locator};
use sqlx::PgPool;

use crate::{
    browser::{Browser, screenshot_path, wait_for},
    helpers::{GameServerStub, settings, spawn_with, token},
};

async fn text(page: &Client, css: &str) -> String {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn click(page: &Client, css: &str) {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits until the element's text satisfies `check`.
async fn wait_text(page: &Client, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    wait_for(what, || async {
        let found = page.find(Locator::Css(css)).await.ok()?;
        let text = found.text().await.ok()?;
        check(&text).then_some(text)
    })
    .await
}

async fn shot(page: &Client, name: &str) {
    let png = page.screenshot().await.unwrap();
    std::fs::write(screenshot_path(name), png).unwrap();
}

/// Whether the open-games table has a row for `game_id`.
async fn listed(page: &Client, game_id: &str) -> bool {
    page.find(Locator::Css(&format!(
        "#games tr[data-game-id='{game_id}']"
    )))
    .await
    .is_ok()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn two_players_create_list_join_and_leave_in_the_browser(db: PgPool) {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let stub = GameServerStub::start().await;
    let app = spawn_with(
        db,
        stub.clone(),
        settings(
            &stub,
            r#"sample_players = [{ user_id = "alice", username = "Alice" }]"#,
        ),
    )
    .await;

    // Alice picks the sample player the server offers
    let alice = browser.session().await;
    alice.goto(&format!("{}/", app.base)).await.unwrap();
    let pick = wait_for("the sample players", || async {
        let select = alice.find(Locator::Css("#sample-player")).await.ok()?;
        select
            .find(Locator::Css("option[value^='ey']"))
            .await
            .ok()?;
        Some(select)
    })
    .await;
    pick.select_by_label("Alice (alice)").await.unwrap();
    wait_text(&alice, "#who", "Alice signed in", |t| {
        t.contains("Alice (alice)")
    })
    .await;
    wait_text(&alice, "#live-status", "Alice's live list", |t| t == "live").await;
    click(&alice, "#create-public").await;
    let game_id = wait_text(&alice, "#my-game-id", "Alice's game", |t| t.len() == 32).await;
    assert_eq!(text(&alice, "#my-players").await, "alice");
    // the stand-in game server does not connect anyone: play its part
    app.set_state("exrps", &game_id, "creator_joined").await;

    // Bob pastes a token; the game shows up in his list live
    let bob = browser.session().await;
    bob.goto(&format!("{}/", app.base)).await.unwrap();
    let field = wait_for("the token field", || async {
        bob.find(Locator::Css("#token")).await.ok()
    })
    .await;
    field.send_keys(&token("bob")).await.unwrap();
    click(&bob, "#use-token").await;
    wait_text(&bob, "#who", "Bob signed in", |t| t.contains("bob")).await;
    wait_for("the game in Bob's list", || async {
        listed(&bob, &game_id).await.then_some(())
    })
    .await;
    shot(&bob, "lobby-1-bob-sees-the-game.png").await;

    // Bob joins by click
    click(
        &bob,
        &format!("#games tr[data-game-id='{game_id}'] button.join"),
    )
    .await;
    wait_text(&bob, "#my-players", "Bob seated", |t| t == "alice, bob").await;
    // the full game leaves both lists, and Alice's page shows Bob
    for page in [&alice, &bob] {
        wait_for("the full game unlisted", || async {
            (!listed(page, &game_id).await).then_some(())
        })
        .await;
    }
    wait_text(&alice, "#my-players", "Alice sees Bob", |t| {
        t == "alice, bob"
    })
    .await;
    shot(&alice, "lobby-2-alice-after-bob-joined.png").await;
    shot(&bob, "lobby-3-bob-in-the-game.png").await;

    // Alice leaves: her game is removed, and Bob's page notices
    click(&alice, "#leave").await;
    wait_text(&alice, "#message", "Alice's game removed", |t| {
        t == "Game removed."
    })
    .await;
    wait_for("Bob's page to drop the removed game", || async {
        let panel = bob.find(Locator::Css("#my-game")).await.ok()?;
        let id = panel.attr("data-game-id").await.ok()??;
        id.is_empty().then_some(())
    })
    .await;

    // a private game, joined by its code
    click(&alice, "#create-private").await;
    let code = wait_text(&alice, "#my-code", "the join code", |t| t.len() == 6).await;
    let private_id = text(&alice, "#my-game-id").await;
    app.set_state("exrps", &private_id, "creator_joined").await;
    assert!(
        !listed(&bob, &private_id).await,
        "private games are not listed"
    );
    bob.find(Locator::Css("#code"))
        .await
        .unwrap()
        .send_keys(&code.to_lowercase())
        .await
        .unwrap();
    click(&bob, "#join-code").await;
    wait_text(&bob, "#my-players", "Bob joined by code", |t| {
        t == "alice, bob"
    })
    .await;
    assert_eq!(text(&bob, "#my-game-id").await, private_id);
    shot(&bob, "lobby-4-bob-joined-by-code.png").await;

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn the_page_and_its_assets_are_served_from_the_binary(db: PgPool) {
    let app = crate::helpers::spawn_app(db).await;
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/lobby/app.js", "text/javascript; charset=utf-8"),
        ("/lobby/app.css", "text/css; charset=utf-8"),
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], kind, "{path}");
    }
    // without sample players configured, no tokens are handed out
    let config: serde_json::Value = app.get("/lobby/config.json").await.json().await.unwrap();
    assert_eq!(config["sample_players"], serde_json::json!([]));
    assert_eq!(config["products"][0]["product_id"], "exrps");
}
