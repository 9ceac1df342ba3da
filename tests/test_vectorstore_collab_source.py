"""set_payload and the collab_source filter (issue 11) behave alike on Edge and the server adapter."""

from __future__ import annotations

from app.vectorstore import MovieFilter
from tests.test_vectorstore import CATALOGUE, MANIFEST, engine, published, same_payload  # noqa: F401


def test_set_payload_and_filter_by_collab_source(published) -> None:  # noqa: F811
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
