"""Are the text backends' vectors interchangeable? Cosine to torch, and whether search results change.

For every demo movie text (or the first --limit), each backend's vector is compared with torch's
(sentence-transformers fp32, the reference). Then the exact top-10 neighbours (numpy, no engine) of
two kinds of query are compared with the all-torch top-10:
- search: --queries natural-language searches, embedded one at a time as the API does;
- similar: --similar sampled movies, their own text vector as the query (the movie itself excluded).
Per backend B, three pairings: `same` (query and index both B: an index built and served with B),
`query_only` (B's query against torch's index: the API switched, the index not rebuilt) and
`index_only` (torch's query against B's index).
overlap@10 = mean share of the reference top 10 that the pairing's top 10 also holds.

Run: .venv/bin/python bench/text_backends.py [--backends torch,onnx,onnx-int8,openvino] [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from common import emit, format_table, log, timer

from app.catalog.text import movie_text
from app.datasets import load_catalogue, validate
from app.embedding.factory import build_text_encoder
from app.settings import get_settings

K = 10
# Searches people type: genres, moods, plots, people. Embedded as cached_query_encoder does.
QUERIES = (
    "heist thriller with a twist",
    "funny animated movie for kids",
    "romantic comedy in new york",
    "space adventure with aliens",
    "world war two drama",
    "psychological horror",
    "coming of age story",
    "courtroom drama",
    "superhero action",
    "martial arts film",
    "western with gunfights",
    "musical about dancers",
    "documentary about nature",
    "time travel science fiction",
    "serial killer investigation",
    "zombie apocalypse",
    "high school comedy",
    "biography of a musician",
    "spy movie with car chases",
    "films directed by alfred hitchcock",
    "tom hanks drama",
    "sad movie about family",
    "dystopian future society",
    "mafia crime family",
    "sports underdog story",
    "christmas family comedy",
    "disaster movie earthquake",
    "vampire romance",
    "robots and artificial intelligence",
    "road trip with friends",
)


def demo_texts(limit: int | None) -> list[str]:
    movies, _, _ = validate(load_catalogue("demo", limit=limit))
    return [movie_text(m) for m in movies]


def top_k(queries: np.ndarray, index: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    scores = queries @ index.T
    if exclude is not None:
        scores[np.arange(len(queries)), exclude] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :K]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / K for x, y in zip(a, b, strict=True)]))


def embed(backend: str, texts: list[str], queries: Sequence[str], batch_size: int) -> dict[str, Any]:
    with timer() as load:
        encoder = build_text_encoder(get_settings(), "cpu", backend)
    with timer() as t:
        index = encoder.encode(texts, batch_size=batch_size)
    query = np.stack([encoder.encode([" ".join(q.lower().split())])[0] for q in queries])
    # Is a text's vector the same alone as in a batch? (int8 quantises activations per batch.)
    alone = np.stack([encoder.encode([text])[0] for text in texts[:64]])
    log(f"{backend}: loaded in {load[0]:.1f} s, {len(texts) / t[0]:.0f} texts/s, precision {encoder.precision}")
    return {"index": index, "query": query, "alone_vs_batch": (alone * index[:64]).sum(axis=1), "encoder": encoder}


def compare(backends: Sequence[str], texts: list[str], n_similar: int, batch_size: int) -> list[dict[str, Any]]:
    runs = {b: embed(b, texts, QUERIES, batch_size) for b in dict.fromkeys(["torch", *backends])}
    ref = runs["torch"]
    sample = np.random.default_rng(0).choice(len(texts), min(n_similar, len(texts)), replace=False)
    ref_search = top_k(ref["query"], ref["index"])
    ref_similar = top_k(ref["index"][sample], ref["index"], sample)
    rows = []
    for b in backends:
        run = runs[b]
        cos = (run["index"] * ref["index"]).sum(axis=1)
        pairs = {"same": (run, run), "query_only": (run, ref), "index_only": (ref, run)}
        row: dict[str, Any] = {
            "backend": b,
            "precision": run["encoder"].precision,
            "cosine_min": round(float(cos.min()), 5),
            "cosine_p1": round(float(np.percentile(cos, 1)), 5),
            "cosine_mean": round(float(cos.mean()), 5),
            "alone_vs_batch_min": round(float(run["alone_vs_batch"].min()), 5),
        }
        for name, (q, ix) in pairs.items():
            row[f"search_{name}"] = round(overlap(top_k(q["query"], ix["index"]), ref_search), 3)
            row[f"similar_{name}"] = round(overlap(top_k(q["index"][sample], ix["index"], sample), ref_similar), 3)
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default="torch,onnx,onnx-int8,openvino", help="comma-separated")
    p.add_argument("--limit", type=int, default=None, help="first N demo movies (default: all)")
    p.add_argument("--similar", type=int, default=500, help="movies used as similar-movie queries (default 500)")
    p.add_argument("--batch-size", type=int, default=32, help="index batch size (default 32, the CPU default)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = p.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    with contextlib.redirect_stdout(sys.stderr):
        texts = demo_texts(args.limit)
        rows = compare(backends, texts, args.similar, args.batch_size)
    columns = (
        "backend",
        "precision",
        "cosine_min",
        "cosine_mean",
        "alone_vs_batch_min",
        "search_same",
        "search_query_only",
        "search_index_only",
        "similar_same",
        "similar_query_only",
        "similar_index_only",
    )
    params = {"movies": len(texts), "queries": len(QUERIES), "similar": args.similar, "k": K}
    emit(format_table(rows, columns), {"rows": rows, "params": params}, args.json)


if __name__ == "__main__":
    main()
