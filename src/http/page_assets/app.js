// The lobby page: a plain reference client of the lobby API. No build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: "", player: null, product: "", games: new Map(), gameId: null, source: null, poll: null };

function decodePlayer(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "=".repeat((4 - part.length % 4) % 4)));
    return { id: String(claims.user_id), name: String(claims.username) };
  } catch (_) {
    return null;
  }
}

function say(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.className = kind || "";
}

// Calls the API with the player's token; resolves to the JSON answer or throws the problem's detail.
async function api(method, path, body, headers) {
  const init = { method, headers: Object.assign({ Authorization: "Bearer " + state.token }, headers || {}) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    throw new Error((data && data.detail) || res.status + " " + res.statusText);
  }
  return data;
}

const lobby = (rest) => "/game_lobby/" + encodeURIComponent(state.product) + rest;

function signIn(token) {
  const player = decodePlayer(token.trim());
  if (!player) {
    say("That does not look like a token.", "error");
    return;
  }
  state.token = token.trim();
  state.player = player;
  sessionStorage.setItem("matchmaker.token", state.token);
  $("who").textContent = "signed in as " + player.name + " (" + player.id + ")";
  $("who").className = "who in";
  say("");
  connect();
  restoreGame();
}

// ---- the live list (Server-Sent Events) ----

function connect() {
  if (state.source) state.source.close();
  if (!state.token || !state.product) return;
  // EventSource cannot send headers: the stream route accepts the token as a query parameter.
  const url = lobby("/open_games/stream?count=25&access_token=" + encodeURIComponent(state.token));
  const source = new EventSource(url);
  state.source = source;
  const live = (on) => {
    $("live-status").textContent = on ? "live" : "reconnecting";
    $("live-status").className = "live " + (on ? "on" : "off");
  };
  source.onopen = () => live(true);
  source.onerror = () => live(false);
  source.addEventListener("snapshot", (e) => {
    state.games = new Map(JSON.parse(e.data).map((g) => [g.game_id, g]));
    live(true);
    render();
  });
  const upsert = (e) => {
    const g = JSON.parse(e.data);
    state.games.set(g.game_id, g);
    render();
  };
  source.addEventListener("listed", upsert);
  source.addEventListener("changed", upsert);
  source.addEventListener("unlisted", (e) => {
    state.games.delete(JSON.parse(e.data).game_id);
    render();
  });
}

function render() {
  const rows = [...state.games.values()].sort((a, b) => (a.listed_at || "").localeCompare(b.listed_at || ""));
  const body = $("games");
  body.replaceChildren(...rows.map((g) => {
    const tr = document.createElement("tr");
    tr.dataset.gameId = g.game_id;
    const cell = (text) => { const td = document.createElement("td"); td.textContent = text; tr.append(td); };
    cell(g.creator_name);
    cell(g.players.join(", "));
    cell(String(g.free_seats));
    cell(g.listed_at ? new Date(g.listed_at).toLocaleTimeString() : "");
    const td = document.createElement("td");
    const join = document.createElement("button");
    join.className = "join";
    join.textContent = "Join";
    join.disabled = !state.token || (state.player && g.players.includes(state.player.id));
    join.onclick = () => act(() => api("POST", lobby("/join_game/" + g.game_id)), "Joined.");
    td.append(join);
    tr.append(td);
    return tr;
  }));
  $("no-games").hidden = rows.length > 0;
}

// ---- my game ----

function show(game) {
  state.gameId = game ? game.game_id : null;
  $("my-game").hidden = !game;
  $("my-game").dataset.gameId = state.gameId || "";
  if (game) {
    sessionStorage.setItem("matchmaker.game", state.product + "/" + game.game_id);
    $("my-game-id").textContent = game.game_id;
    $("my-state").textContent = game.state || "";
    $("my-players").textContent = game.players.join(", ");
    $("my-code").textContent = game.join_code || "—";
    $("my-target").textContent = game.target_game_server || "";
  } else {
    sessionStorage.removeItem("matchmaker.game");
    $("my-code").textContent = "—";
  }
  clearTimeout(state.poll);
  // one poll at a time: the next is scheduled when this answer is shown
  if (game) state.poll = setTimeout(refresh, 1500);
  render();
}

// Polls the game's status, as a client recovering after a reload would. An answer about a game
// the page no longer shows (the player left or moved on meanwhile) is ignored.
async function refresh() {
  const id = state.gameId;
  if (!id) return;
  try {
    const game = await api("GET", lobby("/games/" + id));
    if (state.gameId !== id) return;
    if (!game.token) { show(null); say("You are no longer in that game."); return; }
    show(game);
  } catch (e) {
    if (state.gameId !== id) return;
    show(null);
    say(e.message, "error");
  }
}

function restoreGame() {
  const saved = sessionStorage.getItem("matchmaker.game");
  if (!saved) return;
  const [product, id] = saved.split("/");
  if (product !== state.product) return;
  state.gameId = id;
  refresh();
}

async function act(call, done) {
  if (!state.token) { say("Paste a token (or pick a sample player) first.", "error"); return; }
  try {
    const game = await call();
    show(game);
    say(done(game), "ok");
  } catch (e) {
    say(e.message, "error");
  }
}

const key = () => (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());

$("create-public").onclick = () =>
  act(() => api("POST", lobby("/create_game"), {}, { "Idempotency-Key": key() }), () => "Game created.");
$("create-private").onclick = () =>
  act(() => api("POST", lobby("/create_game"), { private: true }, { "Idempotency-Key": key() }),
    (g) => "Private game created: share the code " + g.join_code + ".");
$("quick-match").onclick = () =>
  act(() => api("POST", lobby("/quick_match"), undefined, { "Idempotency-Key": key() }),
    (g) => ({ joined: "Matched into a game.", created: "No game was waiting: created one.", already_seated: "You already wait in this game." })[g.outcome]);
$("join-code").onclick = () => {
  const code = $("code").value.trim();
  act(() => api("POST", lobby("/join_by_code/" + encodeURIComponent(code))), () => "Joined by code.");
};
$("leave").onclick = async () => {
  try {
    const left = await api("POST", lobby("/leave_game/" + state.gameId));
    show(null);
    say(left.outcome === "game_removed" ? "Game removed." : "You left the game.", "ok");
  } catch (e) {
    say(e.message, "error");
  }
};
$("use-token").onclick = () => signIn($("token").value);
$("product").onchange = () => { state.product = $("product").value; show(null); connect(); };

async function start() {
  const config = await fetch("/lobby/config.json").then((r) => r.json());
  for (const p of config.products) {
    const o = document.createElement("option");
    o.value = p.product_id;
    o.textContent = p.product_id + " (" + p.num_players + " players)";
    $("product").append(o);
  }
  state.product = $("product").value;
  if (config.sample_players.length) {
    $("samples").hidden = false;
    for (const s of config.sample_players) {
      const o = document.createElement("option");
      o.value = s.token;
      o.textContent = s.username + " (" + s.user_id + ")";
      $("sample-player").append(o);
    }
    $("sample-player").onchange = () => {
      const token = $("sample-player").value;
      if (token) { $("token").value = token; signIn(token); }
    };
  }
  const saved = sessionStorage.getItem("matchmaker.token");
  if (saved) { $("token").value = saved; signIn(saved); }
  render();
}

start().catch((e) => say("Could not load the lobby: " + e.message, "error"));
