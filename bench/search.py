"""Search quality on the demo index: NDCG@10 of dense, sparse and hybrid search on a labelled query set.

    MOVIEREC_DATA_DIR=/tmp/search-demo .venv/bin/python bench/search.py [--queries bench/search_queries.json]

The index must be the demo catalogue's (`movierec ingest --source demo`). Every query of the set
(bench/search_queries.json: people, titles, themes, moods and eras, each with its relevant movies by
id, graded 2 or 1) runs through `Recommender.search`, the code `GET /movies/search` calls, in each
mode, without and with the popularity prior (MOVIEREC_POPULARITY_WEIGHT). The table gives the mean
NDCG@10 per kind of query and over all; the mean tokens per movie checks lexical.AVG_LEN.

NDCG@10 with graded gains: DCG = sum over ranks i = 1..10 of grade_i / log2(i + 1), over the DCG of
the ideal ordering of the query's labels (Järvelin and Kekäläinen, "Cumulated gain-based evaluation
of IR techniques", ACM TOIS 20(4), 2002).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np
from common import ROOT, emit, format_table, log, timer
from sqlmodel import Session

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.embedding import lexical
from app.embedding.factory import build_text_encoder
from app.embedding.text import cached_query_encoder
from app.recommend.recommender import SEARCH_WEIGHTS, Recommender, SearchMode
from app.settings import Settings, get_settings
from app.vectorstore import MovieIndex, open_store

K = 10
MODES: tuple[SearchMode, ...] = get_args(SearchMode)


def graded_ndcg(ranked: Sequence[int], grades: Mapping[int, int], k: int = K) -> float:
    """NDCG@k with graded gains (see the module docstring); 0 for a query without labels."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = np.array([grades.get(m, 0) for m in ranked[:k]], dtype=np.float64)
    ideal = np.array(sorted(grades.values(), reverse=True)[:k], dtype=np.float64)
    best = float(ideal @ discounts[: len(ideal)])
    return float(gains @ discounts[: len(gains)]) / best if best else 0.0


def load_queries(path: Path) -> list[dict[str, Any]]:
    queries = json.loads(path.read_text(encoding="utf-8"))["queries"]
    for q in queries:
        q["grades"] = {int(r["movie_id"]): int(r["grade"]) for r in q["relevant"]}
    return queries


def check_ids(index: MovieIndex, queries: list[dict[str, Any]]) -> None:
    """Every labelled id must be in the index: a typo would silently lower every mode's score."""
    wanted = sorted({m for q in queries for m in q["grades"]})
    found = {m.id for m in index.retrieve(wanted)}
    missing = [m for m in wanted if m not in found]
    if missing:
        raise SystemExit(f"labelled movie ids not in the index: {missing[:20]} ({len(missing)} in all)")


def mean_tokens(settings: Settings) -> float:
    """The mean length in tokens of the catalogue's lexical documents: what lexical.AVG_LEN should be."""
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        movies = repo.all_movies(session)
    engine.dispose()
    return statistics.fmean(len(lexical.tokens(lexical.movie_document(m))) for m in movies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=Path, default=ROOT / "bench" / "search_queries.json")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--per-query", action="store_true", help="also print each query's NDCG per mode")
    args = parser.parse_args()

    settings = get_settings()
    queries = load_queries(args.queries)
    store = open_store(settings)
    if store.manifest() is None:
        sys.exit(f"no published index in {settings.data_dir}: run `make run` or `movierec ingest --source demo` first")
    index = store.open()
    check_ids(index, queries)
    log(f"{len(queries)} queries; loading the text model ({settings.text_backend})")
    encoder = build_text_encoder(settings, "cpu")
    recommender = Recommender(lambda: index, cached_query_encoder(encoder))
    priors = {"": 0.0, "+pop": settings.recommend.search_popularity_weight}
    scores: dict[str, list[float]] = {}
    with timer() as elapsed:
        for q in queries:
            for mode in MODES:
                for suffix, weight in priors.items():
                    hits = recommender.search(q["query"], limit=K, popularity=weight, mode=mode)
                    q[mode + suffix] = graded_ndcg([h.id for h in hits], q["grades"])
                    scores.setdefault(mode + suffix, []).append(q[mode + suffix])
    columns = [m + s for m in MODES for s in priors]
    kinds = list(dict.fromkeys(q["kind"] for q in queries))
    rows = [
        {"queries": kind, "n": len(group), **{c: statistics.fmean(q[c] for q in group) for c in columns}}
        for kind in kinds
        for group in [[q for q in queries if q["kind"] == kind]]
    ]
    rows.append({"queries": "all", "n": len(queries), **{c: statistics.fmean(scores[c]) for c in columns}})
    # The mean over kinds weighs each kind alike, whatever the set's mix of queries.
    rows.append(
        {"queries": "kinds", "n": len(kinds), **{c: statistics.fmean(r[c] for r in rows[:-1]) for c in columns}}
    )
    table = format_table(rows, ["queries", "n", *columns])
    if args.per_query:
        table += "\n\n" + format_table(
            [{"query": q["query"], **{c: q[c] for c in columns}} for q in queries], ["query", *columns]
        )
    avg_len = mean_tokens(settings)
    table += (
        f"\n\nNDCG@{K}, graded; +pop: popularity prior {priors['+pop']}; hybrid RRF weights "
        f"{SEARCH_WEIGHTS}. "
        f"{elapsed[0]:.1f} s. Mean lexical tokens per movie: {avg_len:.1f} (lexical.AVG_LEN = {lexical.AVG_LEN})"
    )
    index.close()
    emit(table, {"rows": rows, "mean_tokens": avg_len, "seconds": elapsed[0]}, args.json)


if __name__ == "__main__":
    main()
