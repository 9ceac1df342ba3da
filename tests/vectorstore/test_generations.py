"""Publishing, the manifest, and staging the next index generation, on every engine."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from qdrant_client import QdrantClient

from app.errors import ConflictError, IndexUnavailableError
from app.vectorstore import IndexStore, MovieIndex, MoviePoint, content_hashes
from app.vectorstore.server import ServerStore
from tests.helpers.vectorstore import (
    CATALOGUE,
    MANIFEST,
    N_MOVIES,
    Engine,
    SyntheticMovies,
    build,
    upsert_in_batches,
)


# -- publishing and the manifest ------------------------------------------------------------------
def test_open_before_publish_raises(engine: Engine) -> None:
    store = engine.make()
    assert store.manifest() is None
    assert store.generation() is None
    assert store.published_hashes() == {}
    with pytest.raises(IndexUnavailableError):
        store.open()


def test_publish_records_manifest(engine: Engine) -> None:
    store = engine.make()
    build(store)
    manifest = store.manifest()
    assert manifest == MANIFEST
    assert manifest is not None and manifest.stats == {"movies": N_MOVIES}
    assert MANIFEST.compatible(manifest)
    assert not replace(MANIFEST, image_model="resnet50", image_dim=2048).compatible(manifest)
    assert engine.make().manifest() == MANIFEST  # a restarted process reads the same
    assert store.generation() is not None
    index = store.open()
    assert index.count() == N_MOVIES
    index.close()


def test_unchanged_collection_reads_after_reopen(engine: Engine) -> None:
    build(engine.make())
    index = engine.make().open()
    assert index.count() == N_MOVIES
    index.close()


# -- staging --------------------------------------------------------------------------------------
def test_incremental_stage_keeps_points(published: tuple[IndexStore, MovieIndex]) -> None:
    store, _ = published
    index = store.stage(MANIFEST, rebuild=False)
    assert index.count() == N_MOVIES
    changed = CATALOGUE.points[3]
    index.upsert([MoviePoint(changed.id, changed.vectors, {**changed.payload, "content_hash": "new"})])
    store.publish(index, MANIFEST)
    reader = store.open()
    assert reader.count() == N_MOVIES
    assert content_hashes(reader)[changed.id] == "new"
    reader.close()


def test_rebuild_stage_starts_empty(published: tuple[IndexStore, MovieIndex]) -> None:
    store, reader = published
    staged = store.stage(MANIFEST, rebuild=True)
    assert staged.count() == 0
    assert reader.count() == N_MOVIES  # readers keep the published index meanwhile
    staged.close()


def test_incompatible_manifest_forces_fresh_stage(published: tuple[IndexStore, MovieIndex]) -> None:
    store, _ = published
    other = replace(MANIFEST, text_model="other-text")
    staged = store.stage(other, rebuild=False)
    assert staged.count() == 0  # a model change never mixes spaces
    staged.close()


def test_resume_after_crash(engine: Engine) -> None:
    store = engine.make()
    build(store, SyntheticMovies(CATALOGUE.points[:50]))
    generation = store.generation()
    half = CATALOGUE.points[: N_MOVIES // 2]
    staged = store.stage(MANIFEST, rebuild=True)
    upsert_in_batches(staged, half)
    staged.flush()
    staged.close()  # the writer dies here, before publishing

    restarted = engine.make()
    assert restarted.generation() == generation  # nothing was published
    resumed = restarted.stage(MANIFEST, rebuild=True)
    assert content_hashes(resumed) == {p.id: p.payload["content_hash"] for p in half}
    upsert_in_batches(resumed, CATALOGUE.points[N_MOVIES // 2 :])
    restarted.publish(resumed, MANIFEST)
    assert restarted.generation() != generation
    reader = restarted.open()
    assert reader.count() == N_MOVIES
    reader.close()


def test_publish_refuses_a_collection_in_the_alias_place() -> None:
    client = QdrantClient(":memory:")
    alias = f"test_movies_{uuid.uuid4().hex[:12]}"
    client.create_collection(alias, vectors_config={})  # e.g. left by an older version of the app
    store = ServerStore(client, alias=alias)
    index = store.stage(MANIFEST, rebuild=True)
    with pytest.raises(ConflictError, match=alias):
        store.publish(index, MANIFEST)
    store.close()


def test_staging_of_another_model_is_not_resumed(engine: Engine) -> None:
    store = engine.make()
    staged = store.stage(MANIFEST, rebuild=True)
    staged.upsert(CATALOGUE.points[:5])
    staged.close()
    other = engine.make().stage(replace(MANIFEST, collab_dim=4), rebuild=True)
    assert other.count() == 0
    other.close()
