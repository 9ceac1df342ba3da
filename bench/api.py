"""Drive the served API over HTTP on 127.0.0.1 with a mixed load; the baseline is /health throughput.

    .venv/bin/python bench/api.py                      # starts its own server on ./data, stops it after
    .venv/bin/python bench/api.py --url http://127.0.0.1:8000 --clients 16 --requests 3000 --json

Mixed traffic per client, drawn with a fixed seed: recommendations (content, with and without
filters), similar movies, semantic search over a pool of queries, and rating writes. Every run is
bounded (`--requests` in total, and `--max-seconds`), and stops by itself. An error is any non-2xx
answer or a failed connection.

For a server it starts, it also reports the server's CPU per request in each phase (every process of
the server's session, read from /proc): `cpu_ratio` is /health's CPU per request over the mixed
load's, the throughput ratio a CPU-bound server would reach. On a machine shared with other work it
is steadier than `ratio_to_health`, which also depends on how the client and the other load compete
for the cores. `client_cpu_ms` and `health_client_cpu_ms` are this script's own CPU per request in
each phase (httpx: about 1-1.5 ms, more than the server's for /health): on a machine the client
shares with the server, the /health rate is mostly the client's.

Each API worker keeps answers in a memo (app/recommend/memo.py, `MOVIEREC_ANSWER_MEMO_ENTRIES`), so a
question asked again over unchanged data costs a lookup. The default mix repeats questions (50 users,
100 movies, 10 searches); to see what the memo buys and what a miss costs:

    .venv/bin/python bench/api.py --no-memo            # the server it starts has no memo
    .venv/bin/python bench/api.py --cold               # every GET is a question not asked before
    .venv/bin/python bench/api.py --users 500          # questions spread over more users

`--cold` makes each recommendation and similar request exclude one more movie id that exists in no
catalogue, and nudges each search's popularity weight by 1e-9 x its number: the same work, a new key
each time. `memo_hit_rate` is the mixed phase's share of memo lookups that hit, from /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, emit, format_table, log, percentiles_ms
from prometheus_client.parser import text_string_to_metric_families

from app.settings import get_settings

SEARCHES = [
    "heist thriller with a twist",
    "space adventure with robots",
    "romantic comedy in paris",
    "haunted house horror",
    "coming of age drama",
    "animated film about toys",
    "courtroom drama",
    "war movie about soldiers",
    "detective noir mystery",
    "superhero saves the city",
]
MIX = (("recommend", 0.45), ("recommend_filtered", 0.15), ("similar", 0.2), ("search", 0.1), ("rate", 0.1))


def token(data_dir: Path | None) -> str:
    env = {**os.environ, **({"MOVIEREC_DATA_DIR": str(data_dir)} if data_dir else {})}
    out = subprocess.run(
        [sys.executable, "-m", "movierec.cli", "token", "create", "--admin"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def start_server(port: int, data_dir: Path | None, workers: int | None, memo: bool = True) -> subprocess.Popen[bytes]:
    """`movierec serve` in its own session; `memo=False` turns the answer memo off (a repeated request
    is then computed again, as latency benchmarks need)."""
    env = {**os.environ, **({"MOVIEREC_DATA_DIR": str(data_dir)} if data_dir else {})}
    if not memo:
        env["MOVIEREC_ANSWER_MEMO_ENTRIES"] = "0"
    cmd = [sys.executable, "-m", "movierec.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)] if workers else []
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def server_cpu_s(session: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a session (the server this
    script started, and its workers), from /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces: split after its closing parenthesis.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[3]) == session:  # field 6, the session id
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
    return total / os.sysconf("SC_CLK_TCK")


async def _phase(
    server: subprocess.Popen[bytes] | None, load: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """`load()`'s result, with the server's CPU milliseconds per request when this script started it."""
    before = server_cpu_s(server.pid) if server is not None else 0.0
    result = await load()
    if server is not None and result["requests"]:
        result["cpu_ms"] = round((server_cpu_s(server.pid) - before) * 1000 / result["requests"], 2)
    return result


def free_port() -> int:
    """A port nothing listens on now (the OS picks it), for the server this script starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(args: argparse.Namespace) -> int | None:
    """How many workers served: known only for a server this script started."""
    if args.url is not None:
        return None
    return args.workers or get_settings().api_workers


async def wait_healthy(client: httpx.AsyncClient, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit("the API did not become healthy: is the demo index built? (make run / movierec ingest)")


async def sample_ids(client: httpx.AsyncClient, headers: dict[str, str], n_users: int) -> tuple[list[int], list[int]]:
    """Real users (up to `n_users`, the first ids with 5 ratings or more) and movies to ask about,
    found through the API itself."""
    users: list[int] = []
    for uid in range(1, 8 * n_users):
        r = await client.get(f"/users/{uid}/ratings?limit=1", headers=headers)
        if r.status_code == 200 and r.json()["total"] >= 5:
            users.append(uid)
        if len(users) >= n_users:
            break
    movies: list[int] = []
    for q in SEARCHES:
        r = await client.get("/movies/search", params={"q": q, "limit": 10}, headers=headers)
        movies += [m["movie_id"] for m in r.json()["items"]]
    if not users or not movies:
        raise SystemExit("no users or movies found: ingest the demo catalogue first")
    return users, movies


COLD_ID = 2_000_000_000  # --cold excludes ids from here up: no catalogue has them


def request_maker(
    users: list[int], movies: list[int], rng: random.Random, cold: bool = False
) -> Callable[[], tuple[str, str, Any]]:
    """The mix's next request: (method, URL, JSON body). `cold`: every GET a question not asked before."""
    kinds, weights = zip(*MIX, strict=True)
    asked = itertools.count()

    def make() -> tuple[str, str, Any]:
        kind = rng.choices(kinds, weights)[0]
        uid, mid = rng.choice(users), rng.choice(movies)
        k = next(asked)
        new = f"&exclude={COLD_ID + k}" if cold else ""
        if kind == "recommend":
            return "GET", f"/movies/recommendations?user_id={uid}&limit=10{new}", None
        if kind == "recommend_filtered":
            return "GET", f"/movies/recommendations?user_id={uid}&limit=10&genres=Drama,Comedy&year_min=1990{new}", None
        if kind == "similar":
            return "GET", f"/movies/{mid}/similar?limit=10{new}", None
        if kind == "search":
            nudge = f"&popularity={0.6 + k * 1e-9:.12f}" if cold else ""
            return "GET", f"/movies/search?q={rng.choice(SEARCHES)}&limit=10{nudge}", None
        return "POST", f"/users/{uid}/ratings", {"movie_id": mid, "rating": rng.choice([1.0, 2.5, 4.0, 5.0])}

    return make


async def memo_lookups(client: httpx.AsyncClient) -> dict[str, float]:
    """The server's answer memo lookups so far, by outcome (hit, miss), summed over kinds and workers."""
    r = await client.get("/metrics")
    counts = {"hit": 0.0, "miss": 0.0}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == "movierec_answer_memo_lookups_total":
                counts[sample.labels["outcome"]] += sample.value
    return counts


async def _load(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    make: Callable[[], tuple[str, str, Any]],
    clients: int,
    total: int,
    max_seconds: float,
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    remaining = total
    deadline = time.monotonic() + max_seconds

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            method, url, body = make()
            start = time.perf_counter()
            try:
                r = await client.request(method, url, json=body, headers=headers)
                ok = r.status_code < 300
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    began, began_cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed, client_cpu = time.perf_counter() - began, time.process_time() - began_cpu
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "errors": errors,
        **percentiles_ms(latencies),
        # This script's own CPU per request: on a machine it shares with the server, /health's rate is
        # mostly the client's, so the req/s ratio depends on it as much as on the server.
        "client_cpu_ms": round(client_cpu * 1000 / len(latencies), 2) if latencies else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = None
    url = args.url
    if url is None:
        port = args.port or free_port()
        url = f"http://127.0.0.1:{port}"
        log(f"starting the API on {url} over {args.data_dir or './data'}")
        server = start_server(port, args.data_dir, args.workers, memo=not args.no_memo)
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            await wait_healthy(client, 120)
            headers = {"Authorization": f"Bearer {args.token or token(args.data_dir)}"}
            users, movies = await sample_ids(client, headers, args.users)
            make = request_maker(users, movies, random.Random(args.seed), cold=args.cold)
            log(f"warm-up, then {args.requests} mixed requests from {args.clients} clients")
            await _load(client, headers, make, args.clients, min(200, args.requests), args.max_seconds)
            health = await _phase(
                server,
                lambda: _load(
                    client, {}, lambda: ("GET", "/health", None), args.clients, args.requests, args.max_seconds
                ),
            )
            memo_before = await memo_lookups(client)
            mixed = await _phase(
                server, lambda: _load(client, headers, make, args.clients, args.requests, args.max_seconds)
            )
            memo_after = await memo_lookups(client)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    return {
        **mixed,
        "health_rps": health["rps"],
        "health_p50_ms": health["p50_ms"],
        "ratio_to_health": round(mixed["rps"] / health["rps"], 3) if health["rps"] else None,
        "health_cpu_ms": health.get("cpu_ms"),
        "health_client_cpu_ms": health["client_cpu_ms"],
        "cpu_ratio": round(health["cpu_ms"] / mixed["cpu_ms"], 3) if mixed.get("cpu_ms") else None,
        "memo_hit_rate": _hit_rate(memo_before, memo_after),
        "users": len(users),
        "memo": not args.no_memo,
        "cold": args.cold,
        "clients": args.clients,
        "workers": _workers(args),
        "url": url,
    }


def _hit_rate(before: dict[str, float], after: dict[str, float]) -> float | None:
    hits, misses = after["hit"] - before["hit"], after["miss"] - before["miss"]
    return round(hits / (hits + misses), 3) if hits + misses else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running API; without it the script serves --data-dir itself")
    parser.add_argument("--data-dir", type=Path, help="MOVIEREC_DATA_DIR for the server it starts (default ./data)")
    parser.add_argument("--port", type=int, help="port for the server it starts (default: a free one)")
    parser.add_argument("--workers", type=int, help="API workers of the server it starts (default: serve's own)")
    parser.add_argument("--token", help="an admin token (default: created with movierec token create --admin)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=2000, help="requests per phase (health, then mixed)")
    parser.add_argument("--max-seconds", type=float, default=120, help="upper bound on each phase")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=50, help="users the mix draws from (ids with 5+ ratings)")
    parser.add_argument("--cold", action="store_true", help="every GET a question the memo has not seen")
    parser.add_argument("--no-memo", action="store_true", help="start the server without its answer memo")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    table = format_table(
        [result],
        [
            "requests",
            "rps",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "errors",
            "health_rps",
            "ratio_to_health",
            "cpu_ms",
            "health_cpu_ms",
            "cpu_ratio",
            "client_cpu_ms",
            "health_client_cpu_ms",
            "memo_hit_rate",
        ],
    )
    emit(table, result, args.json)


if __name__ == "__main__":
    main()
