"""Points on every engine: retrieve, change one named vector or payload key, delete, count, facets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.vectorstore import IndexStore, Lazy, MovieFilter, MovieIndex, content_hashes
from app.vectorstore import edge as edge_module
from app.vectorstore import server as server_module
from app.vectorstore.cache import CachedIndex
from tests.helpers.vectorstore import (
    CATALOGUE,
    FILTERS,
    MANIFEST,
    N_MOVIES,
    SyntheticMovies,
    build,
    same_payload,
    unit,
)


def test_retrieve(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    with_poster, without_poster = CATALOGUE.points[1], CATALOGUE.points[0]
    assert "image" not in without_poster.vectors
    missing = 999_999
    got = index.retrieve([with_poster.id, missing, without_poster.id], vectors=["text", "image"])
    assert sorted(m.id for m in got) == sorted([with_poster.id, without_poster.id])
    for movie in got:
        source = CATALOGUE.by_id(movie.id)
        assert same_payload(movie.payload, source.payload)
        assert set(movie.vectors) == {"text", "image"} & set(source.vectors)
        for name, vector in movie.vectors.items():
            assert vector.dtype == np.float32
            np.testing.assert_allclose(vector, source.vectors[name], atol=1e-5)
    bare = index.retrieve([with_poster.id])
    assert len(bare) == 1 and bare[0].vectors == {}
    assert same_payload(bare[0].payload, with_poster.payload)
    assert index.retrieve([]) == []


def test_poster_vectors_are_stored_in_half_precision(tmp_path: Path) -> None:
    """The image vectors take half the memory on Edge, the others none less: a random unit vector (the
    catalogue's image vectors are exact in float16, so that every engine ranks them as the oracle does)
    comes back rounded to float16 as an image vector, and exactly as a text vector."""
    rng = np.random.default_rng(3)
    vectors = {name: unit(rng.standard_normal(dim)) for name, dim in MANIFEST.vector_dims().items()}
    catalogue = SyntheticMovies([replace(CATALOGUE.points[1], vectors=vectors)])
    store = edge_module.EdgeStore(tmp_path / "index")
    build(store, catalogue)
    index = store.open()
    try:
        (got,) = index.retrieve([catalogue.points[0].id], vectors=["image", "text"])
        image = vectors["image"]
        assert not np.array_equal(got.vectors["image"], image)
        np.testing.assert_array_equal(got.vectors["image"], image.astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(got.vectors["text"], vectors["text"])
    finally:
        index.close()


def test_set_and_delete_one_named_vector(published: tuple[IndexStore, MovieIndex]) -> None:
    store, _ = published
    index = store.stage(MANIFEST, rebuild=False)
    changed, cleared = CATALOGUE.points[1], CATALOGUE.points[2]
    new_collab = unit(np.arange(1, MANIFEST.collab_dim + 1, dtype=np.float32))
    index.set_vectors("collab", {changed.id: new_collab})
    index.set_vectors("collab", {})
    index.delete_vectors("collab", [cleared.id])
    index.delete_vectors("collab", [])
    store.publish(index, MANIFEST)
    reader = store.open()
    got = {m.id: m for m in reader.retrieve([changed.id, cleared.id], vectors=["text", "image", "collab"])}
    np.testing.assert_allclose(got[changed.id].vectors["collab"], new_collab, atol=1e-5)
    assert "collab" not in got[cleared.id].vectors
    for movie in got.values():  # the other vectors and the payload are kept
        source = CATALOGUE.by_id(movie.id)
        np.testing.assert_allclose(movie.vectors["text"], source.vectors["text"], atol=1e-5)
        assert ("image" in movie.vectors) == ("image" in source.vectors)
        assert same_payload(movie.payload, source.payload)
    assert reader.query(new_collab, "collab", 1)[0].id == changed.id
    assert cleared.id not in [h.id for h in reader.query(new_collab, "collab", N_MOVIES)]
    assert reader.count() == N_MOVIES
    reader.close()


def test_set_payload_and_filter_by_collab_source(published: tuple[IndexStore, MovieIndex]) -> None:
    """set_payload and the collab_source filter (issue 11) behave alike on Edge and the server adapter."""
    store, _ = published
    index = store.stage(MANIFEST, rebuild=False)
    ids = [p.id for p in CATALOGUE.points]
    by_content, by_ratings = set(ids[:3]), set(ids[3:])
    index.set_payload(sorted(by_ratings), {"collab_source": "ratings"})
    index.set_payload(sorted(by_content), {"collab_source": "content"})
    index.set_payload([], {"collab_source": "content"})
    store.publish(index, MANIFEST)
    reader = store.open()
    try:
        assert reader.count(MovieFilter(collab_source="content")) == 3
        assert reader.count(MovieFilter(collab_source="ratings")) == len(by_ratings)
        hits = reader.popular(len(ids), MovieFilter(collab_source="content"))
        assert {h.id for h in hits} == by_content
        query = CATALOGUE.points[0].vectors["text"]
        assert {h.id for h in reader.query(query, "text", len(ids), MovieFilter(collab_source="content"))} == by_content
        for movie in reader.retrieve(ids):  # the other payload keys are kept
            source = CATALOGUE.by_id(movie.id)
            assert movie.payload.pop("collab_source") == ("content" if movie.id in by_content else "ratings")
            assert same_payload(movie.payload, source.payload)
    finally:
        reader.close()


def test_popular(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    for name, f in FILTERS.items():
        hits = index.popular(10, f)
        assert [h.id for h in hits] == [h.id for h in CATALOGUE.oracle.popular(10, f)], name
        assert all(h.score == pytest.approx(h.payload["local_rating_count"]) for h in hits)


def test_count(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    assert index.count() == N_MOVIES
    for name, f in FILTERS.items():
        assert index.count(f) == CATALOGUE.oracle.count(f), name


def test_genres(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    assert index.genres() == CATALOGUE.oracle.genres()


def test_delete(published: tuple[IndexStore, MovieIndex]) -> None:
    store, _ = published
    gone = CATALOGUE.ids[:10]
    index = store.stage(MANIFEST, rebuild=False)
    index.delete(gone)
    index.delete([])
    store.publish(index, MANIFEST)
    reader = store.open()
    assert reader.count() == N_MOVIES - 10
    assert reader.retrieve(gone) == []
    assert not set(gone) & set(content_hashes(reader))
    reader.close()


def test_hashes_page_through(published: tuple[IndexStore, MovieIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    store, index = published
    # Pages smaller than the catalogue, so the scroll's continuation is exercised.
    monkeypatch.setattr(edge_module, "SCROLL_PAGE", 64)
    monkeypatch.setattr(server_module, "SCROLL_PAGE", 64)
    expected = {p.id: p.payload["content_hash"] for p in CATALOGUE.points}
    assert content_hashes(index) == expected
    assert store.published_hashes() == expected


@pytest.mark.parametrize("cached", [False, True], ids=["engine", "cache"])
def test_stacked_is_retrieve_as_one_matrix(published: tuple[IndexStore, MovieIndex], cached: bool) -> None:
    """`stacked` answers what `retrieve` does, in the order asked, movies lacking the vector (no
    poster) and unknown ids left out; the vector cache gathers its rows from one matrix."""
    _, index = published
    if cached:
        index = CachedIndex.wrap(index, max_points=N_MOVIES)
        assert isinstance(index, CachedIndex)
    ids = [p.id for p in CATALOGUE.points[:12]][::-1] + [999_999, CATALOGUE.points[3].id]
    for name in ("image", "text"):
        got = index.stacked(ids, name)
        expected = [k for k, i in enumerate(ids) if i != 999_999 and name in CATALOGUE.by_id(i).vectors]
        assert got.positions == expected and len(expected) < len(ids)  # some are left out
        assert got.rows.dtype == np.float32 and got.rows.shape == (len(expected), MANIFEST.vector_dims()[name])
        for row, k in zip(got.rows, got.positions, strict=True):
            np.testing.assert_allclose(row, CATALOGUE.by_id(ids[k]).vectors[name], atol=1e-5)
        assert [p["title"] for p in got.payloads] == [CATALOGUE.by_id(ids[k]).payload["title"] for k in expected]
        by_retrieve = {m.id: m.vectors[name] for m in index.retrieve(ids, vectors=(name,)) if name in m.vectors}
        np.testing.assert_array_equal(got.rows, np.array([by_retrieve[ids[k]] for k in got.positions]))
    nothing = index.stacked([999_999], "text")
    assert nothing.positions == [] and list(nothing.payloads) == [] and len(nothing.rows) == 0


def test_lazy_reads_each_item_when_asked() -> None:
    """Stacked.payloads may be Lazy: a sequence that computes item k only when it is read."""
    reads: list[int] = []
    lazy = Lazy(lambda k: reads.append(k) or k * 10, 4)
    assert reads == [] and len(lazy) == 4
    assert lazy[1] == 10 and lazy[-1] == 30 and reads == [1, 3]
    assert lazy[1:3] == [10, 20] and list(lazy) == [0, 10, 20, 30]
    with pytest.raises(IndexError):
        lazy[4]
