"""Soak the served API on 127.0.0.1: find the peak, then hold a fraction of it for a fixed time.

    .venv/bin/python bench/soak.py --data-dir /tmp/demo --minutes 5            # serves --data-dir itself
    .venv/bin/python bench/soak.py --url http://127.0.0.1:8000 --minutes 1 --json

1. Peak: `--clients` closed-loop clients send bench/api.py's mixed traffic for `--peak-seconds`.
2. Soak: the same clients pace themselves to `--fraction` of that peak for `--minutes`.
Rating writes go to fresh users (ids from 8,000,000 + the clock, new each run), each pair once, so the number of
ratings the API acknowledged must equal the number it stores afterwards. Reported: requests, errors
(any non-2xx or failed connection), p50/p99, ratings written vs stored, and each worker's RSS at the
start and end of the soak (read from /proc: a server this script started, on Linux). Bounded in time
and loopback only: `--url` must name 127.0.0.1 or localhost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from api import free_port, request_maker, sample_ids, start_server, token, wait_healthy
from common import emit, format_table, log, percentiles_ms

SOAK_USER = 8_000_000  # above every MovieLens user: the writes go to users of their own


class Writes:
    """Distinct (user, movie) rating writes, and how many the API acknowledged."""

    def __init__(self, movies: list[int], rng: random.Random) -> None:
        self.movies, self.rng = sorted(set(movies)), rng
        # A new block of users each run (by the clock), so a second soak on the same data dir counts
        # only its own writes as stored.
        self.user, self.next_movie, self.acknowledged = SOAK_USER + int(time.time()), 0, 0
        self.users: set[int] = set()

    def next(self) -> tuple[str, str, Any]:
        if self.next_movie == len(self.movies):
            self.user, self.next_movie = self.user + 1, 0
        movie = self.movies[self.next_movie]
        self.next_movie += 1
        self.users.add(self.user)
        return "POST", f"/users/{self.user}/ratings", {"movie_id": movie, "rating": self.rng.choice([1.0, 3.5, 5.0])}


def _rss_mb(server_pid: int | None) -> dict[str, float]:
    """RSS of each API worker (the children of the server process, or the process itself)."""
    if server_pid is None:
        return {}
    pids = [server_pid]
    for _ in range(2):  # `python -m movierec.cli serve` -> uvicorn's supervisor -> workers
        children = []
        for pid in pids:
            with contextlib.suppress(OSError):
                children += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        if not children:
            break
        pids = children
    out = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" in cmdline:  # multiprocessing's helper, not a worker
            continue
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        out[str(pid)] = round(kb / 1024, 1)
    return out


async def _drive(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    make: Callable[[], tuple[str, str, Any]],
    writes: Writes,
    clients: int,
    seconds: float,
    rate: float | None,
) -> dict[str, Any]:
    """`clients` loops for `seconds`; with `rate`, each paces itself to rate/clients requests a second."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    interval = clients / rate if rate else 0.0

    async def loop(offset: float) -> None:
        next_at = time.monotonic() + offset
        while True:
            if rate:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            if time.monotonic() >= deadline:
                return
            method, url, body = make()
            if method == "POST":
                method, url, body = writes.next()
            start = time.perf_counter()
            try:
                r = await client.request(method, url, json=body, headers=headers)
                problem = None if r.status_code < 300 else str(r.status_code)
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            latencies.append(time.perf_counter() - start)
            if problem is None and method == "POST":
                writes.acknowledged += 1
            elif problem is not None:
                errors[problem] = errors.get(problem, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(loop(i * interval / clients) for i in range(clients)))
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        **percentiles_ms(latencies),
    }


async def _stored(client: httpx.AsyncClient, headers: dict[str, str], users: set[int]) -> int:
    total = 0
    for uid in sorted(users):
        r = await client.get(f"/users/{uid}/ratings?limit=1", headers=headers)
        if r.status_code == 200:
            total += int(r.json()["total"])
        elif r.status_code != 404:  # 404: a user none of whose writes was acknowledged
            raise SystemExit(f"could not count user {uid}'s ratings: {r.status_code} {r.text[:200]}")
    return total


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = None
    url = args.url
    if url is None:
        url = f"http://127.0.0.1:{free_port()}"
        log(f"starting the API on {url} over {args.data_dir or './data'}")
        server = start_server(int(url.rsplit(":", 1)[1]), args.data_dir, args.workers)
    elif urlsplit(url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("--url must be on 127.0.0.1 or localhost: this script loads only the loopback interface")
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    rng = random.Random(args.seed)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            await wait_healthy(client, 180)
            headers = {"Authorization": f"Bearer {args.token or token(args.data_dir)}"}
            users, movies = await sample_ids(client, headers)
            make = request_maker(users, movies, rng)
            writes = Writes(movies, rng)
            log(f"peak: {args.clients} closed-loop clients for {args.peak_seconds:g} s")
            peak = await _drive(client, headers, make, writes, args.clients, args.peak_seconds, None)
            target = round(peak["rps"] * args.fraction, 1)
            log(f"peak {peak['rps']} req/s; soak at {target} req/s for {args.minutes:g} min")
            rss_start = _rss_mb(server.pid if server else None)
            soak = await _drive(client, headers, make, writes, args.clients, args.minutes * 60, target)
            rss_end = _rss_mb(server.pid if server else None)
            stored = await _stored(client, headers, writes.users)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    return {
        **soak,
        "peak_rps": peak["rps"],
        "target_rps": target,
        "minutes": args.minutes,
        "ratings_written": writes.acknowledged,
        "ratings_stored": stored,
        "ratings_equal": writes.acknowledged == stored,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "clients": args.clients,
        "url": url,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running API on loopback; without it the script serves --data-dir itself")
    parser.add_argument("--data-dir", type=Path, help="MOVIEREC_DATA_DIR for the server it starts (default ./data)")
    parser.add_argument("--workers", type=int, help="API workers of the server it starts (default: serve's own)")
    parser.add_argument("--token", help="an admin token (default: created with movierec token create --admin)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--peak-seconds", type=float, default=20, help="length of the peak measurement")
    parser.add_argument("--fraction", type=float, default=0.8, help="share of the peak to soak at")
    parser.add_argument("--minutes", type=float, default=5, help="length of the soak (bounded)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not 0 < args.minutes <= 60 or not 0 < args.fraction <= 1:
        raise SystemExit("--minutes must be in (0, 60] and --fraction in (0, 1]")
    result = asyncio.run(run(args))
    columns = ["requests", "rps", "errors", "p50_ms", "p99_ms", "peak_rps", "ratings_written", "ratings_stored"]
    emit(
        format_table([result], columns) + f"\nworker RSS MB: {result['rss_start_mb']} -> {result['rss_end_mb']}",
        result,
        args.json,
    )


if __name__ == "__main__":
    main()
