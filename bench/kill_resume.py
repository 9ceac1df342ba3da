"""Kill `movierec ingest` at random moments and rerun it, many times: does every rerun exit 0 and
publish the index a clean ingest publishes?

Each cycle ingests into a fresh data dir, SIGKILLs the ingest `--kills` times (each after a random
delay, or, with `--after-embedding`, a random delay after its progress bar reached the end: the
collab fit, maps, optimize and publish), then reruns it to the end and compares the published index
with a clean ingest's: the same ids, content hashes, text vectors (cosine > 0.9999) and which movies
have an image vector. A rerun that dies (exit -11 is SIGSEGV) keeps its data dir as it was before
that rerun under WORKDIR/crash-N/, with the rerun's stderr (faulthandler's stack), to replay.

    python bench/kill_resume.py [--source demo|posters] [--limit 120] [--cycles 50]
                                [--kill-range 0.5,15] [--kills 1] [--after-embedding] [--workdir DIR] [--json]

`posters`: a tmdb catalogue of `--limit` movies made from tests/fixtures/tmdb, most with a poster
(the image model runs, image vectors are float16). Not a test: slow, and it reports what it saw.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, emit, format_table, log

FIXTURE = ROOT / "tests" / "fixtures" / "tmdb"
RERUN_TIMEOUT_S = 600
Snapshot = dict[int, tuple[str, dict[str, np.ndarray]]]  # id -> (content hash, vectors)


def posters_catalogue(out: Path, n: int) -> Path:
    """`n` tmdb movies with distinct titles and ids, cycling through the fixture's (its posters:
    copied beside the file, some missing or broken as in the fixture)."""
    base = json.loads((FIXTURE / "movies.json").read_text())
    shutil.copytree(FIXTURE / "posters", out / "posters", dirs_exist_ok=True)
    movies = []
    for i in range(n):
        m = dict(base[i % len(base)])
        m["id"] = 100_000 + i
        m["title"] = f"{m['title']} {i}"
        movies.append(m)
    path = out / "movies.json"
    path.write_text(json.dumps(movies))
    return path


def ingest_cmd(args: argparse.Namespace, movies: Path | None, *extra: str) -> list[str]:
    source = ["--source", "demo"] if movies is None else ["--source", "tmdb", "--movies", str(movies)]
    return [
        sys.executable,
        "-m",
        "movierec.cli",
        "ingest",
        *source,
        "--limit",
        str(args.limit),
        "--batch-size",
        str(args.batch_size),
        "--device",
        "cpu",
        *extra,
    ]


def ingest_env(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "PYTHONFAULTHANDLER": "1"}
    for name in ("QDRANT_URL", "DATABASE_URL"):
        env.pop(name, None)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def fresh_database(admin_url: str | None, name: str) -> str | None:
    """A new empty PostgreSQL database `name` (dropped first if there) beside `admin_url`'s; None without one."""
    if not admin_url:
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def killed_run(
    args: argparse.Namespace, movies: Path | None, data_dir: Path, db: str | None, rng: random.Random
) -> dict[str, Any]:
    """Start an ingest and SIGKILL it; what happened (when, and whether it had finished first)."""
    proc = subprocess.Popen(
        ingest_cmd(args, movies),
        env=ingest_env(data_dir, db),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    started = time.monotonic()
    embedded = threading.Event()
    seen = bytearray()

    def watch() -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(4096):  # type: ignore[attr-defined]
            seen.extend(chunk)
            if re.search(rb"%d/%d \[" % (args.limit, args.limit), seen[-8192:]):
                embedded.set()

    threading.Thread(target=watch, daemon=True).start()
    if args.during_embedding:
        target = rng.randint(1, args.limit - 1)  # kill once the progress bar shows this many movies
        while proc.poll() is None and max(_progress(seen, args.limit), default=-1) < target:
            time.sleep(0.005)
        at = time.monotonic() - started
    elif args.after_embedding:
        embedded.wait(timeout=RERUN_TIMEOUT_S)
        base = time.monotonic() - started
        delay = rng.uniform(*args.kill_range)
        time.sleep(delay)
        at = base + delay
    else:
        at = rng.uniform(*args.kill_range)
        time.sleep(at)
    finished = proc.poll() is not None
    if not finished:
        proc.send_signal(signal.SIGKILL)
    rc = proc.wait()
    return {
        "at": round(at, 2),
        "finished_first": finished,
        "rc": rc,
        "embedded_before": max(_progress(seen, args.limit), default=-1),
    }


def _progress(seen: bytearray, limit: int) -> list[int]:
    return [int(n) for n in re.findall(rb"(\d+)/%d \[" % limit, bytes(seen))]


def snapshot(index_root: Path) -> Snapshot:
    from app.vectorstore.base import content_hashes
    from app.vectorstore.edge import EdgeStore

    index = EdgeStore(index_root).open()
    try:
        stored = index.retrieve(sorted(content_hashes(index)), vectors=("text", "image"))
        return {m.id: (m.payload["content_hash"], m.vectors) for m in stored}
    finally:
        index.close()


def differences(got: Snapshot, want: Snapshot) -> list[str]:
    problems = []
    if missing := sorted(set(want) - set(got)):
        problems.append(f"missing ids {missing[:10]} ({len(missing)})")
    if extra := sorted(set(got) - set(want)):
        problems.append(f"extra ids {extra[:10]} ({len(extra)})")
    for mid in sorted(set(got) & set(want)):
        (h1, v1), (h2, v2) = got[mid], want[mid]
        if h1 != h2:
            problems.append(f"{mid}: content hash {h1} != {h2}")
        elif float(v1["text"] @ v2["text"]) < 0.9999:
            problems.append(f"{mid}: text cosine {float(v1['text'] @ v2['text']):.5f}")
        elif ("image" in v1) != ("image" in v2):
            problems.append(f"{mid}: image vector {'image' in v1} != {'image' in v2}")
        elif "image" in v1 and float(v1["image"] @ v2["image"]) < 0.998:
            problems.append(f"{mid}: image cosine {float(v1['image'] @ v2['image']):.5f}")
    return problems


def cycle(
    args: argparse.Namespace, movies: Path | None, reference: Snapshot, n: int, rng: random.Random
) -> dict[str, Any]:
    data_dir = args.workdir / "run"
    shutil.rmtree(data_dir, ignore_errors=True)
    db = fresh_database(args.postgres, "kill_resume_run")
    kills = [killed_run(args, movies, data_dir, db, rng) for _ in range(args.kills)]
    data_dir.mkdir(parents=True, exist_ok=True)  # a run killed before it made its data dir
    before = args.workdir / "before-rerun"
    shutil.rmtree(before, ignore_errors=True)
    subprocess.run(["cp", "-a", "--sparse=always", str(data_dir), str(before)], check=True)
    started = time.monotonic()
    try:
        out = subprocess.run(
            ingest_cmd(args, movies, "--json"),
            env=ingest_env(data_dir, db),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=RERUN_TIMEOUT_S,
        )
        rc: int | str = out.returncode
        stderr, stdout = out.stderr, out.stdout
    except subprocess.TimeoutExpired as exc:
        rc, stderr, stdout = "hang", str(exc.stderr or ""), ""
    seconds = round(time.monotonic() - started, 1)
    result: dict[str, Any] = {"cycle": n, "kills": kills, "rerun_rc": rc, "rerun_s": seconds}
    if rc != 0:
        keep = args.workdir / f"crash-{n}"
        before.rename(keep)
        (keep / "rerun.stderr").write_text(stderr)
        result["kept"] = str(keep)
        result["stderr_tail"] = stderr[-3000:]
        return result
    summary = json.loads(stdout.strip().splitlines()[-1])
    result["embedded"] = summary["embedded"]
    result["finished_a_publish"] = "finishing an interrupted publish" in stderr  # EdgeStore.recover()
    problems = differences(snapshot(data_dir / "qdrant"), reference)
    if summary["embedded"] + summary["skipped_unchanged"] != args.limit:
        problems.append(f"embedded {summary['embedded']} + skipped {summary['skipped_unchanged']} != {args.limit}")
    if problems:
        keep = args.workdir / f"wrong-{n}"
        before.rename(keep)
        result["kept"] = str(keep)
        result["problems"] = problems[:20]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", choices=("demo", "posters"), default="demo")
    p.add_argument("--limit", type=int, default=120)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--kill-range", default="0.5,15", help="seconds: the kill's random delay, low,high")
    p.add_argument("--kills", type=int, default=1, help="killed runs before the rerun")
    p.add_argument("--after-embedding", action="store_true", help="the delay counts from the end of the embedding")
    p.add_argument("--during-embedding", action="store_true", help="kill at a random count of the progress bar")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--postgres", metavar="ADMIN_URL", help="keep the catalogue in PostgreSQL (a database per cycle)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/kill-resume"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    args.kill_range = tuple(float(x) for x in args.kill_range.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    movies = posters_catalogue(args.workdir, args.limit) if args.source == "posters" else None
    clean = args.workdir / "clean"
    if not (clean / "qdrant" / "CURRENT").exists():
        shutil.rmtree(clean, ignore_errors=True)
        clean_db = fresh_database(args.postgres, "kill_resume_clean")
        subprocess.run(
            ingest_cmd(args, movies, "--json"),
            env=ingest_env(clean, clean_db),
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    reference = snapshot(clean / "qdrant")
    results = []
    for n in range(args.cycles):
        r = cycle(args, movies, reference, n, rng)
        results.append(r)
        log(json.dumps({k: v for k, v in r.items() if k != "stderr_tail"}))
        if "stderr_tail" in r:
            log(r["stderr_tail"])
    bad = [r for r in results if r["rerun_rc"] != 0 or r.get("problems")]
    moments = sorted(k["at"] for r in results for k in r["kills"])
    row = {
        "cycles": len(results),
        "kills": len(moments),
        "rerun_failed": sum(r["rerun_rc"] != 0 for r in results),
        "wrong_index": sum(bool(r.get("problems")) for r in results),
        "kill_s_min": moments[0] if moments else None,
        "kill_s_max": moments[-1] if moments else None,
        "finished_before_kill": sum(k["finished_first"] for r in results for k in r["kills"]),
        "publish_finished_by_rerun": sum(bool(r.get("finished_a_publish")) for r in results),
    }
    report = {**row, "source": args.source, "kill_moments_s": moments, "bad": bad}
    emit(format_table([row], list(row)), report, args.json)


if __name__ == "__main__":
    main()
