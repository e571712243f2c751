#!/usr/bin/env python3
"""Hostile input against every documented operation of a running matchmaker (make api-fuzz).

Reads the operations from /api-docs/openapi.json and sends each of them, over raw sockets so
that nothing normalises the bytes, with classes of input an attacker would try:

  * path segments and query values (count, page, settings.<key>=<value>, access_token) holding
    NUL, control characters, invalid UTF-8 (lone bytes, overlong and surrogate encodings, code
    points past U+10FFFF), JSON strings with \\u0000, 10 KB segments and 60 KB query values;
  * player tokens, HS256-signed with the service's secret, whose claims have the wrong JSON type
    (exp/nbf/iat as strings, null, booleans, objects; user_id as float, bool, array), NUL in
    user_id or username, expired or not-yet-valid dates, and payloads no encoder writes (invalid
    UTF-8, duplicate claims); repeated Authorization and Idempotency-Key headers;
  * request bodies of the wrong JSON types, with NUL, invalid UTF-8, deep nesting, over the limit;
  * then random combinations of all of these, from a fixed seed.

The run FAILS on any 5xx, on an error answer (4xx) that is not application/problem+json with a
non-empty `detail` and the answer's `status`, on a malformed event reported without `detail`,
and on a request left unanswered for 10 s. It prints one line per failure and a summary line
`hostile-fuzz: N requests sent, F failed`.

One class is held to less: requests hyper cannot parse (a bare NUL or 0xFF in the request line,
a control character in a header, a URI of 64 KiB or more, headers over hyper's buffer). hyper
answers those itself, before any application code runs, with a bodiless 400/414/431 or by
closing the connection; those must be a 4xx or a close, never a 5xx.

Only the standard library. Deterministic: the same seed sends the same requests in the same order
(game ids and join codes of the games it creates aside).

    MATCHMAKER_SECRET_KEY=... scripts/hostile_fuzz.py --base http://127.0.0.1:5050 \\
        --event-key demo-event-key [--seed 20261123] [--combinations 100]
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import socket
import sys
import time
import urllib.parse

TIMEOUT = 10.0

# --------------------------------------------------------------------------------------------
# Values, percent-encoded as sent (path segments and query values).

UNSTORABLE = [
    "%00", "a%00b", "ranked%00", "%FF%FE", "ranked%80", "%C0%80", "%ED%A0%80", "%F4%90%80%80",
    "%E2%82",
]
ODD = [
    "%01%02%1F%7F", "a%0D%0Ab", "%09", "%E2%80%AE", "%EF%BF%BF", "%EF%BB%BF", "%25", "%2525",
    "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%27%3B--", "%3Cscript%3E", "-1", "1.5", "1e400",
    "99999999999999999999999999", "+1", "%20", "",
]
JSON_NUL = [
    "%22%5Cu0000%22", "%22a%5Cu0000b%22", "%5B%22%5Cu0000%22%5D", "%7B%22a%22%3A%22%5Cu0000%22%7D",
    "%7B%22%5Cu0000%22%3A1%7D", "%22%5Cud800%22", "%5B" * 120 + "%5D" * 120,
]
SEGMENTS = UNSTORABLE + ODD[:12] + ["%22%5Cu0000%22", "a" * 10_000, "%00" * 3_000]
QUERY_VALUES = UNSTORABLE + ODD + JSON_NUL + ["x" * 60_000, "9" * 60_000]
QUERY_KEYS = [
    "settings.%00", "settings.a%00b", "settings.%FF", "settings.%C0%80", "settings.",
    "settings.%01", "settings." + "k" * 100, "%00", "%FF", "count%00", "settings.mode%00",
]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_raw(secret: str, payload: bytes, alg: str = "HS256") -> str:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    message = f"{header}.{b64(payload)}"
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return f"{message}.{b64(digest)}"


def sign(secret: str, claims: dict) -> str:
    return sign_raw(secret, json.dumps(claims, separators=(",", ":")).encode())


def hostile_tokens(secret: str, now: int):
    """(name, token) pairs, each of which must be refused with a 401."""

    def claims(**changes):
        c = {"user_id": "fuzz", "username": "Fuzz", "token_type": "access", "iat": now,
             "exp": now + 600}
        c.update(changes)
        return c

    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    cases = [
        ("exp past string", claims(exp=past)), ("exp future string", claims(exp=future)),
        ("exp numeric string", claims(exp=str(now + 600))), ("exp -1", claims(exp=-1)),
        ("exp -1.5", claims(exp=-1.5)), ("exp past float", claims(exp=now - 30.5)),
        ("exp 0", claims(exp=0)), ("exp null", claims(exp=None)), ("exp true", claims(exp=True)),
        ("exp object", claims(exp={"at": now + 600})), ("exp array", claims(exp=[now + 600])),
        ("nbf string", claims(nbf=future)), ("nbf future float", claims(nbf=now + 600.5)),
        ("nbf null", claims(nbf=None)), ("nbf true", claims(nbf=True)),
        ("iat string", claims(iat=past)), ("iat true", claims(iat=True)),
        ("iat object", claims(iat={})), ("iat null", claims(iat=None)),
        ("user_id NUL", claims(user_id="fu\u0000zz")), ("user_id only NUL", claims(user_id="\u0000")),
        ("username NUL", claims(username="Fu\u0000zz")), ("user_id float", claims(user_id=1.5)),
        ("user_id bool", claims(user_id=True)), ("user_id array", claims(user_id=["fuzz"])),
        ("user_id object", claims(user_id={"a": 1})), ("user_id null", claims(user_id=None)),
        ("username number", claims(username=7)), ("refresh token", claims(token_type="refresh")),
        ("user_id 10 KB", claims(user_id="u" * 10_000)),
    ]
    out = [(name, sign(secret, c)) for name, c in cases]
    exp = now + 600
    raw = [
        ("user_id raw 0xFF", b'{"user_id":"fu\xffzz","username":"F","exp":%d}' % exp),
        ("username overlong NUL", b'{"user_id":"fuzz","username":"F\xc0\x80","exp":%d}' % exp),
        ("user_id lone surrogate", b'{"user_id":"fu\\ud800zz","username":"F","exp":%d}' % exp),
        ("raw NUL in payload", b'{"user_id":"fu\x00zz","username":"F","exp":%d}' % exp),
        ("exp twice", b'{"user_id":"fuzz","username":"F","exp":%d,"exp":%d}' % (exp - 7200, exp)),
        ("user_id twice", b'{"user_id":"fuzz","user_id":"alice","username":"F","exp":%d}' % exp),
        ("payload not JSON", b"\x00\xff"),
    ]
    out += [(name, sign_raw(secret, payload)) for name, payload in raw]
    out.append(("alg none", b64(b'{"alg":"none"}') + "." + b64(json.dumps(claims()).encode()) + "."))
    out.append(("forged", "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoieCJ9.forged"))
    return out


CREATE_BODIES = [
    b'{"private":"true"}', b'{"private":1}', b'{"private":"\\u0000"}', b'{"private":[true]}',
    b'{"private":{"\\u0000":true}}', b'{"private":null,"x":"\\u0000"}', b'{"\\u0000":true}',
    b'{"private":true,"x":"\xff"}', b'\xff\xfe', b"\x00", b"[" * 20_000 + b"]" * 20_000,
    b'{"private":1e400}', b'"\\ud800"', b"x" * 70_000,
]


def event_bodies(game_id: str):
    def ev(**fields):
        base = {"type": "state_change", "game_id": game_id, "new_state": "creator_joined"}
        base.update(fields)
        return base

    events = [
        ev(game_id=game_id + "\u0000"), ev(new_state="creator_joined\u0000"),
        ev(product_id="exrps\u0000"), ev(type="state_change\u0000"),
        {"type": "player_disconnect", "game_id": game_id, "player_id": "bob\u0000"},
        {"type": "player_disconnect", "game_id": game_id, "player_id": "b" * 10_000},
        {"type": "player_disconnect", "game_id": game_id, "player_id": "\u0001\u001b[2J"},
        ev(game_id={"id": game_id}), ev(game_id=[game_id]), ev(game_id=42), ev(new_state=True),
        {"type": "game_removed", "game_id": "\u0000"}, {"\u0000": "x", "type": "gameplay"},
        {"type": "state_change", "game_id\u0000": game_id, "new_state": "creator_joined"},
        "not an object", 42, None, [],
    ]
    bodies = [json.dumps(e).encode() for e in events if isinstance(e, dict)]
    bodies.append(json.dumps(events).encode())
    bodies += [
        b'{"type":"game\xffplay"}', b"\xff\xfe", b'{"type":"game\x00play"}', b'{"type":"x"}\x00',
        b'{"type":"gameplay","x":"\\ud800"}', b'{"type":"gameplay","x":1e400}', b'"state_change"',
        b"null", b"", b'[{"type":', b"[" * 20_000 + b"]" * 20_000,
        ("[" + ",".join(['{"type":"gameplay"}'] * 1001) + "]").encode(), b"y" * 70_000,
    ]
    return bodies


# --------------------------------------------------------------------------------------------
# The raw client.


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())


def parse(buf: bytes):
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        return None
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    rest = buf[end + 4:]
    answer = Answer(status, headers, b"")
    if headers.get("content-type", "").startswith("text/event-stream"):
        return answer
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(rest) < n:
            return None
        answer.body = rest[:n]
        return answer
    if "chunked" in headers.get("transfer-encoding", ""):
        body, at = b"", 0
        while True:
            nl = rest.find(b"\r\n", at)
            if nl < 0:
                return None
            size = int(rest[at:nl].split(b";")[0] or b"0", 16)
            at = nl + 2
            if size == 0:
                answer.body = body
                return answer
            if len(rest) < at + size:
                return None
            body += rest[at:at + size]
            at += size + 2
    return answer


class Request:
    def __init__(self, op, method, target: bytes, headers=None, body=b"", transport=False,
                 what="", expect=None):
        self.op, self.method, self.target = op, method, target
        self.headers = headers or []
        self.body, self.transport, self.what = body, transport, what
        # statuses the contract allows for this input (docs/api.md, "Hostile input"); None: any
        # that is not a 5xx
        self.expect = expect

    def bytes(self, host):
        out = [f"{self.method} ".encode(), self.target, b" HTTP/1.1\r\n",
               f"Host: {host}\r\nConnection: close\r\n".encode()]
        for name, value in self.headers:
            out += [name.encode() if isinstance(name, str) else name, b": ",
                    value.encode() if isinstance(value, str) else value, b"\r\n"]
        if self.body or self.method == "POST":
            out.append(f"Content-Length: {len(self.body)}\r\n".encode())
        out += [b"\r\n", self.body]
        return b"".join(out)

    def show(self):
        target = self.target.decode("latin-1")
        target = target if len(target) <= 100 else target[:100] + f"...({len(target)} bytes)"
        return f"{self.method} {target!r} [{self.what}]"


def send(host, port, request: Request):
    """Returns an Answer, "closed" (no answer before the server closed) or "timeout"."""
    deadline = time.monotonic() + TIMEOUT
    try:
        s = socket.create_connection((host, port), timeout=TIMEOUT)
    except OSError as e:
        return f"connect failed: {e}"
    buf = b""
    try:
        try:
            s.sendall(request.bytes(f"{host}:{port}"))
        except OSError:
            pass  # answered (and closed) before reading all of it: read what it said
        while time.monotonic() < deadline:
            answer = parse(buf)
            if answer is not None:
                return answer
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = s.recv(65536)
            except socket.timeout:
                return "timeout"
            except OSError:
                break
            if not data:
                break
            buf += data
        answer = parse(buf)
        if answer is not None:
            return answer
        return "timeout" if time.monotonic() >= deadline else "closed"
    finally:
        s.close()


def check(request: Request, answer):
    """None when the answer holds, else what is wrong."""
    if isinstance(answer, str):
        if request.transport and answer == "closed":
            return None
        return answer
    if answer.status >= 500:
        return f"{answer.status} {answer.body[:200]!r}"
    if request.transport:
        return None
    if request.expect and answer.status not in request.expect:
        wanted = " or ".join(str(s) for s in sorted(request.expect))
        return f"expected {wanted}, got {answer.status} {answer.body[:160]!r}"
    if answer.status < 400:
        if answer.header("content-type") == "application/json" and request.op.endswith("/events"):
            try:
                body = json.loads(answer.body)
            except ValueError:
                return f"{answer.status} not JSON: {answer.body[:200]!r}"
            for r in body.get("results", []):
                if r.get("outcome") == "malformed" and not str(r.get("detail", "")).strip():
                    return f"malformed event without detail: {r}"
        return None
    ctype = answer.header("content-type")
    if ctype != "application/problem+json":
        return f"{answer.status} content-type {ctype!r}: {answer.body[:200]!r}"
    try:
        body = json.loads(answer.body)
    except ValueError:
        return f"{answer.status} problem body is not JSON: {answer.body[:200]!r}"
    if not isinstance(body, dict) or body.get("status") != answer.status:
        return f"{answer.status} problem `status` is not the answer's: {body!r}"[:300]
    detail = body.get("detail")
    if not isinstance(detail, str) or not detail.strip():
        return f"{answer.status} problem without a non-empty detail: {body!r}"[:300]
    return None


# --------------------------------------------------------------------------------------------
# Requests.


def target(template, path_values, query_pairs):
    path = template
    for name, value in path_values.items():
        path = path.replace("{" + name + "}", value)
    if query_pairs:
        path += "?" + "&".join(k if v is None else f"{k}={v}" for k, v in query_pairs)
    return path.encode("latin-1")


def build(operations, secret, event_key, fixtures, rng, combinations):
    now = int(time.time())
    tokens = hostile_tokens(secret, now)
    good = sign(secret, {"user_id": "fuzzer", "username": "Fuzzer", "token_type": "access",
                         "iat": now, "exp": now + 3600})
    defaults = {"product_id": "exrps", "game_id": fixtures["game_id"], "code": fixtures["code"]}
    requests = []

    for method, template, op in operations:
        params = op.get("parameters", [])
        path_params = [p["name"] for p in params if p["in"] == "path"]
        query_params = [p["name"] for p in params if p["in"] == "query"]
        header_params = [p["name"] for p in params if p["in"] == "header"]
        security = [name for s in (op.get("security") or []) for name in s]
        player = "player_token" in security
        events = "event_key" in security
        auth = [("Authorization", f"Bearer {event_key if events else good}")] if security else []
        base_path = {p: defaults.get(p, "x") for p in path_params}
        body = b"{}" if events else b""

        def req(path_values=None, query=None, headers=None, body=body, what="", transport=False,
                expect=None):
            pv = dict(base_path, **(path_values or {}))
            return Request(template, method, target(template, pv, query or []),
                           auth if headers is None else headers, body, transport, what, expect)

        # every path parameter, every hostile segment
        for p in path_params:
            for v in SEGMENTS:
                expect = None
                if v in UNSTORABLE or v.startswith("%00"):
                    invalid_utf8 = "%00" not in v
                    if p != "product_id" or security or invalid_utf8:
                        expect = {400}  # the product, game id or join code message
                    else:
                        expect = {200}  # open_games: an unknown product is an empty list
                requests.append(req({p: v}, what=f"path {p}={v[:20]}", expect=expect))
        # every query parameter (documented and settings filters), every hostile value
        if query_params:
            for key in query_params + ["settings.num_players", "unrelated"]:
                for v in QUERY_VALUES:
                    expect = None
                    refused = v in UNSTORABLE or (v in JSON_NUL and "u0000" in v)
                    # settings filters and paging are read by the open-games list only
                    lists = "/open_games" in template
                    if refused and lists and (key.startswith("settings.") or key in ("count", "page")):
                        expect = {400}
                    headers = None
                    if key == "access_token":
                        # read only without an Authorization header; never a valid token here
                        headers, expect = [], {401}
                    requests.append(req(query=[(key, v)], headers=headers,
                                        what=f"query {key}={v[:20]}", expect=expect))
            for key in QUERY_KEYS:
                for v in ["1", "ranked", None]:
                    expect = {400} if "/open_games" in template and key.startswith("settings.") and (
                        "%00" in key or "%FF" in key or "%C0" in key) else None
                    requests.append(req(query=[(key, v)], what=f"query key {key[:20]}",
                                        expect=expect))
            many = [(f"settings.k{i}", "v") for i in range(200)]
            requests.append(req(query=many, what="200 settings filters"))
        # hostile tokens, in the header (and as ?access_token= where the route takes it)
        if player:
            for name, tok in tokens:
                requests.append(req(headers=[("Authorization", f"Bearer {tok}")],
                                    what=f"token {name}", expect={401}))
                if "access_token" in query_params:
                    requests.append(req(headers=[], query=[("access_token", tok)],
                                        what=f"access_token {name}", expect={401}))
        if security:
            forged = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoieCJ9.forged"
            for first, second, name in [(auth[0][1], forged, "valid+forged"),
                                        (forged, auth[0][1], "forged+valid"),
                                        (auth[0][1], auth[0][1], "valid+valid")]:
                requests.append(req(headers=[("Authorization", first), ("Authorization", second)],
                                    what=f"two Authorization headers {name}", expect={401}))
            for value in [b"Bearer \xff\xfe", b"Bearer " + b"a" * 20_000, b"", b"Bearer",
                          b"Basic Zm9vOmJhcg=="]:
                requests.append(req(headers=[("Authorization", value)],
                                    what=f"Authorization {value[:20]!r}", expect={401}))
        if "Idempotency-Key" in header_params:
            for value in [b"\xff", b"key-\x80", "clé".encode(), b"a\tb", b"a b", b"k" * 256,
                          b"k" * 10_000]:
                requests.append(req(headers=auth + [("Idempotency-Key", value)],
                                    what=f"Idempotency-Key {value[:20]!r}", expect={400}))
            requests.append(req(headers=auth + [("Idempotency-Key", "one"),
                                                ("Idempotency-Key", "two")],
                                what="two Idempotency-Key headers", expect={400}))
        if "requestBody" in op:
            bodies = event_bodies(fixtures["game_id"]) if events else CREATE_BODIES
            for b in bodies:
                requests.append(req(headers=auth + [("Content-Type", "application/json")], body=b,
                                    what=f"body {b[:30]!r}"))
        # methods the route does not take
        for other in ["PUT", "DELETE", "PATCH"]:
            requests.append(Request(template, other, target(template, base_path, []), auth, b"",
                                    what=f"method {other}"))
        # random combinations
        for _ in range(combinations):
            pv = {p: rng.choice(SEGMENTS + ["exrps", defaults.get(p, "x")]) for p in path_params}
            query = []
            if query_params:
                for _ in range(rng.randint(0, 4)):
                    query.append((rng.choice(query_params + QUERY_KEYS),
                                  rng.choice(QUERY_VALUES[:-2] + ["1", "ranked"])))
            headers = list(auth)
            if player and rng.random() < 0.5:
                headers = [("Authorization", "Bearer " + rng.choice(tokens)[1])]
            if "Idempotency-Key" in header_params and rng.random() < 0.3:
                headers.append(("Idempotency-Key", rng.choice(["k1", "\xff", "a b", "k" * 300])
                                .encode("latin-1")))
            b = body
            if "requestBody" in op and rng.random() < 0.5:
                b = rng.choice(event_bodies(fixtures["game_id"]) if events else CREATE_BODIES)
            requests.append(req(pv, query, headers, b, what="combination"))

    # Below the router: hyper answers these itself.
    raw = [
        b"/game_lobby/exrps/open_games?settings.mode=\x00", b"/game_lobby/ex\x00rps/open_games",
        b"/game_lobby/\xff/open_games", b"/game_lobby/ex rps/open_games", b"/\x01",
        b"/game_lobby/exrps/open_games?settings.mode=" + b"x" * 100_000,
        b"/game_lobby/" + b"p" * 100_000 + b"/open_games",
    ]
    for t in raw:
        requests.append(Request("(transport)", "GET", t, [], b"", True, "raw request line"))
    for name, value in [(b"X-A", b"a\x00b"), (b"X-A", b"a\x01b"), (b"X-\x00", b"1"),
                        (b"Idempotency-Key", b"a\x00b"), (b"X-Big", b"b" * 500_000)]:
        requests.append(Request("(transport)", "GET", b"/healthz", [(name, value)], b"", True,
                                f"raw header {name!r}"))
    requests.append(Request("(transport)", "POST", b"/game_servers/exrps/events",
                            [("Content-Length", "1")], b"{}", True, "two Content-Lengths"))
    return requests


def fixtures(host, port, secret, event_key):
    """An open public game and a private game's join code, so ids reach the database."""
    now = int(time.time())
    tok = sign(secret, {"user_id": f"fuzz-host-{now}", "username": "Host", "token_type": "access",
                        "iat": now, "exp": now + 3600})
    auth = [("Authorization", f"Bearer {tok}"), ("Content-Type", "application/json")]
    out = {}
    for private in (False, True):
        body = json.dumps({"private": private}).encode()
        a = send(host, port, Request("", "POST", b"/game_lobby/exrps/create_game", auth, body))
        if isinstance(a, str) or a.status != 200:
            sys.exit(f"hostile-fuzz: could not create a game: {a if isinstance(a, str) else a.status}")
        game = json.loads(a.body)
        ev = json.dumps({"type": "state_change", "game_id": game["game_id"],
                         "new_state": "creator_joined"}).encode()
        send(host, port, Request("", "POST", b"/game_servers/exrps/events",
                                 [("Authorization", f"Bearer {event_key}"),
                                  ("Content-Type", "application/json")], ev))
        if private:
            out["code"] = game["join_code"]
        else:
            out["game_id"] = game["game_id"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="http://host:port of the matchmaker")
    ap.add_argument("--event-key", required=True, help="event_key of product exrps")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--combinations", type=int, default=100, help="random combinations per operation")
    ap.add_argument("--show", type=int, default=200, help="failures printed at most")
    args = ap.parse_args()
    secret = os.environ.get("MATCHMAKER_SECRET_KEY")
    if not secret:
        sys.exit("hostile-fuzz: set MATCHMAKER_SECRET_KEY (tokens are signed with it)")
    url = urllib.parse.urlsplit(args.base)
    host, port = url.hostname, url.port or 80

    spec = send(host, port, Request("", "GET", b"/api-docs/openapi.json"))
    if isinstance(spec, str) or spec.status != 200:
        sys.exit(f"hostile-fuzz: no OpenAPI document at {args.base}/api-docs/openapi.json")
    doc = json.loads(spec.body)
    operations = sorted(
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    )
    fx = fixtures(host, port, secret, args.event_key)
    rng = random.Random(args.seed)
    requests = build(operations, secret, args.event_key, fx, rng, args.combinations)

    started = time.monotonic()
    failures = []
    by_op = {}
    for request in requests:
        problem = check(request, send(host, port, request))
        stats = by_op.setdefault((request.op, request.method), [0, 0])
        stats[0] += 1
        if problem:
            stats[1] += 1
            failures.append(f"{request.show()}: {problem}")
    alive = send(host, port, Request("", "GET", b"/healthz"))
    if isinstance(alive, str) or alive.status != 200:
        failures.append(f"the server no longer answers /healthz: {alive}")

    for line in failures[: args.show]:
        print(f"FAIL {line}")
    if len(failures) > args.show:
        print(f"... and {len(failures) - args.show} more failures")
    for (op, method), (sent, failed) in sorted(by_op.items()):
        print(f"  {method:6} {op}: {sent} sent, {failed} failed")
    elapsed = time.monotonic() - started
    print(f"hostile-fuzz: {len(requests)} requests sent, {len(failures)} failed "
          f"(seed {args.seed}, {elapsed:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
