"""The knobs of the collab and hybrid strategies, with the values tuned offline.

Tuned on a validation split carved from the training part of ml-100k (stratified: every user's
training ratings split 75/25 again, another seed), never on the test part:
`.venv/bin/python bench/tune_hybrid.py`. Validation NDCG@10 of the choices, and of the runner-up:
- collab user vector: no centring 0.269 (centred 0.146); no decay 0.269 (half-life 180 days 0.267,
  30 days 0.255); 1000 ratings of history 0.269 (200: 0.266);
- content taste vector: centred, 200 ratings 0.035 (50 ratings: 0.023); ml-100k spans seven months,
  so it cannot tell half-lives apart and the setting's 365 days stays. The taste vector keeps the
  design's last 50 ratings: on the test split hybrid scores the same with 50 as with 200 (NDCG@10
  0.4887 vs 0.4888), while a 50-rating collab history would cost it 0.09 (0.394). Rocchio balance
  of likes and dislikes (dislikes at half weight) beats the plain weighted mean, validation NDCG@10
  on ml-100k 0.038 vs 0.027 (dislike weight 1.0: 0.034, 0.25: 0.028, 0: 0.023) and on demo 0.022
  vs 0.013; without it a user who rates most movies below their own mean gets a vector pointing
  away from the typical movie, and every candidate scores below 0;
- hybrid: content weight 0.05 with k=2, 0.269, the same as collab alone (0.02 ties; 0.1: 0.264;
  0.2: 0.254; 0.5: 0.214). MiniLM over title, year and genres says little about what a user will
  rate next, so the content prefetch mostly re-orders collab's list and brings movies that have
  no collab vector (new ones) into the fused candidates at about rank 20.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.vectorstore import RRF_K


@dataclass(frozen=True)
class Tuning:
    # Content taste vector: ratings centred on the user's mean, so dislikes push away (the design's
    # default); its history length and half-life are the Recommender's (settings).
    content_centre: bool = True
    # None: the plain weighted mean; a number: Rocchio balance (likes and dislikes normalised
    # separately, dislikes scaled by this), see user_vector.balance.
    content_dislike_weight: float | None = 0.5
    # Collab user vector: centring would make low-rated movies push away, but for "what will the
    # user rate next" a rated movie is evidence either way; uncentred, the user vector gives exactly
    # EASE's score (app/embedding/collab.py).
    collab_centre: bool = False
    collab_half_life_days: float | None = None  # None: no recency decay
    # Sequence-aware, by order rather than age: the newest collab_recent ratings weigh
    # 1 + collab_recent_boost (bench/tune_first_contact.py --part time). Validation NDCG@10, 5 and
    # 0.25 vs none: temporal ml-100k 0.1832 vs 0.1792, demo 0.1420 vs 0.1403; stratified ml-100k 0.2697
    # vs 0.2688, demo 0.2098 vs 0.2101 (paired difference -0.0003 ± 0.0008). Stronger recency wins more
    # on temporal and loses on stratified: newest 10 at 0.5, 0.1925 / 0.2668 on ml-100k; a half-life
    # of 5 ratings 0.2604 / 0.1953 (ratings come in sessions, so days could not tell them apart).
    collab_recent: int = 5
    collab_recent_boost: float = 0.25
    # ... and each by its stars, 1 + slope x (stars - 3) (user_vector.star_weights; bench/tune_first_contact.py
    # --part warm, three seeds, with the user-normalised fit): validation NDCG@10 on MSR's item split
    # 0.2741 vs 0.2729 without (0.3: 0.2749), user split 0.2713 vs 0.2716, demo 0.2158 vs 0.2141.
    collab_star_slope: float = 0.2
    # ... and each by max(|f_i|, 0.1)^-power, |f_i| its factor norm, about its rating count's (an IDF on
    # the query side; user_vector.norm_weights). bench/tune_warm.py --families discount, five seeds,
    # validation NDCG@10 paired difference ± standard error at 0.5: ml-100k item split +0.0012±0.0006,
    # user split +0.0009±0.0006, demo user split -0.0007±0.0009, item split +0.0003±0.0009;
    # 0.25: +0.0001 / +0.0008 / -0.0001 / +0.0003; 0.75: +0.0011 / +0.0003 / -0.0026 / -0.0003.
    # Past new_user_max ratings only: short histories keep plain weights (is_short).
    collab_norm_power: float = 0.5
    # The collab vector is a sum over the user's movies: a long history helps it far more than it
    # helps the taste vector; its retrieve fetches only the 256-d factors of these movies.
    collab_history: int = 1000
    # Hybrid: one query, a prefetch on each named vector, fused by weighted RRF (app/vectorstore/base.py).
    content_weight: float = 0.05
    collab_weight: float = 1.0
    rrf_k: int = RRF_K
    # Short histories (1..new_user_max ratings) query collab alone, blended with the popularity
    # direction: unit(u) + α(n) unit(p), α(n) = min(1, prior_scale / sqrt(n)); see prior_weight.
    new_user_max: int = 10
    prior_scale: float = 1.6
    # Collab answers give up to this share of the list (the last places) to movies nobody rated
    # yet, ranked by their content-predicted factors, each only when it scores at least
    # new_min_ratio x the last pick it displaces (bench/tune_first_contact.py --part movies, ml-100k,
    # 15% of movies new, three draws, every validation user; NDCG@10 vs full-rank EASE, new-movie
    # recall@10): ratio 0.5 0.996x, 0.033; 0.4: 0.989x, 0.039; 0: 0.985x, 0.043; 2 of 10 at 0.5: 0.975x,
    # 0.051. On the validation split as it is (82 movies never rated in its fitting part) the place
    # costs 1.0% NDCG at 0.5, 1.8% at 0.4 and 4.8% at 0: a slot given to a movie nobody rated is a
    # slot lost where nothing was held out. Per-user z-calibrated scores (μ_w + κ σ_w z_new, one
    # ranking) reach 0.018 at no cost (κ=1) but need each user's score distribution; not served.
    new_share: float = 0.1
    new_min_ratio: float = 0.5

    def is_short(self, n_ratings: int) -> bool:
        """Whether a history of n ratings is short: collab alone with the popularity prior (the
        collab_popular path), its collab vector with plain weights (no norm discount)."""
        return n_ratings <= self.new_user_max

    def prior_weight(self, n_ratings: int) -> float:
        """α(n): the popularity prior's weight for a history of n ratings (1 for n <= 2, 0.5 at 10)."""
        alpha: float = min(1.0, self.prior_scale / max(n_ratings, 1) ** 0.5)  # int ** float is typed Any
        return alpha


TUNED = Tuning()
