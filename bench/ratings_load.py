"""Time and peak memory of the ratings load (movies + ratings into the store of record, no embedding).

`cpu_s` is the process's user + system CPU time (imports included): on a shared machine it says
more than the wall time. `server_cpu_s`: PostgreSQL's own CPU for this run (its backends serving the
run's database, read from /proc: a server on this machine only; empty otherwise).

Runs `store_catalogue` on a synthetic tmdb catalogue (bench/gen_ratings.py; given its `movielens/`
folder, `--movielens-dat`: the movielens source reading movies.dat and ratings.dat) twice per database, each
in its own process so that peak RSS is that run's: a first load into an empty database, then the
same files again (nothing changed: must write nothing).

    .venv/bin/python bench/ratings_load.py --data /tmp/scale [--db sqlite,postgres]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from common import ROOT, emit, format_table, log

RUN = """
import json, os, resource, time
from pathlib import Path
from sqlalchemy import text
from app.catalog.db import make_engine
from ingest.pipeline import store_catalogue
from app.datasets import load_catalogue
engine = make_engine({url!r})
started = time.perf_counter()
if {dat!r}:  # a MovieLens 1M folder: movies.dat, its ratings.dat streamed as the catalogue's own
    catalogue = load_catalogue("movielens", directory=Path({data!r}))
    stored, errors = store_catalogue(engine, catalogue)
else:
    catalogue = load_catalogue("tmdb", movies={movies!r})
    stored, errors = store_catalogue(engine, catalogue, Path({ratings!r}))
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
rss, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
server = None
if engine.dialect.name == "postgresql":  # the pool's backends, alive since make_engine: their CPU is this run's
    with engine.connect() as conn:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        pids = conn.execute(text(query)).scalars().all()
    try:
        ticks = sum(sum(map(int, open(f"/proc/{{p}}/stat").read().rsplit(")", 1)[1].split()[11:13])) for p in pids)
        server = ticks / os.sysconf("SC_CLK_TCK")
    except OSError:  # a server on another machine
        pass
print(json.dumps({{"seconds": seconds, "cpu_s": cpu, "server_cpu_s": server, "peak_rss_mb": rss, "stored": stored,
                  "bad_rows": len(errors), "written": catalogue.stats["ratings_written"],
                  "unchanged": catalogue.stats["ratings_unchanged"],
                  "ratings_s": catalogue.stats["ratings_seconds"]}}))
"""


def run_once(url: str, data: Path) -> dict:
    dat = (data / "movies.dat").is_file()
    movies, ratings = str(data / "movies.jsonl"), str(data / "ratings.csv")
    code = RUN.format(url=url, dat=dat, data=str(data), movies=movies, ratings=ratings)
    # From the repository root: `python -c` puts the working directory first on sys.path.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def database_url(kind: str, admin_url: str, workdir: Path) -> Iterator[str]:
    """A fresh database for one kind: a file in `workdir`, or a PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'movierec.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"movierec_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, required=True, help="Folder from bench/gen_ratings.py (or its movielens/ folder)."
    )
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for kind in args.db.split(","):
        with tempfile.TemporaryDirectory() as tmp, database_url(kind, args.postgres_url, Path(tmp)) as url:
            for run in ("first", "unchanged"):
                log(f"{kind}: {run} load")
                result = run_once(url, args.data)
                rows.append({"db": kind, "run": run, **{k: v if v is None else round(v, 2) for k, v in result.items()}})
    columns = ["db", "run", "seconds", "ratings_s", "cpu_s", "server_cpu_s", "peak_rss_mb", "stored", "written"]
    columns += ["unchanged", "bad_rows"]
    emit(format_table(rows, columns), {"runs": rows}, args.json)


if __name__ == "__main__":
    main()
