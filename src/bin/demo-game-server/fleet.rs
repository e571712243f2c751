//! `--register`: the demo game server as one instance of its product's fleet.
//!
//! It registers itself with the matchmaker (`POST /game_servers/{product_id}/instances`), retrying
//! with a backoff while the matchmaker is not up; heartbeats every `--heartbeat-ms`; registers
//! again when a heartbeat answers 404 (the matchmaker declared it lost, or it was removed); and on
//! shutdown drains and then deletes itself. Every call carries the product's `event_key`.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::causes;

/// Pause after the first failed registration; doubled after each further one, up to the cap.
const REGISTER_FIRST_BACKOFF: Duration = Duration::from_millis(500);
const REGISTER_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Time limit of the drain and of the delete at shutdown, so a matchmaker that is gone does not
/// hold up the stop for the client's whole timeout (compose waits 10 s before SIGKILL).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the instance tells the matchmaker about itself.
pub struct Instance {
    pub id: String,
    /// Where the matchmaker calls it.
    pub url: String,
    /// Where players connect.
    pub socket_url: String,
    pub capacity: u32,
    pub region: Option<String>,
}

/// The instance's membership of the fleet: its URLs at the matchmaker and its key.
pub struct Fleet {
    http: reqwest::Client,
    event_key: String,
    body: Value,
    id: String,
    /// `.../instances`, `.../instances/{id}`, `.../heartbeat`, `.../drain`.
    register_url: Url,
    instance_url: Url,
    heartbeat_url: Url,
    drain_url: Url,
    heartbeat: Duration,
}

/// How a call to the matchmaker went.
enum Outcome {
    /// A 2xx, with the body as JSON (`null` when empty or not JSON).
    Ok(StatusCode, Value),
    /// Any other status, with the problem's `detail` (or the start of the body).
    Refused(StatusCode, String),
    /// No answer: connection refused, timeout, ...
    Unreachable(String),
}

impl Fleet {
    pub fn new(
        http: reqwest::Client,
        matchmaker: &Url,
        product_id: &str,
        event_key: String,
        instance: Instance,
        heartbeat: Duration,
    ) -> Result<Self, String> {
        let url = |tail: &[&str]| {
            crate::api_url(
                matchmaker,
                &[&["game_servers", product_id, "instances"], tail].concat(),
            )
        };
        let id = instance.id.as_str();
        let mut body = json!({
            "id": instance.id,
            "url": instance.url,
            "socket_url": instance.socket_url,
            "capacity": instance.capacity,
        });
        if let Some(region) = &instance.region {
            body["region"] = region.clone().into();
        }
        Ok(Self {
            register_url: url(&[])?,
            instance_url: url(&[id])?,
            heartbeat_url: url(&[id, "heartbeat"])?,
            drain_url: url(&[id, "drain"])?,
            id: instance.id.clone(),
            http,
            event_key,
            body,
            heartbeat,
        })
    }

    /// Registers and heartbeats until `stop` is cancelled. `forget_games` is called when the
    /// matchmaker declared this instance lost: it ended the instance's games, so they go here too.
    pub async fn run(&self, stop: CancellationToken, forget_games: impl Fn() -> usize) {
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.keep_registered(forget_games) => {}
        }
    }

    async fn keep_registered(&self, forget_games: impl Fn() -> usize) {
        loop {
            self.register().await;
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + self.heartbeat,
                self.heartbeat,
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self
                    .call(Method::POST, &self.heartbeat_url, None, None)
                    .await
                {
                    Outcome::Ok(_, view) => {
                        tracing::debug!(instance = %self.id, state = %field(&view, "state"), games = %field(&view, "games"), "heartbeat");
                    }
                    Outcome::Refused(StatusCode::NOT_FOUND, detail) => {
                        let forgotten = forget_games();
                        tracing::warn!(instance = %self.id, %detail, forgotten, "the matchmaker no longer knows this instance (declared lost?); registering again, empty");
                        break;
                    }
                    Outcome::Refused(status, detail) => {
                        tracing::warn!(instance = %self.id, %status, %detail, "heartbeat refused");
                    }
                    Outcome::Unreachable(error) => {
                        tracing::warn!(instance = %self.id, %error, "heartbeat: could not reach the matchmaker");
                    }
                }
            }
        }
    }

    /// Registers, retrying with a backoff until the matchmaker takes it.
    async fn register(&self) {
        let mut backoff = REGISTER_FIRST_BACKOFF;
        for attempt in 1u32.. {
            let body = Some(&self.body);
            match self
                .call(Method::POST, &self.register_url, body, None)
                .await
            {
                Outcome::Ok(status, view) => {
                    let how = if status == StatusCode::CREATED {
                        "registered"
                    } else {
                        "registered again (the matchmaker knew this instance)"
                    };
                    tracing::info!(instance = %self.id, state = %field(&view, "state"), games = %field(&view, "games"), "{how}");
                    return;
                }
                // A refusal (wrong key, unknown product, bad field) is worth a louder log than
                // a matchmaker that is not up yet; both are retried, the cause may be fixed.
                Outcome::Refused(status, detail) if status.is_client_error() => {
                    tracing::error!(instance = %self.id, attempt, %status, %detail, "the matchmaker refused the registration; retrying in {backoff:?}");
                }
                Outcome::Refused(status, detail) => {
                    tracing::warn!(instance = %self.id, attempt, %status, %detail, "the matchmaker could not take the registration; retrying in {backoff:?}");
                }
                Outcome::Unreachable(error) => {
                    tracing::warn!(instance = %self.id, attempt, %error, "could not reach the matchmaker to register; retrying in {backoff:?}");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(REGISTER_MAX_BACKOFF);
        }
    }

    /// At shutdown: drain (no new games land here), then delete this instance. Once each: the
    /// process is stopping, and a matchmaker that does not hear of it declares the instance lost.
    pub async fn leave(&self) {
        let timeout = Some(LEAVE_TIMEOUT);
        match self
            .call(Method::POST, &self.drain_url, None, timeout)
            .await
        {
            Outcome::Ok(_, view) => {
                tracing::info!(instance = %self.id, games = %field(&view, "games"), "drained");
            }
            Outcome::Refused(status, detail) => {
                tracing::warn!(instance = %self.id, %status, %detail, "drain refused");
            }
            Outcome::Unreachable(error) => {
                tracing::warn!(instance = %self.id, %error, "drain: could not reach the matchmaker");
            }
        }
        match self
            .call(Method::DELETE, &self.instance_url, None, timeout)
            .await
        {
            Outcome::Ok(..) => tracing::info!(instance = %self.id, "removed from the fleet"),
            Outcome::Refused(status, detail) => {
                tracing::warn!(instance = %self.id, %status, %detail, "delete refused");
            }
            Outcome::Unreachable(error) => {
                tracing::warn!(instance = %self.id, %error, "delete: could not reach the matchmaker");
            }
        }
    }

    async fn call(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Outcome {
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.event_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Outcome::Unreachable(causes(&e)),
        };
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => return Outcome::Unreachable(causes(&e)),
        };
        if status.is_success() {
            Outcome::Ok(status, serde_json::from_str(&text).unwrap_or(Value::Null))
        } else {
            Outcome::Refused(status, detail(&text))
        }
    }
}

/// A problem document's `detail`, else the start of the body.
fn detail(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("detail")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

/// A field of an instance's view, for logs (`?` when missing).
fn field(view: &Value, name: &str) -> String {
    match view.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "?".into(),
    }
}

/// `demo-{ip}-{port}`, with any character but letters, digits, `.` and `-` made a `-` (IPv6).
pub fn default_id(addr: std::net::SocketAddr) -> String {
    format!("demo-{}-{}", addr.ip(), addr.port())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{
        Json, Router,
        extract::State,
        http::{HeaderMap, Method as HttpMethod, StatusCode as HttpStatus, Uri},
        response::{IntoResponse, Response},
    };

    use super::*;

    /// A stand-in matchmaker: records every call; the first registration answers 503, the
    /// second heartbeat 404 (the instance was declared lost).
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Recorded>>);

    #[derive(Default)]
    struct Recorded {
        calls: Vec<String>,
        registrations: Vec<Value>,
        keys: Vec<String>,
        heartbeats: u32,
    }

    impl Recorder {
        fn calls(&self) -> Vec<String> {
            self.0.lock().map(|r| r.calls.clone()).unwrap_or_default()
        }
    }

    async fn answer(
        State(rec): State<Recorder>,
        method: HttpMethod,
        uri: Uri,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Response {
        let mut r = rec.0.lock().expect("recorder lock");
        let path = uri.path().to_string();
        r.calls.push(format!("{method} {path}"));
        let key = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        r.keys.push(key.to_string());
        let problem = |status: HttpStatus, detail: &str| {
            (
                status,
                [("content-type", "application/problem+json")],
                json!({ "title": "x", "status": status.as_u16(), "detail": detail }).to_string(),
            )
                .into_response()
        };
        let view = Json(json!({ "id": "rps-1", "state": "active", "games": 0 }));
        if path.ends_with("/instances") {
            r.registrations
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            return match r.registrations.len() {
                1 => problem(HttpStatus::SERVICE_UNAVAILABLE, "not ready"),
                2 => (HttpStatus::CREATED, view).into_response(),
                _ => view.into_response(),
            };
        }
        if path.ends_with("/heartbeat") {
            r.heartbeats += 1;
            if r.heartbeats == 2 {
                return problem(HttpStatus::NOT_FOUND, "instance rps-1 is lost");
            }
            return view.into_response();
        }
        if method == HttpMethod::DELETE {
            return HttpStatus::NO_CONTENT.into_response();
        }
        view.into_response()
    }

    #[tokio::test]
    async fn registers_heartbeats_registers_again_after_a_404_and_leaves() {
        let rec = Recorder::default();
        let app = Router::new().fallback(answer).with_state(rec.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base: Url = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let instance = Instance {
            id: "rps-1".into(),
            url: "http://127.0.0.1:8081".into(),
            socket_url: "127.0.0.1:8081".into(),
            capacity: 100,
            region: Some("eu".into()),
        };
        let fleet = Arc::new(
            Fleet::new(
                reqwest::Client::new(),
                &base,
                "exrps",
                "k3y".into(),
                instance,
                Duration::from_millis(50),
            )
            .unwrap(),
        );
        let stop = CancellationToken::new();
        let forgotten = Arc::new(Mutex::new(0));
        let run = tokio::spawn({
            let (fleet, stop, forgotten) = (fleet.clone(), stop.clone(), forgotten.clone());
            async move {
                let forget = || {
                    *forgotten.lock().unwrap() += 1;
                    3
                };
                fleet.run(stop, forget).await;
            }
        });
        // 503, then 201; two heartbeats (the second a 404); 200 again; then heartbeats.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while rec
            .calls()
            .iter()
            .filter(|c| c.ends_with("/heartbeat"))
            .count()
            < 4
        {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", rec.calls());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // As main does at shutdown: stop the heartbeats, then leave.
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), run)
            .await
            .expect("the loop stops when cancelled")
            .unwrap();
        fleet.leave().await;

        let calls = rec.calls();
        let p = "/game_servers/exrps/instances";
        let hb = format!("POST {p}/rps-1/heartbeat");
        let reg = format!("POST {p}");
        assert_eq!(
            calls[..6],
            [&reg, &reg, &hb, &hb, &reg, &hb].map(String::as_str),
            "{calls:?}"
        );
        assert_eq!(
            calls[calls.len() - 2..],
            [format!("POST {p}/rps-1/drain"), format!("DELETE {p}/rps-1")],
            "{calls:?}"
        );
        assert_eq!(*forgotten.lock().unwrap(), 1);
        let r = rec.0.lock().unwrap();
        assert!(r.keys.iter().all(|k| k == "Bearer k3y"), "{:?}", r.keys);
        assert_eq!(
            r.registrations[0],
            json!({"id": "rps-1", "url": "http://127.0.0.1:8081", "socket_url": "127.0.0.1:8081", "capacity": 100, "region": "eu"})
        );
    }

    #[test]
    fn the_default_id_comes_from_the_bind_address() {
        assert_eq!(
            default_id("127.0.0.1:8080".parse().unwrap()),
            "demo-127.0.0.1-8080"
        );
        assert_eq!(default_id("[::1]:8080".parse().unwrap()), "demo---1-8080");
    }

    #[test]
    fn a_problems_detail_is_what_is_logged() {
        assert_eq!(
            detail(r#"{"title":"Not Found","detail":"no such instance"}"#),
            "no such instance"
        );
        assert_eq!(detail("plain text"), "plain text");
    }
}
