"""The ingest pipeline end to end: real models, real Edge index, real SQLite."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, select

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.catalog.models import Rating
from app.files import copy_tree_sparse
from app.settings import Settings
from app.vectorstore import MovieFilter, content_hashes, open_store
from tests.helpers.crash import run_explained
from tests.helpers.ingest import build_index
from tests.helpers.worlds import copy_settings, make_settings

TMDB = Path(__file__).parent / "fixtures" / "tmdb"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image_encoder():
    from app.embedding.image import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder("cpu")


@pytest.fixture(scope="module")
def tmdb_run(tmp_path_factory, text_encoder, image_encoder):
    settings = make_settings(tmp_path_factory.mktemp("tmdb"))
    summary = build_index(
        settings,
        text_encoder,
        "tmdb",
        movies=TMDB / "movies.json",
        ratings=TMDB / "ratings.csv",
        image_encoder=image_encoder,
    )
    return settings, summary


def _index_snapshot(settings: Settings) -> dict[int, tuple[str, dict[str, np.ndarray]]]:
    """Every point's content hash and vectors, for comparing two indexes."""
    index = open_store(settings).open()
    try:
        ids = sorted(content_hashes(index))
        stored = index.retrieve(ids, vectors=("text", "image", "combined"))
        return {m.id: (m.payload["content_hash"], m.vectors) for m in stored}
    finally:
        index.close()


def test_posters_give_image_vectors_and_broken_ones_fall_back(tmdb_run) -> None:
    settings, summary = tmdb_run
    movies = json.loads((TMDB / "movies.json").read_text())
    with_file = {
        m["id"]
        for m in movies
        if m.get("title")
        and m.get("poster_path")
        and (TMDB / m["poster_path"].lstrip("/")).exists()
        and "broken" not in m["poster_path"]
    }
    failing = {m["id"] for m in movies if m.get("title") and m.get("poster_path")} - with_file
    assert with_file and failing
    assert summary.failed == len(failing)
    assert summary.with_poster == len(with_file)
    index = open_store(settings).open()
    try:
        stored = {m.id: m for m in index.retrieve(sorted(with_file | failing), vectors=("text", "image", "combined"))}
        for mid in with_file:
            image = stored[mid].vectors["image"]
            assert image.shape == (1280,) and abs(np.linalg.norm(image) - 1) < 1e-3
            assert stored[mid].payload["has_poster"] is True
        for mid in failing:  # text-only: no image vector, combined = text half only
            assert "image" not in stored[mid].vectors
            combined = stored[mid].vectors["combined"]
            assert np.allclose(combined[:384], stored[mid].vectors["text"], atol=1e-5)
            assert np.allclose(combined[384:], 0)
        assert index.count(MovieFilter(has_poster=True)) == len(with_file)
    finally:
        index.close()


def test_combined_cosine_is_the_weighted_sum_of_parts(tmdb_run) -> None:
    from app.embedding.movie import TEXT_WEIGHT, projection_matrix

    settings, _ = tmdb_run
    index = open_store(settings).open()
    try:
        ids = sorted(content_hashes(index))
        posters = [m for m in index.retrieve(ids, vectors=("text", "image", "combined")) if "image" in m.vectors]
    finally:
        index.close()
    a, b = posters[0].vectors, posters[1].vectors
    p = projection_matrix(1280, 384)
    pa, pb = p @ a["image"], p @ b["image"]
    expected = TEXT_WEIGHT * a["text"] @ b["text"] + (1 - TEXT_WEIGHT) * (pa @ pb) / (
        np.linalg.norm(pa) * np.linalg.norm(pb)
    )
    assert a["combined"] @ b["combined"] == pytest.approx(expected, abs=1e-4)


def test_bad_rows_are_skipped_and_good_rows_stored(tmdb_run) -> None:
    settings, summary = tmdb_run
    lines = (TMDB / "ratings.csv").read_text().splitlines()
    bad = {12: "rating 7", 27: "rating abc", 42: "unknown movie"}  # line numbers, header = line 1
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        movies = repo.all_movies(session)
        stored = session.exec(select(Rating)).all()
    engine.dispose()
    assert all(m.title.strip() for m in movies)
    assert len(stored) == len(lines) - 1 - len(bad)
    assert 424242 not in {r.movie_id for r in stored}
    assert all(0.5 <= r.rating <= 5.0 for r in stored)
    assert summary.movies == len(movies) == summary.skipped_unchanged + summary.embedded


def test_second_run_embeds_nothing_and_a_change_embeds_one(tmp_path, text_encoder, image_encoder) -> None:
    # A private copy of the fixture: poster paths resolve next to the movies file.
    shutil.copytree(TMDB, tmp_path / "tmdb")
    movies_file = tmp_path / "tmdb" / "movies.json"
    settings = make_settings(tmp_path / "data")
    first = build_index(settings, text_encoder, "tmdb", movies=movies_file, image_encoder=image_encoder)
    assert first.embedded == first.movies
    again = build_index(settings, text_encoder, "tmdb", movies=movies_file, image_encoder=image_encoder)
    assert again.embedded == 0 and again.skipped_unchanged == again.movies

    movies = json.loads(movies_file.read_text())
    movies[0]["overview"] = "A completely different story about a lighthouse keeper."
    movies_file.write_text(json.dumps(movies))
    before = _index_snapshot(settings)
    third = build_index(settings, text_encoder, "tmdb", movies=movies_file, image_encoder=image_encoder)
    assert third.embedded == 1
    after = _index_snapshot(settings)
    assert set(after) == set(before)
    assert after[movies[0]["id"]][0] != before[movies[0]["id"]][0]
    changed = [mid for mid in after if not np.allclose(after[mid][1]["text"], before[mid][1]["text"], atol=1e-5)]
    assert changed == [movies[0]["id"]]


def test_a_new_rating_updates_the_payload_without_embedding_again(tmp_path, text_encoder) -> None:
    shutil.copytree(TMDB, tmp_path / "tmdb")
    movies_file, ratings_file = tmp_path / "tmdb" / "movies.json", tmp_path / "tmdb" / "ratings.csv"
    settings = make_settings(tmp_path / "data")
    first = build_index(settings, text_encoder, "tmdb", movies=movies_file, ratings=ratings_file)
    assert first.embedded == first.movies and first.payload_updated == 0
    before = _index_snapshot(settings)
    with ratings_file.open("a") as f:  # a new user rates the first movie: its rating count moves
        f.write(f"99999,{json.loads(movies_file.read_text())[0]['id']},4.0,1700000000\n")
    again = build_index(settings, text_encoder, "tmdb", movies=movies_file, ratings=ratings_file)
    assert again.embedded == 0 and again.payload_updated >= 1, again
    after = _index_snapshot(settings)
    moved = [mid for mid in after if after[mid][0] != before[mid][0]]
    assert len(moved) == again.payload_updated
    for mid in after:  # vectors untouched, the hash's vectors part too
        assert after[mid][0].split(":")[0] == before[mid][0].split(":")[0]
        assert np.array_equal(after[mid][1]["text"], before[mid][1]["text"])
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        counts = {m.id: m.local_rating_count or 0 for m in repo.all_movies(session)}
    engine.dispose()
    index = open_store(settings).open()
    try:
        stored = {m.id: m.payload["local_rating_count"] for m in index.retrieve(sorted(counts))}
    finally:
        index.close()
    assert stored == counts  # the index's counts are the database's after the payload-only update


def test_rebuild_publishes_a_new_generation_with_the_same_points(tmp_path, tmdb_run, text_encoder, image_encoder):
    from app.embedding.factory import build_manifest
    from app.embedding.movie import MovieEmbedder
    from app.embedding.posters import PosterLoader
    from ingest.pipeline import index_movies

    settings, _ = tmdb_run
    copy = copy_settings(settings, tmp_path / "data")
    store = open_store(copy)
    before_gen, before = store.generation(), _index_snapshot(copy)
    with Session(make_engine(copy.sqlalchemy_url)) as session:
        movies = repo.all_movies(session)
    summary = index_movies(
        movies,
        store,
        build_manifest(copy),
        lambda wi: MovieEmbedder(text_encoder, image_encoder, PosterLoader(copy.poster_cache_dir)),
        batch_size=8,
        rebuild=True,
        progress=False,
    )
    assert summary.embedded == len(movies)
    assert store.generation() != before_gen
    after = _index_snapshot(copy)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}


# ---- crash and resume ----------------------------------------------------------------------------
KILL_LIMIT, KILL_BATCH = 120, 8


def _ingest_cmd(settings: Settings, *extra: str) -> tuple[list[str], dict[str, str]]:
    # PYTHONFAULTHANDLER: a crash of the engine or a runtime prints the Python stack on stderr.
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(settings.data_dir), "HF_HUB_OFFLINE": "1", "PYTHONFAULTHANDLER": "1"}
    env.pop("QDRANT_URL", None)
    env.pop("DATABASE_URL", None)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    cmd = [
        sys.executable,
        "-m",
        "movierec.cli",
        "ingest",
        "--source",
        "demo",
        "--limit",
        str(KILL_LIMIT),
        "--batch-size",
        str(KILL_BATCH),
        "--device",
        "cpu",
        *extra,
    ]
    return cmd, env


def _kill_after_batches(settings: Settings, batches: int) -> bytes:
    """Start an ingest and SIGKILL it once `batches` batches have landed (read off its progress bar);
    its stderr up to the kill."""
    cmd, env = _ingest_cmd(settings)
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    seen = b""
    killed = threading.Event()

    def watch() -> None:
        nonlocal seen
        while chunk := proc.stderr.read1(4096):  # type: ignore[union-attr]
            seen += chunk
            done = [int(n) for n in re.findall(rb"(\d+)/%d \[" % KILL_LIMIT, seen)]
            if done and max(done) >= batches * KILL_BATCH:
                proc.send_signal(signal.SIGKILL)
                killed.set()
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    proc.wait(timeout=300)
    thread.join(timeout=5)
    assert killed.is_set(), f"ingest finished before it could be killed: {seen[-500:]!r}"
    return seen


def test_killed_ingest_resumes_to_the_same_index(tmp_path, text_encoder) -> None:
    crashed_settings = make_settings(tmp_path / "crashed")
    crashed = crashed_settings.data_dir
    killed = _kill_after_batches(crashed_settings, batches=3)
    assert not (crashed / "qdrant" / "CURRENT").exists(), "nothing may be published by a killed run"
    assert (crashed / "qdrant" / "staging").exists()

    # A rerun that dies can be replayed from this copy (tmp_path is kept when the test fails).
    copy_tree_sparse(crashed, tmp_path / "before-rerun")
    cmd, env = _ingest_cmd(crashed_settings, "--json")
    out, report = run_explained(cmd, env=env, cwd=ROOT, timeout=300, keep=tmp_path)
    assert out.returncode == 0, (
        f"the rerun failed; its data dir before it: {tmp_path / 'before-rerun'}\n"
        f"the killed run's stderr (tail): {killed[-1500:].decode(errors='replace')}\n{report}"
    )
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0 < summary["embedded"] < KILL_LIMIT, "the rerun must reuse what the killed run stored"
    assert summary["skipped_unchanged"] + summary["embedded"] == KILL_LIMIT

    clean = make_settings(tmp_path / "clean")
    build_index(clean, text_encoder, "demo", limit=KILL_LIMIT)
    resumed, reference = _index_snapshot(crashed_settings), _index_snapshot(clean)
    assert sorted(resumed) == sorted(reference)  # no holes, no extras (ids are unique by construction)
    for mid, (digest, vectors) in reference.items():
        assert resumed[mid][0] == digest
        assert float(resumed[mid][1]["text"] @ vectors["text"]) > 0.9999


def test_run_refuses_a_wrong_combination_before_writing_anything(tmp_path: Path) -> None:
    import ingest
    from app.errors import InvalidInputError

    settings = make_settings(tmp_path / "data")
    with pytest.raises(InvalidInputError, match="reads its own ratings") as refused:
        ingest.run(settings, "demo", ratings=TMDB / "ratings.csv")
    assert refused.value.field == "ratings"
    with pytest.raises(InvalidInputError, match="needs a movies file"):
        ingest.run(settings, "tmdb")
    assert not settings.index_dir.exists() and not any(settings.data_dir.glob("*.db"))
