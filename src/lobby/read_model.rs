//! The open-games list served from memory: per product, the listed games in the list's order
//! (`lobby_at`, then id), each entry's JSON rendered once.
//!
//! The lobby listener (`workers::lobby_listener`) keeps it in step: it LISTENs first, then
//! loads every listed game, then applies each notification by reading the game as it is now.
//! Because an entry is always replaced by the game's current row (never by what a notification
//! said), applying a notification late or twice converges on the database's state: no sequence
//! numbers are needed, and a page trails a commit by the notification delay and no more.
//! Until the first load, and whenever the listener has lost its connection, the list is "out
//! of sync" and pages come from the database. Seats never come from here: joins always go
//! through the database, so a stale entry costs a 409, never a wrong seat.
//!
//! A player reads their own writes: after a change this process made to the list (a join, a
//! leave, an event over HTTP), it sends a *fence*, a notification of its own on the same
//! channel; notifications arrive in commit order, so until the listener has seen the fence,
//! every change before it may still be on its way, and pages come from the database.
//! When the change's own transaction notified (the trigger's notifications carry its id), a
//! *commit fence* waits for that notification instead, which costs no round trip: a join's
//! reservation of a listed game is one (docs/performance.md, "Lobby notifications serialise
//! commits").

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{Game, SettingsFilter};

/// One listed game: what a filter looks at and what a page shows.
#[derive(Debug)]
pub struct Entry {
    /// Shared with the other games of the list that have the same settings.
    pub settings: Arc<Value>,
    /// The game's open-games JSON, without spare capacity.
    pub json: Box<str>,
}

impl Entry {
    pub fn new(settings: &Value, json: String) -> Self {
        Self {
            settings: Arc::new(settings.clone()),
            json: json.into_boxed_str(),
        }
    }
}

/// Distinct settings one list shares between its games (most games of a product have the
/// product's own); further ones are kept per game.
const SHARED_SETTINGS: usize = 16;

type Order = (Option<DateTime<Utc>>, Uuid);

#[derive(Default)]
struct ProductList {
    by_order: BTreeMap<Order, Arc<Entry>>,
    order_of: HashMap<Uuid, Order>,
    /// The settings its entries share: an entry's own settings map is about 600 bytes
    /// (docs/performance.md, *The lobby's memory*).
    shared: Vec<Arc<Value>>,
}

impl ProductList {
    fn remove(&mut self, game_id: Uuid) {
        if let Some(order) = self.order_of.remove(&game_id) {
            self.by_order.remove(&order);
        }
    }

    fn put(&mut self, game: &Game, mut entry: Entry) {
        self.remove(game.game_id);
        entry.settings = self.share(entry.settings);
        let order = (game.lobby_at, game.game_id);
        self.order_of.insert(game.game_id, order);
        self.by_order.insert(order, Arc::new(entry));
    }

    /// The list's copy of `settings` when it has one, else `settings` (kept for sharing while
    /// there is room).
    fn share(&mut self, settings: Arc<Value>) -> Arc<Value> {
        self.shared.retain(|s| Arc::strong_count(s) > 1);
        if let Some(same) = self.shared.iter().find(|s| **s == settings) {
            return Arc::clone(same);
        }
        if self.shared.len() < SHARED_SETTINGS {
            self.shared.push(Arc::clone(&settings));
        }
        settings
    }
}

fn held(products: &HashMap<String, ProductList>) -> usize {
    products.values().map(|l| l.by_order.len()).sum()
}

/// The listed games as a load reads them, one at a time (no page of rows is held), until
/// [`ReadModel::load`] puts them in place of the list.
#[derive(Default)]
pub struct Loaded {
    products: HashMap<String, ProductList>,
}

impl Loaded {
    pub fn add(&mut self, game: &Game, entry: Entry) {
        match self.products.get_mut(&game.product_id) {
            Some(list) => list.put(game, entry),
            None => {
                let mut list = ProductList::default();
                list.put(game, entry);
                self.products.insert(game.product_id.clone(), list);
            }
        }
    }

    /// Games held, all products.
    pub fn len(&self) -> usize {
        held(&self.products)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long a commit fence is waited for. Its notification comes within milliseconds; one
/// that has not come by then is lost (its listener reconnected) and the reload covers it.
const COMMIT_FENCE_WAIT: Duration = Duration::from_secs(2);
/// How long an applied transaction is remembered: longer than a commit can take to be fenced.
const APPLIED_MEMORY: Duration = Duration::from_secs(5);

/// The writes of this process that pages must not trail.
#[derive(Default)]
struct Fences {
    /// Fences sent and not seen yet. Each is waited for by number: seeing a later one says
    /// nothing of the writes behind an earlier one, which may commit after it.
    unseen: BTreeSet<u64>,
    /// Commits of ours whose notification was not applied yet: transaction id → (number, as
    /// counted by `fences_sent`; when it was fenced).
    commits: HashMap<i64, (u64, Instant)>,
    /// Transactions whose notification was applied lately, oldest first: a commit fenced after
    /// its notification was applied has nothing to wait for.
    applied: VecDeque<(Instant, i64)>,
    applied_ids: HashSet<i64>,
}

impl Fences {
    fn forget_old(&mut self, now: Instant) {
        while let Some(&(at, tx)) = self.applied.front() {
            if now.duration_since(at) < APPLIED_MEMORY {
                break;
            }
            self.applied.pop_front();
            self.applied_ids.remove(&tx);
        }
        self.commits
            .retain(|_, (_, at)| now.duration_since(*at) < COMMIT_FENCE_WAIT);
    }

    fn is_empty(&self) -> bool {
        self.unseen.is_empty() && self.commits.is_empty()
    }
}

#[derive(Default)]
struct State {
    in_sync: bool,
    products: HashMap<String, ProductList>,
}

/// This process's copy of the open-games list.
pub struct ReadModel {
    enabled: bool,
    state: RwLock<State>,
    /// Tells this process's fences from other processes'.
    instance: String,
    fences_sent: AtomicU64,
    fences: Mutex<Fences>,
    /// `fences` is not empty (read on every page without the lock).
    fenced: AtomicBool,
}

impl ReadModel {
    /// `enabled: false` (the `lobby_cache` setting) keeps every page on the database.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            state: RwLock::default(),
            instance: Uuid::new_v4().simple().to_string(),
            fences_sent: AtomicU64::new(0),
            fences: Mutex::default(),
            fenced: AtomicBool::new(false),
        }
    }

    /// The payload of a new fence, or `None` when no page is served from memory anyway. Sent
    /// also while out of sync: a load that began before the fence covers its write, and one
    /// that began after may have read before the write committed.
    pub fn next_fence(&self) -> Option<(u64, String)> {
        if !self.enabled {
            return None;
        }
        let n = self.fences_sent.fetch_add(1, Ordering::SeqCst) + 1;
        self.update_fences(|f| {
            f.unseen.insert(n);
        });
        Some((
            n,
            format!(r#"{{"fence":{n},"instance":"{}"}}"#, self.instance),
        ))
    }

    /// A fence that could not be sent will never be seen: stop waiting for it.
    pub fn fence_failed(&self, n: u64) {
        self.update_fences(|f| {
            f.unseen.remove(&n);
        });
    }

    /// Pages wait for the notification of transaction `tx` of ours, which committed a change
    /// to the list (unless it was applied already).
    pub fn fence_commit(&self, tx: i64) {
        if !self.enabled {
            return;
        }
        let n = self.fences_sent.fetch_add(1, Ordering::SeqCst) + 1;
        self.update_fences(|f| {
            if !f.applied_ids.contains(&tx) {
                f.commits.insert(tx, (n, Instant::now()));
            }
        });
    }

    /// The listener applied the notifications of these transactions.
    pub fn applied_commits(&self, txs: impl IntoIterator<Item = i64>) {
        let now = Instant::now();
        self.update_fences(|f| {
            for tx in txs {
                if f.commits.remove(&tx).is_none() && f.applied_ids.insert(tx) {
                    f.applied.push_back((now, tx));
                }
            }
        });
    }

    /// The listener saw a fence; `false` when it is another process's.
    pub fn saw_fence(&self, instance: &str, n: u64) -> bool {
        if instance != self.instance {
            return false;
        }
        self.update_fences(|f| {
            f.unseen.remove(&n);
        });
        true
    }

    fn update_fences(&self, change: impl FnOnce(&mut Fences)) {
        let mut fences = self.fences.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut fences);
        fences.forget_old(Instant::now());
        self.fenced.store(!fences.is_empty(), Ordering::SeqCst);
    }

    fn fenced(&self) -> bool {
        // Only while fenced (pages then come from the database anyway): drop what is too old.
        self.fenced.load(Ordering::SeqCst) && {
            self.update_fences(|_| {});
            self.fenced.load(Ordering::SeqCst)
        }
    }

    /// Fences sent so far (read before a load: the load sees every write they follow).
    pub fn fences_sent(&self) -> u64 {
        self.fences_sent.load(Ordering::SeqCst)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn in_sync(&self) -> bool {
        self.read().in_sync
    }

    /// Notifications may have been missed: serve from the database until the next load.
    pub fn lose_sync(&self) {
        let mut state = self.write();
        state.in_sync = false;
        state.products.clear();
    }

    /// Replaces the whole list with `listed` (games read after the listener started) and
    /// starts serving from memory.
    pub fn load(&self, listed: Loaded, fences_before: u64) {
        let mut state = self.write();
        state.products = listed.products;
        state.in_sync = self.enabled;
        // A load sees every write that a fence sent before it follows.
        self.update_fences(|f| {
            f.unseen.retain(|n| *n > fences_before);
            f.commits.retain(|_, (n, _)| *n > fences_before);
        });
    }

    /// Applies the current state of a changed game: listed (with its entry) or not. `game_id`
    /// and `product_id` name it when it is gone.
    pub fn apply(&self, product_id: &str, game_id: Uuid, current: Option<(&Game, Entry)>) {
        let mut state = self.write();
        let list = state.products.entry(product_id.to_string()).or_default();
        match current {
            Some((game, entry)) if game.is_listed() => list.put(game, entry),
            _ => list.remove(game_id),
        }
    }

    /// A page as a JSON array, or `None` when the list is not in sync (ask the database).
    pub fn page(
        &self,
        product_id: &str,
        offset: usize,
        count: usize,
        filter: &SettingsFilter,
    ) -> Option<String> {
        if self.fenced() {
            return None;
        }
        let state = self.read();
        if !state.in_sync {
            return None;
        }
        let mut out = String::from("[");
        if let Some(list) = state.products.get(product_id) {
            let entries = list
                .by_order
                .values()
                .filter(|e| filter.matches(&e.settings))
                .skip(offset)
                .take(count);
            for (i, entry) in entries.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&entry.json);
            }
        }
        out.push(']');
        Some(out)
    }

    /// Listed games held, all products.
    pub fn len(&self) -> usize {
        held(&self.read().products)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GameState;
    use serde_json::json;

    fn game(n: u128, listed: bool, mode: &str) -> Game {
        Game {
            game_id: Uuid::from_u128(n),
            product_id: "p".into(),
            creator_id: "c".into(),
            creator_name: "c".into(),
            num_players: 2,
            seats_taken: 1,
            settings: json!({ "mode": mode }),
            token: String::new(),
            state: if listed {
                GameState::CreatorJoined
            } else {
                GameState::Created
            },
            updated_at: Utc::now(),
            lobby_at: Some(DateTime::from_timestamp(n as i64, 0).unwrap()),
            join_code: None,
            players: vec![],
            server_key: None,
            instance_id: None,
            server_url: None,
            socket_url: None,
        }
    }

    fn entry(g: &Game) -> Entry {
        Entry::new(&g.settings, format!("{}", g.game_id.as_u128()))
    }

    #[test]
    fn games_with_the_same_settings_share_one_copy() {
        let mut list = ProductList::default();
        let (a, b, c) = (game(1, true, "x"), game(2, true, "x"), game(3, true, "y"));
        for g in [&a, &b, &c] {
            list.put(g, entry(g));
        }
        let settings = |list: &ProductList, n: u128| {
            Arc::clone(&list.by_order[&list.order_of[&Uuid::from_u128(n)]].settings)
        };
        assert!(Arc::ptr_eq(&settings(&list, 1), &settings(&list, 2)));
        assert!(!Arc::ptr_eq(&settings(&list, 1), &settings(&list, 3)));
        assert_eq!(list.shared.len(), 2);
        // Settings no game has any more are let go at the next put.
        list.remove(c.game_id);
        list.put(&b, entry(&b));
        assert_eq!(list.shared.len(), 1);
        assert!(Arc::ptr_eq(&settings(&list, 1), &settings(&list, 2)));
    }

    #[test]
    fn pages_follow_the_list_order_filters_and_changes() {
        let model = ReadModel::new(true);
        let all = SettingsFilter::default();
        assert_eq!(model.page("p", 0, 10, &all), None, "not loaded yet");
        let (a, b, c) = (game(3, true, "x"), game(1, true, "y"), game(2, true, "x"));
        let mut listed = Loaded::default();
        for g in [&a, &b, &c] {
            listed.add(g, entry(g));
        }
        model.load(listed, 0);
        assert_eq!(model.page("p", 0, 10, &all).unwrap(), "[1,2,3]");
        assert_eq!(model.page("p", 1, 1, &all).unwrap(), "[2]");
        assert_eq!(model.page("other", 0, 10, &all).unwrap(), "[]");
        let x = SettingsFilter::parse([("settings.mode", "x")]).unwrap();
        assert_eq!(model.page("p", 0, 10, &x).unwrap(), "[2,3]");
        // unlisted, then gone
        let c2 = game(2, false, "x");
        model.apply("p", c2.game_id, Some((&c2, entry(&c2))));
        model.apply("p", a.game_id, None);
        assert_eq!(model.page("p", 0, 10, &all).unwrap(), "[1]");
        // a write of ours: the database answers until the fence comes round
        let (n, payload) = model.next_fence().unwrap();
        assert_eq!(model.page("p", 0, 10, &all), None);
        let seen: Value = serde_json::from_str(&payload).unwrap();
        let me = seen["instance"].as_str().unwrap();
        let (later, _) = model.next_fence().unwrap();
        assert!(!model.saw_fence("someone else", n));
        // a later fence says nothing of the writes behind an earlier one
        assert!(model.saw_fence(me, later));
        assert_eq!(model.page("p", 0, 10, &all), None);
        assert!(model.saw_fence(me, n));
        assert_eq!(model.page("p", 0, 10, &all).unwrap(), "[1]");
        let (lost, _) = model.next_fence().unwrap();
        model.fence_failed(lost);
        assert_eq!(model.page("p", 0, 10, &all).unwrap(), "[1]");
        model.lose_sync();
        assert_eq!(model.page("p", 0, 10, &all), None);
        assert!(model.is_empty());
        assert_eq!(ReadModel::new(false).page("p", 0, 1, &all), None);
    }

    #[test]
    fn a_commit_fence_waits_for_its_own_notification_unless_it_was_applied() {
        let model = ReadModel::new(true);
        let all = SettingsFilter::default();
        model.fence_commit(7);
        assert_eq!(
            model.page("p", 0, 1, &all),
            None,
            "not loaded yet: the database answers"
        );
        model.load(Loaded::default(), model.fences_sent());
        assert_eq!(model.page("p", 0, 1, &all).unwrap(), "[]");
        // fenced before its notification is applied: the database answers until then
        model.fence_commit(8);
        assert_eq!(model.page("p", 0, 1, &all), None);
        model.applied_commits([9]);
        assert_eq!(model.page("p", 0, 1, &all), None, "another transaction's");
        model.applied_commits([8]);
        assert_eq!(model.page("p", 0, 1, &all).unwrap(), "[]");
        // applied before it is fenced (the usual case: it came during the game-server call)
        model.fence_commit(9);
        assert_eq!(model.page("p", 0, 1, &all).unwrap(), "[]");
        // a load covers the commits fenced before it started
        model.fence_commit(10);
        let before = model.fences_sent();
        model.fence_commit(11);
        model.load(Loaded::default(), before);
        assert_eq!(
            model.page("p", 0, 1, &all),
            None,
            "11 was fenced after the load began, which may not have seen its write"
        );
        model.applied_commits([11]);
        assert_eq!(model.page("p", 0, 1, &all).unwrap(), "[]");
    }
}
