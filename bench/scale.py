"""Cost vs size: the real `movierec ingest` on MovieLens-25M-shaped synthetic data, then recommendations.

Per size (`--ratings 1M,5M,25M`; default 200k for a quick run) the seeded generator of
bench/gen_ratings.py writes a tmdb-format catalogue (movies.jsonl with title, year, genres, overview,
tagline, keywords, cast, director...) and a ratings.csv with power-law item and user activity. The
full size is MovieLens 25M's shape: 62k movies, 162k users, 25M ratings; a smaller size keeps the
ratings per user (users scale with the ratings) and the catalogue scales with their square root
(`--movies` / `--users` override both).

Per size and database (`--db sqlite,postgres`):
- `movierec ingest --source tmdb --movies ... --ratings ... --json` in its own process, twice: a first
  ingest into an empty data dir, then the same files again (nothing changed). Wall time and peak RSS
  (the child's own, from os.wait4) of each; ratings/s of the first; the database's size;
  the collab fit's time and the number of rating-fitted vectors, from the ingest's JSON summary;
  coverage: the share of the movies with >= 20 ratings whose collab vector is fitted from ratings.
- Recommendation latency by history length: the users whose rating counts are closest to 50, 500
  and 5,000. In-process: the API's Recommender (hybrid, the API's default) over the published index
  opened as the API opens it (LiveIndex + vector cache), after the ratings query a request makes
  (bench/query.py's `request_inputs`). Over HTTP: GET /movies/recommendations from a
  `movierec serve` (one worker) on a free loopback port. p50 of `--repeats` calls per user.

    .venv/bin/python bench/scale.py [--ratings 200k] [--db sqlite] [--workdir DIR] [--json]
    .venv/bin/python bench/scale.py --ratings 1M,5M --db sqlite,postgres
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from api import start_server, token
from common import ROOT, emit, format_table, log, parse_ints, percentiles_ms, timer
from gen_ratings import generate
from ratings_load import database_url

FULL = {"ratings": 25_000_000, "movies": 62_000, "users": 162_000}  # MovieLens 25M
HISTORIES = (50, 500, 5_000)
MIN_RATINGS = 20  # the coverage target: every movie with >= 20 ratings has a fitted collab vector


def shape(ratings: int) -> tuple[int, int]:
    """(movies, users) for `ratings`: users keep MovieLens 25M's ratings per user, movies scale with
    the square root (a small catalogue is denser, as MovieLens 1M's is)."""
    share = ratings / FULL["ratings"]
    return max(500, round(FULL["movies"] * share**0.5)), max(500, round(FULL["users"] * share))


def dataset(workdir: Path, ratings: int, movies: int, users: int, seed: int) -> Path:
    """The generated files for this shape, made once per work dir."""
    out = workdir / f"data-{ratings}-{movies}-{users}-{seed}"
    if not (out / "done").is_file():
        with timer() as t:
            generate(out, movies, users, ratings, seed)
        (out / "done").write_text(f"{t[0]:.1f}\n")
        log(f"generated {movies:,} movies, {ratings:,} ratings of {users:,} users in {t[0]:.1f} s")
    return out


def run_ingest(data: Path, env: dict[str, str], log_path: Path) -> dict[str, Any]:
    """One `movierec ingest` in its own process: its JSON summary, wall seconds, CPU seconds (user +
    system: on a shared machine they say more than the wall time) and peak RSS (MiB)."""
    cmd = [sys.executable, "-m", "movierec.cli", "ingest", "--source", "tmdb", "--json"]
    cmd += ["--movies", str(data / "movies.jsonl"), "--ratings", str(data / "ratings.csv")]
    started = time.perf_counter()
    with log_path.open("w") as err, tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage: its peak RSS alone
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    if child.returncode:
        raise SystemExit(f"ingest failed ({child.returncode}); see {log_path}:\n{log_path.read_text()[-2000:]}")
    summary = json.loads(text.strip().splitlines()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": usage.ru_maxrss / 1024, "summary": summary}


def db_size_mb(url: str) -> float:
    from sqlalchemy import create_engine, text

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20  # with -wal, -shm
    engine = create_engine(url)
    with engine.connect() as conn:
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    engine.dispose()
    return float(size) / 2**20


def heavy_users(db: Any) -> dict[int, tuple[int, int]]:
    """For each history length in HISTORIES: (user id, ratings) of the user whose count is closest."""
    from sqlalchemy import func, select

    from app.catalog.models import Rating

    with db.connect() as conn:
        rows = conn.execute(select(Rating.user_id, func.count()).group_by(Rating.user_id)).all()
    users, counts = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    return {h: (int(users[i]), int(counts[i])) for h in HISTORIES for i in [int(np.argmin(np.abs(counts - h)))]}


def collab_coverage(db: Any, index: Any) -> float | None:
    """Share of the movies with >= MIN_RATINGS ratings whose collab vector was fitted from ratings."""
    from sqlalchemy import func, select

    from app.catalog.models import Rating

    with db.connect() as conn:
        query = select(Rating.movie_id).group_by(Rating.movie_id).having(func.count() >= MIN_RATINGS)
        ids = [int(r[0]) for r in conn.execute(query)]
    if not ids:
        return None
    fitted = sum(
        m.payload.get("collab_source") == "ratings"
        for start in range(0, len(ids), 1024)
        for m in index.retrieve(ids[start : start + 1024])
    )
    return round(fitted / len(ids), 4)


def in_process(env: dict[str, str], users: dict[int, tuple[int, int]], repeats: int) -> tuple[dict, float | None]:
    """p50 ms per history length of (ratings query + Recommender.recommend), as the API serves it;
    and the collab coverage."""
    from query import NoTextModel, request_inputs

    from app.api.state import Services
    from app.settings import Settings

    # As an API worker opens them (Services.open: the vector cache with its views, then gc.freeze),
    # without the answer memo: each user's request is repeated, and the work is what is timed.
    settings = Settings(
        data_dir=Path(env["MOVIEREC_DATA_DIR"]), database_url=env.get("DATABASE_URL"), answer_memo_entries=0
    )
    services = Services.open(settings, NoTextModel())
    db, live, rec = services.engine, services.live, services.recommender
    out = {}
    try:
        coverage = collab_coverage(db, live.current())
        for h, (uid, _) in users.items():
            times = []
            for i in range(repeats + 3):  # 3 untimed warm-up calls
                with timer() as t:
                    ratings, _ = request_inputs(db, uid, hidden=False)
                    rec.recommend(
                        ratings,
                        limit=10,
                        strategy="hybrid",
                        popularity=settings.recommend.popularity_weight,
                        diversity=settings.recommend.diversity,
                    )
                if i >= 3:
                    times.append(t[0])
            out[h] = percentiles_ms(times)["p50_ms"]
    finally:
        services.close()
    return out, coverage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def over_http(env: dict[str, str], users: dict[int, tuple[int, int]], repeats: int) -> dict[int, float]:
    """p50 ms per history length of GET /movies/recommendations from a one-worker `movierec serve`."""
    data_dir = Path(env["MOVIEREC_DATA_DIR"])
    port = free_port()
    saved = dict(os.environ)
    os.environ.update(env)  # start_server and token pass os.environ on to the server
    try:
        server = start_server(port, data_dir, 1, memo=False)  # each user's request is repeated: time the work
        access_token = token(data_dir)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the API did not become healthy in 180 s")
                time.sleep(0.5)
            headers = {"Authorization": f"Bearer {access_token}"}
            for h, (uid, _) in users.items():
                times = []
                for i in range(repeats + 3):
                    with timer() as t:
                        answer = client.get(
                            "/movies/recommendations", params={"user_id": uid, "limit": 10}, headers=headers
                        )
                    answer.raise_for_status()
                    if i >= 3:
                        times.append(t[0])
                out[h] = percentiles_ms(times)["p50_ms"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return out


def measure(ratings: int, kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    movies, users = shape(ratings)
    movies, users = args.movies or movies, args.users or users
    data = dataset(workdir, ratings, movies, users, args.seed)
    run_dir = workdir / f"run-{ratings}-{kind}-{int(time.time())}"
    run_dir.mkdir()
    row: dict[str, Any] = {"ratings": ratings, "movies": movies, "users": users, "db": kind}
    with database_url(kind, args.postgres_url, run_dir) as url:  # a PostgreSQL database is dropped after
        env = {**os.environ, "MOVIEREC_DATA_DIR": str(run_dir / "data"), "DATABASE_URL": url}
        for run in ("first", "again"):
            row.update(ingest_figures(run, data, env, run_dir))
        row["db_mb"] = round(db_size_mb(url), 1)
        from app.catalog.db import make_engine

        db = make_engine(url)
        picked = heavy_users(db)
        db.dispose()
        row["history_ratings"] = "/".join(str(n) for _, n in picked.values())
        log(f"latency: users with {row['history_ratings']} ratings")
        local, row["collab_coverage_ge20"] = in_process(env, picked, args.repeats)
        http = over_http(env, picked, args.repeats)
    for h in HISTORIES:
        row[f"inproc_{h}_ms"], row[f"http_{h}_ms"] = local[h], http[h]
    return row


def ingest_figures(run: str, data: Path, env: dict[str, str], run_dir: Path) -> dict[str, Any]:
    """One ingest (`run`: first or again) and its figures, under the table's column names."""
    log(f"{data.name}, {env['DATABASE_URL'].split(':')[0]}: {run} ingest")
    result = run_ingest(data, env, run_dir / f"ingest-{run}.log")
    summary = result["summary"]
    log(f"  {run}: {result['seconds']:.1f} s wall, {result['cpu_s']:.1f} s CPU, {result['peak_rss_mb']:.0f} MiB")
    row = {
        f"{run}_s": round(result["seconds"], 1),
        f"{run}_cpu_s": round(result["cpu_s"], 1),
        f"{run}_rss_mb": round(result["peak_rss_mb"]),
        f"{run}_ratings_s": summary["source_stats"].get("ratings_seconds"),
    }
    if run == "first":
        # The ratings step's own time (read, check, write, refresh counts); older summaries lack it:
        # then all but the index step (start-up and the movies' load included).
        seconds = summary["source_stats"].get("ratings_seconds") or result["seconds"] - summary["seconds"]
        row["ratings_stored"] = summary["ratings"]
        row["ratings_per_s"] = round(summary["ratings"] / seconds)
        row["collab_fit_s"] = summary.get("collab_seconds")
        row["collab_fitted"] = summary.get("collab_fitted")
    else:
        row["again_embedded"] = summary["embedded"]
        row["again_written"] = summary["source_stats"].get("ratings_written")
        row["again_collab_s"] = summary.get("collab_seconds")
    return row


COLUMNS = [
    "ratings",
    "movies",
    "users",
    "db",
    "first_s",
    "first_cpu_s",
    "first_rss_mb",
    "again_s",
    "again_cpu_s",
    "again_rss_mb",
    "first_ratings_s",
    "again_ratings_s",
    "ratings_per_s",
    "db_mb",
    "collab_fit_s",
    "collab_fitted",
    "collab_coverage_ge20",
    "history_ratings",
    *(f"inproc_{h}_ms" for h in HISTORIES),
    *(f"http_{h}_ms" for h in HISTORIES),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", default="200k", help="Sizes, e.g. 1M,5M,25M (default 200k: a quick run).")
    parser.add_argument("--movies", type=int, help="Catalogue size (default: scaled from MovieLens 25M's).")
    parser.add_argument("--users", type=int, help="Users (default: scaled from MovieLens 25M's).")
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres or both, comma-separated.")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--workdir", type=Path, help="Where data and runs go (default: a temporary folder).")
    parser.add_argument("--repeats", type=int, default=20, help="Timed recommendations per user.")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="movierec-scale-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = [measure(n, kind, args, workdir) for n in parse_ints(args.ratings) for kind in args.db.split(",")]
    emit(format_table(rows, COLUMNS), {"runs": rows}, args.json)


if __name__ == "__main__":
    main()
