"""Tune the collab and hybrid knobs on a validation split carved from the training part, never on test.

    .venv/bin/python bench/tune_hybrid.py [--dataset ml-100k] [--users N]

The training part of the stratified split is split again per user (75/25, another seed): models
are built from the first part and scored on the second. Coordinate search, NDCG@10 first:
1. the collab user vector: rating centring, recency half-life, history length;
2. the content taste vector: centring, half-life, history length;
3. the hybrid fusion: RRF weight of the content prefetch and RRF k, with 1 and 2 fixed.
Prints one line per setting and the winners as a Tuning(...) to paste into app/recommend/tuning.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any

from common import eval_text_vectors, log

from app.embedding.factory import build_manifest
from app.evaluation import splits
from app.evaluation.runner import evaluate, load_dataset
from app.evaluation.world import build_world
from app.recommend.tuning import TUNED, Tuning
from app.settings import get_settings

K = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "demo"])
    parser.add_argument("--users", type=int, default=None, help="validate on a sample of users")
    args = parser.parse_args()
    settings = get_settings()
    movies, ratings = load_dataset(args.dataset)
    train = splits.stratified_split(ratings).train
    parts = splits.stratified_split(train, seed=splits.SEED + 1)  # the validation split
    relevant = {int(u): set(g.tolist()) for u, g in parts.test.groupby("user_id")["movie_id"]}
    users = [int(u) for u in splits.sample_users(sorted(relevant), args.users or len(relevant))]
    text = eval_text_vectors(movies, settings)
    started = time.perf_counter()
    # built from the fitting part only, with the Recommender's defaults (the trials set its knobs)
    world = build_world(
        movies, text, parts.train, build_manifest(settings), tuning=TUNED, history_size=50, half_life_days=365.0
    )
    log(f"validation: {len(users)} users; world built in {time.perf_counter() - started:.1f} s")

    def trial(strategy: str, tuning: Tuning, history: int, half_life: float) -> float:
        rec = world.recommender
        rec.tuning, rec.history_size, rec.half_life_days = tuning, history, half_life
        row = evaluate(world, parts.train, users, relevant, K, len(movies), strategies=(strategy,))[0]
        print(
            f"{strategy:<8} history={history:<5} half_life={half_life:<7} {tuning}  "
            f"ndcg={row['ndcg']:.4f} precision={row['precision']:.4f}",
            flush=True,
        )
        return row["ndcg"] + 1e-3 * row["precision"]

    best: dict[str, Any] = {}
    # 1. collab
    grid = [(c, h, n_hist) for c in (False, True) for h in (None, 180.0, 30.0) for n_hist in (200, 1000)]
    results = {
        g: trial("collab", replace(TUNED, collab_centre=g[0], collab_half_life_days=g[1], collab_history=g[2]), 50, 365)
        for g in grid
    }
    c, h, n_hist = max(results, key=results.__getitem__)
    tuned = replace(TUNED, collab_centre=c, collab_half_life_days=h, collab_history=n_hist)
    # 2. content
    grid2 = [(c, h, hist) for c in (True, False) for h in (365.0, 90.0, 1e9) for hist in (50, 200)]
    results2 = {g: trial("content", replace(tuned, content_centre=g[0]), g[2], g[1]) for g in grid2}
    c2, h2, hist2 = max(results2, key=results2.__getitem__)
    tuned = replace(tuned, content_centre=c2)
    best.update(history=hist2, half_life=h2)
    # 3. hybrid
    grid3 = [(w, k) for w in (0.02, 0.05, 0.08, 0.1, 0.2, 0.5) for k in (2, 10)]
    results3 = {g: trial("hybrid", replace(tuned, content_weight=g[0], rrf_k=g[1]), hist2, h2) for g in grid3}
    # Ties within 0.001 NDCG (noise here) go to the larger content weight: it gives new movies,
    # which only the content prefetch can bring, more room.
    w, k = max(results3, key=lambda g: (round(results3[g], 3), g[0]))
    best["tuning"] = replace(tuned, content_weight=w, rrf_k=k)
    world.close()
    print(f"\nbest: history_size={best['history']} half_life_days={best['half_life']} {best['tuning']}")
    print(f"{time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
