"""The ingest when things go wrong: a publish killed between its steps, two ingests at once, Ctrl-C.

Real processes and real signals: each ingest (or the part of one that matters) runs in a child
process that is SIGKILLed or interrupted at the moment under test, and a real Edge store is
inspected afterwards.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from app.catalog.db import make_engine
from app.catalog.models import Rating
from app.files import exclusive_lock
from app.vectorstore.edge import COMPLETE, EdgeStore
from tests.helpers.synthetic import WIDE_POINTS
from tests.helpers.worlds import make_settings

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# Two publishes; the second dies at `where`, as a SIGKILL at that instant would leave it:
# "before-rename": the staging index is complete and marked so; "before-current": it is renamed to
# a generation, and CURRENT still names the first one.
_PUBLISH_TWICE = textwrap.dedent(
    """
    import os, signal, sys
    from app.vectorstore import edge
    from tests.helpers.synthetic import WIDE, wide_points
    root, where = sys.argv[1], sys.argv[2]

    def die(*args):
        os.kill(os.getpid(), signal.SIGKILL)

    store = edge.EdgeStore(root)
    for attempt in (1, 2):
        if attempt == 2 and where == "before-rename":
            edge.EdgeStore._finish_publish = die
        if attempt == 2 and where == "before-current":
            write = edge._write_text_atomic
            edge._write_text_atomic = lambda path, text: die() if path.name == "CURRENT" else write(path, text)
        index = store.stage(WIDE, rebuild=True)
        index.upsert(wide_points())
        store.publish(index, WIDE)
        print(store.generation(), flush=True)
    """
)


def _publish_killed(root: Path, where: str) -> str:
    """Run the two publishes; returns the first one's generation (the second was killed)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PUBLISH_TWICE, str(root), where], capture_output=True, text=True, env=ENV
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return proc.stdout.split()[0]


def test_a_publish_killed_before_the_rename_is_finished_by_the_next_ingest(tmp_path: Path) -> None:
    root = tmp_path / "index"
    first = _publish_killed(root, "before-rename")
    store = EdgeStore(root)
    assert store.generation() == first and (root / "staging" / COMPLETE).is_file()

    store.recover()  # what the next ingest does first
    _assert_published_once_more(store, first)


def test_a_publish_killed_before_current_is_finished_by_the_next_ingest(tmp_path: Path) -> None:
    root = tmp_path / "index"
    first = _publish_killed(root, "before-current")
    store = EdgeStore(root)
    pending = [p.parent.name for p in root.glob(f"gen-*/{COMPLETE}")]
    assert store.generation() == first and len(pending) == 1  # readers keep the first meanwhile

    store.recover()
    assert store.generation() == pending[0]
    _assert_published_once_more(store, first)


def _assert_published_once_more(store: EdgeStore, first: str) -> None:
    """The killed publish is the published generation now, whole; nothing was staged again."""
    current = store.generation()
    assert current is not None and current != first
    assert sorted(p.name for p in store.root.glob("gen-*")) == [first, current]
    assert not (store.root / "staging").exists()
    assert not list(store.root.rglob(COMPLETE))
    reader = store.open()
    assert reader.count() == WIDE_POINTS
    reader.close()
    store.recover()  # nothing left to finish: a no-op
    assert store.generation() == current


# -- one ingest at a time ---------------------------------------------------------------------------
_HOLD = "import sys, time; from pathlib import Path; from app.files import exclusive_lock\n" + (
    "with exclusive_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n"
)


def test_a_second_ingest_is_refused_before_writing_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lock = data / "ingest.lock"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        second = subprocess.run(
            [sys.executable, "-m", "movierec", "ingest", "--source", "demo", "--rebuild"],
            capture_output=True,
            text=True,
            env={**ENV, "MOVIEREC_DATA_DIR": str(data)},
            timeout=300,
        )
    finally:
        holder.send_signal(signal.SIGKILL)  # a holder that dies, however it dies, frees the lock
        holder.wait()
    assert second.returncode == 2
    assert second.stderr.strip().splitlines()[-1] == (
        f"error: another ingest (process {holder.pid}) is running on {data}: "
        "wait for it to finish; its index is published when it does"
    )
    assert "Traceback" not in second.stderr
    assert [p.name for p in data.iterdir()] == ["ingest.lock"]  # no database, no index
    with exclusive_lock(lock):  # the killed holder's lock is free
        pass


# -- Ctrl-C -----------------------------------------------------------------------------------------
_INTERRUPTED = textwrap.dedent(
    """
    import os, signal, sys, time
    import ingest
    from movierec.cli import main

    def run(*args, **kwargs):  # the ingest is under way when the user presses Ctrl-C
        signal.raise_signal(signal.SIGINT)  # in this (the main) thread: a process-wide kill may land in another
        time.sleep(60)

    ingest.run = run
    sys.argv = ["movierec", "ingest", "--source", "demo"]
    main()
    """
)


def interrupted(script: str, data_dir: Path, timeout: float, *args: str, database_url: str | None = None) -> str:
    """Run `script` (a CLI ingest that gets Ctrl-C) with `args` in a fresh interpreter; its stderr, once
    it is known to have exited 130 without a traceback."""
    env = {**ENV, "MOVIEREC_DATA_DIR": str(data_dir)}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    command = [sys.executable, "-c", script, *args]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 130, proc.stderr[-3000:]
    return proc.stderr


def test_ctrl_c_says_what_is_kept_and_how_to_resume(tmp_path: Path) -> None:
    stderr = interrupted(_INTERRUPTED, tmp_path / "data", timeout=120)
    assert stderr.strip().splitlines()[-1] == (
        "interrupted: what was embedded so far is kept and nothing half-built is published; "
        "the same command resumes from there"
    )


# A real ingest (100 demo movies, batches of 16) interrupted once its first batch is in: the
# progress bar is closed before the message, so the message is the last thing on the terminal.
_INTERRUPTED_EMBEDDING = textwrap.dedent(
    """
    import signal, sys
    import ingest.pipeline
    from movierec.cli import main

    class Bar(ingest.pipeline.tqdm):
        def update(self, n=1):
            super().update(n)
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while the models embed the next batch

    ingest.pipeline.tqdm = Bar
    sys.argv = ["movierec", "ingest", "--source", "demo", "--limit", "100", "--batch-size", "16"]
    main()
    """
)


def test_ctrl_c_while_embedding_leaves_the_message_last(tmp_path: Path) -> None:
    stderr = interrupted(_INTERRUPTED_EMBEDDING, tmp_path / "data", timeout=300)
    screen = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert screen[-1].startswith("interrupted: what was embedded so far is kept"), screen[-3:]
    assert "16/100" in screen[-2]  # the bar, closed where it stopped


# Ctrl-C while SQLite rebuilds the ratings' indexes after a large write (a 4M-row file spends about
# 15 s there): SQLAlchemy closes a connection interrupted inside a statement, and the write's cleanup
# then failed on it ("Cannot operate on a closed database"): a traceback, exit 1, instead of the
# message. The signal lands inside the real statement's execution (a before_cursor_execute hook).
_INTERRUPTED_RATINGS = textwrap.dedent(
    """
    import signal, sys
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    import ingest.ratings
    from movierec.cli import main

    ingest.ratings.SQLITE_REINDEX_ROWS = 1  # the large-write path for this small file

    dropped = []

    @event.listens_for(Engine, "before_cursor_execute")
    def ctrl_c(conn, cursor, statement, *args):
        sql = statement.lstrip().upper()
        dropped.extend(["ix"] if sql.startswith("DROP INDEX") else [])  # the write's own, not the schema's
        # SQLite: the write's index rebuild; PostgreSQL: the merge from its temporary table
        if (dropped and sql.startswith("CREATE INDEX")) or sql.startswith("INSERT INTO RATINGS "):
            signal.raise_signal(signal.SIGINT)

    sys.argv = ["movierec", "ingest", "--source", "tmdb", "--movies", sys.argv[1], "--ratings", sys.argv[2]]
    main()
    """
)


def test_ctrl_c_while_the_ratings_are_written_says_what_is_kept(tmp_path: Path) -> None:
    movies, ratings = tmp_path / "movies.csv", tmp_path / "ratings.csv"
    movies.write_text("id,title\n1,Heat\n2,Fargo\n")
    ratings.write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n2,2,3.5,964982703\n")
    settings = make_settings(tmp_path / "data")  # SQLite, or a fresh PostgreSQL database (MOVIEREC_TEST_DB)
    url = settings.database_url or ""
    stderr = interrupted(_INTERRUPTED_RATINGS, settings.data_dir, 300, str(movies), str(ratings), database_url=url)
    assert stderr.strip().splitlines()[-1].startswith("interrupted: ")
    engine = make_engine(settings.sqlalchemy_url)
    try:  # one transaction: no rating, and every index of the table back
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM ratings")).scalar() == 0
        indexes = {index["name"] for index in inspect(engine).get_indexes("ratings")}
    finally:
        engine.dispose()
    assert {index.name for index in Rating.__table__.indexes} <= indexes


# -- the machine, not the code: one line, exit 2 ----------------------------------------------------
def _ingest_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "movierec", "ingest", "--source", "demo"],
        capture_output=True,
        text=True,
        env={**ENV, **env},
        timeout=300,
    )


def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    # Port 1: nothing listens there; the connection is refused at once.
    proc = _ingest_cli({"MOVIEREC_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": "postgresql://u@127.0.0.1:1/x"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the database is unavailable: connection failed")
    assert last.endswith("check DATABASE_URL, and that it runs and accepts writes")


def test_a_data_dir_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("an operator's typo: a file where the data dir should be")
    proc = _ingest_cli({"MOVIEREC_DATA_DIR": str(not_a_folder)})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: the data folder {not_a_folder} is a file, not a folder: move the file, or set MOVIEREC_DATA_DIR "
        "to a folder"
    )


@pytest.mark.parametrize("how", ["option", "setting"])
def test_cuda_where_there_is_none_is_refused_before_anything_is_written(tmp_path: Path, how: str) -> None:
    """It was a traceback (exit 1) raised when the models loaded, after the catalogue and its ratings
    were already in the database."""
    data = tmp_path / "data"
    args = [sys.executable, "-m", "movierec", "ingest", "--source", "ml-100k", "--limit", "5"]
    env = {**ENV, "MOVIEREC_DATA_DIR": str(data), "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a GPU machine
    if how == "option":
        args += ["--device", "cuda"]
    else:
        env["MOVIEREC_DEVICE"] = "cuda"
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    said = " ".join(proc.stderr.replace("│", " ").split())
    assert "CUDA is not available" in said
    assert ("--device" if how == "option" else "MOVIEREC_DEVICE") in said
    assert not (data / "movierec.db").exists() and not (data / "qdrant").exists()


def test_serve_with_cuda_where_there_is_none_is_one_line(tmp_path: Path) -> None:
    """`serve` (which has no --device) printed the lifespan's whole traceback as a log line, ending in
    'use --device cpu'."""
    env = {**ENV, "MOVIEREC_DATA_DIR": str(tmp_path / "data"), "MOVIEREC_DEVICE": "cuda", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "movierec", "serve", "--port", "1", "--workers", "1"],  # refused before binding
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: MOVIEREC_DEVICE=cuda, but CUDA is not available on this machine; set it to cpu or auto"
    ]


def test_a_locked_or_read_only_sqlite_database_is_said_so(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from movierec.cli import environment_problem

    path = tmp_path / "movierec.db"
    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.commit()
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    impatient = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    with pytest.raises(OperationalError) as locked, impatient.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert environment_problem(locked.value) == (
        "the database is locked by another writer (waited 30 s): try again later"
    )
    holder.rollback()
    read_only = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(OperationalError) as refused, read_only.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert environment_problem(refused.value) == (
        "the database is read-only: nothing can be written until it is writable again"
    )
    impatient.dispose()
    read_only.dispose()
    holder.close()
