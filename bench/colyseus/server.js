// A Colyseus server for bench/run.sh: one room type, `duel`, of two clients, so that its HTTP
// matchmaking can be measured beside the matchmaker's quick_match with the same clients and
// duration. loadgen's `colyseus` scenario POSTs /matchmake/joinOrCreate/duel (Colyseus 0.16's
// route: see Server#attachMatchMakingRoutes and matchmaker/controller.js in @colyseus/core),
// which reserves a seat in a room with space, or in a new room, and answers
// {"room": ..., "sessionId": ...}; nobody then connects over WebSocket, so every seat
// reservation expires after the room's seatReservationTime (15 s by default) and empty rooms
// dispose of themselves. Everything is in this one process's memory: no database, no durability.
//
// With COLYSEUS_AUTH_SECRET set, the room's onAuth checks each request's bearer token as the
// matchmaker does (HS256 JWT signed with that secret, not expired), so both pay for a token
// check per request; without it Colyseus does no authentication at all.
//
//   PORT=2567 COLYSEUS_AUTH_SECRET=... node bench/colyseus/server.js
//
// GET /healthz answers 200 once the server listens.
"use strict";

const http = require("node:http");
const crypto = require("node:crypto");
const { Server, Room } = require("@colyseus/core");
const { WebSocketTransport } = require("@colyseus/ws-transport");

const port = Number(process.env.PORT || 2567);
const host = process.env.HOST || "127.0.0.1";
const secret = process.env.COLYSEUS_AUTH_SECRET || "";

function base64url(buf) {
  return buf.toString("base64").replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

// The player of an HS256 JWT signed with `secret`, or null.
function verify(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  let header, claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
    claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
  } catch {
    return null;
  }
  if (header.alg !== "HS256") return null;
  const expected = base64url(crypto.createHmac("sha256", secret).update(`${parts[0]}.${parts[1]}`).digest());
  const given = Buffer.from(parts[2]);
  const want = Buffer.from(expected);
  if (given.length !== want.length || !crypto.timingSafeEqual(given, want)) return null;
  if (typeof claims.exp === "number" && claims.exp * 1000 < Date.now()) return null;
  if (claims.user_id === undefined || typeof claims.username !== "string") return null;
  return { user_id: String(claims.user_id), username: claims.username };
}

class Duel extends Room {
  maxClients = 2;

  onCreate() {}
  onJoin() {}
  onLeave() {}
}

if (secret) {
  // Colyseus calls a room class's static onAuth (when it has its own) before matchmaking; a
  // falsy answer refuses the request.
  Duel.onAuth = async (token) => verify(token);
}

const httpServer = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end('{"status":"ok"}');
  } else {
    res.writeHead(404);
    res.end();
  }
});

const gameServer = new Server({
  transport: new WebSocketTransport({ server: httpServer }),
  greet: false,
});
gameServer.define("duel", Duel);
gameServer.listen(port, host).then(() => {
  const fs = require("node:fs");
  const path = require("node:path");
  const pkg = path.join(__dirname, "node_modules", "@colyseus", "core", "package.json");
  const version = JSON.parse(fs.readFileSync(pkg, "utf8")).version;
  console.log(`colyseus ${version} listening on http://${host}:${port} (room "duel", 2 clients, auth ${secret ? "HS256" : "none"})`);
}, (err) => {
  console.error(`colyseus: cannot listen on ${host}:${port}: ${err.message}`);
  process.exit(1);
});
