"""Collaborative item vectors, learned from who rated what: a low-rank, symmetric factorisation of
EASE's item-item weights, stored so that Qdrant's cosine ranks by the model's own dot product.

1. EASE (Steck, 2019): B = argmin ||X - XB||² + λ||B||² with diag(B) = 0, where X is the binary
   user x movie matrix (a rating counts as an interaction; its value is ignored, as in the
   benchmark protocol where every held-out movie is relevant). Closed form:
   P = (XᵀX + λI)⁻¹, B = -P / diag(P). A user's scores are x_u B. Here XᵀX is user-normalised,
   XᵀDX with D = diag(n_u^-0.5) rescaled to the same trace (_gram), and λ = 500.
2. Factorise S = (B + Bᵀ) / 2 ≈ V Vᵀ from its top eigenpairs (V = Q √Λ). Then
   score(u, j) ≈ Σ_{i rated by u} v_i · v_j: the user vector is exactly the (weighted) sum of the
   vectors of the movies they rated, the same construction as the content vector.
3. Qdrant's cosine normalises stored vectors, which would throw away |v_j|, and |v_j| carries how
   broadly liked a movie is (measured: NDCG@10 0.48 -> 0.34 on ml-100k). So one coordinate is
   appended that makes every stored vector the same length (the MIPS-to-cosine reduction,
   Bachrach et al. 2014): v'_j = [v_j, sqrt(M² - |v_j|²)] / M. A query [u, 0] then has cosine
   u·v_j / (|u| M), which ranks movies by the dot product u·v_j.

Chosen by measurement: NDCG@10 on a validation split carved from the training part (stratified,
every user's training ratings split 75/25 again), numpy scoring of the full catalogue:
- ml-100k: this factorisation, λ=400, 255 factors 0.269 (127 factors 0.267; λ=500: 0.268;
  λ=700: 0.268; full-rank EASE 0.266); implicit ALS (`implicit` 0.7.3, best of the factor
  counts and regularisations tried) 0.249; BPR (`implicit`) 0.126. The test part ranks them
  the same way: 0.488 vs ALS 0.461.
- demo (MovieLens latest-small, about 7,400 rated movies in the fitting part): only the 2,000 most
  rated movies 0.210, 4,000: 0.209, all: 0.208, which took 65 s instead of 1 s (the long tail's
  columns are mostly noise).
- the user-normalised Gram (issue 11, "warm"; `bench/tune_first_contact.py --part warm`, three seeds,
  the validation split carved by the test's own rule, NDCG@10 paired difference from λ=400 plain,
  ± standard error; the user vector weighted by stars as Tuning.collab_star_slope = 0.2 in both):
  a = 0.5, λ = 500: ml-100k item split 0.2741 vs 0.2694 (+0.0047±0.0013; without the stars
  +0.0036), user split 0.2713 vs 0.2660 (+0.0053±0.0013), demo user split 0.2158 vs 0.2061
  (+0.0098±0.0015). λ alone (500, 600) +0.001; EDLAE (Steck 2020, Λ = λI + p/(1-p) diag(G), full
  rank, p 0.25 or 0.5, λ 200 or 400) −0.0009 to −0.0086 on the item split, at best +0.0018 on the
  user split; more factors (400, 800) tie 255; rating values in the Gram (1 + 0.1 (stars - 3))
  +0.0013 more, not kept (ingest reads pairs only); item cosine blended into S: +0.0003.
  Its price: on the temporal validation split (`--part time`, newest 5 x 1.25) it loses, ml-100k
  0.1777 vs 0.1832 (a = 0.25: 0.1797-0.1809), demo 0.1359 vs 0.1420; on the temporal test split
  ml-100k gains (hybrid 0.2119 vs 0.2098) and demo loses 0.0020 (0.1528 vs 0.1548), see README.
- coverage (issue 13; `bench/tune_first_contact.py --part coverage`, the long tail scored only where
  it has a vector): demo, EASE on the 2,000 most rated and nothing else 0.2148; plus every other
  rated movie folded in (_fold_in), penalty 10 x mean diag(UᵀU) 0.2154 (1: 0.2093, 3: 0.2125, 30:
  0.2148); the same fold-in for movies with >= 5 or >= 20 ratings only: see README, Quality. EASE
  on every movie with >= 5 ratings 0.2136 in 23 s. ml-100k has 1,682 movies: all in the core.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.linalg import lapack
from scipy.sparse.linalg import eigsh

EASE_L2 = 400.0  # plain EASE (binary Gram, λ=400): the `ease` baseline row of `movierec eval`
# The collab fit: EASE on a user-normalised Gram, XᵀDX with D = diag(n_u^-USER_NORM) rescaled to XᵀX's
# trace, so a heavy user's co-occurrences weigh less and λ keeps its units (bench/tune_first_contact.py
# --part warm; see the docstring above).
COLLAB_L2 = 500.0
USER_NORM = 0.5
# EASE inverts a movies x movies matrix (60k movies: 14 GB), so it is fitted on the CORE_ITEMS most
# rated movies only (measured: no loss, see above); every other movie with enough ratings is folded
# into the same factor space by a ridge regression on the users' factors (see _fold_in).
CORE_ITEMS = 2_000
MIN_RATINGS = 1  # the default of MOVIEREC_COLLAB_MIN_RATINGS (bench/tune_first_contact.py --part coverage)
# Names the fit in the index's ratings fingerprint: change it with the method, so an unchanged
# catalogue and ratings are refitted once (v2: the EASE core plus fold-in of every rated movie;
# v3: the content map reads genres and decade beside the combined vector, ridge λ=3; v4: the
# user-normalised Gram, λ=500).
FIT_ID = f"ease-core{CORE_ITEMS}-foldin-v4"
FOLD_L2 = 10.0  # ridge penalty of the fold-in (bench/tune_first_contact.py --part coverage)
FOLD_USERS = 16_384  # users per slice of the fold-in's user factors (16k x 255 float64: 33 MB)
_FULL_EIGH_MAX = 2_000  # below this, a full eigendecomposition is fast and exact


def item_vectors(
    user_ids: Sequence[int] | np.ndarray,
    movie_ids: Sequence[int] | np.ndarray,
    dim: int,
    *,
    l2: float = COLLAB_L2,
    user_norm: float = USER_NORM,
    min_ratings: int = MIN_RATINGS,
    core_items: int = CORE_ITEMS,
    fold_l2: float = FOLD_L2,
) -> dict[int, np.ndarray]:
    """Movie id -> unit collab vector of length `dim` (dim - 1 factors + the norm coordinate), for
    every movie with at least `min_ratings` ratings (pairs; a pair listed twice counts once).

    The `core_items` most rated of them get EASE's symmetric factors; the others are folded in
    (_fold_in). Memory: a core_items² float matrix plus users x dim floats; time at 25M ratings and
    62k movies: see README, Quality ("Collab at scale")."""
    users = np.asarray(user_ids, dtype=np.int64)
    movies = np.asarray(movie_ids, dtype=np.int64)
    if len(movies) == 0:
        return {}
    items, x = _interactions(users, movies, min_ratings)
    del users, movies
    if len(items) == 0:
        return {}
    core = _core_columns(x, core_items)
    tail = np.setdiff1d(np.arange(len(items)), core)
    x_core = x[:, core].tocsr()  # one copy, for the fit and the fold-in
    x_tail = x[:, tail].tocsr() if len(tail) else None
    del x
    core_factors = ease_factors(x_core, dim - 1, l2, user_norm)
    factors = np.zeros((len(items), dim - 1), dtype=np.float64)
    factors[core] = core_factors
    if x_tail is not None:
        factors[tail] = _fold_in(x_core, core_factors, x_tail, fold_l2)
    return dict(zip(items.tolist(), _equal_norms(factors), strict=True))


def _interactions(users: np.ndarray, movies: np.ndarray, min_ratings: int = 1) -> tuple[np.ndarray, sp.csc_matrix]:
    """The kept movie ids (those with >= min_ratings distinct raters) and the binary users x movies
    matrix over them (CSC: the callers slice columns).

    Built straight in CSC form from one sorted int64 key per pair (column-major; a pair listed
    twice is one interaction), never through COO: at the peak two int64 arrays as long as the
    ratings (25M: 400 MB) beside the inputs; int32 indices in the result."""
    user_ids, ids = np.unique(users), np.unique(movies)
    n_users = len(user_ids)
    key = np.searchsorted(ids, movies)  # int64: 162k users x 62k movies is 1e10
    key *= n_users
    key += np.searchsorted(user_ids, users)
    key.sort()  # by (column, row)
    repeated = key[1:] == key[:-1]
    if repeated.any():
        key = key[np.append(True, ~repeated)]
    del repeated
    indptr = np.searchsorted(key, np.arange(len(ids) + 1) * n_users)
    np.remainder(key, n_users, out=key)
    x = sp.csc_matrix((np.ones(len(key), dtype=np.float32), key.astype(np.int32), indptr), shape=(n_users, len(ids)))
    del key
    kept = np.flatnonzero(np.diff(indptr) >= min_ratings)
    return (ids, x) if len(kept) == len(ids) else (ids[kept], x[:, kept])


def ease_factors(x: sp.csr_matrix, k: int, l2: float = COLLAB_L2, user_norm: float = USER_NORM) -> np.ndarray:
    """EASE's item-item weights B fitted on the binary users x movies matrix `x` (Steck, 2019) with
    the user-normalised Gram (_gram), as a movies x k float64 matrix V with V Vᵀ ≈ B
    (_symmetric_factors): the core's collab factors."""
    return _symmetric_factors(_ease(x, l2, user_norm), k)


def core_interactions(
    users: np.ndarray, movies: np.ndarray, core_items: int = CORE_ITEMS
) -> tuple[np.ndarray, sp.csr_matrix]:
    """The core's movie ids (the `core_items` most rated, ascending) and its binary users x movies
    matrix: what EASE is fitted on (item_vectors; the EASE baseline of `movierec eval`)."""
    ids, x = _interactions(users, movies)
    core = _core_columns(x, core_items)
    return ids[core], x[:, core].tocsr()


def _core_columns(x: sp.csc_matrix, core_items: int) -> np.ndarray:
    """Ascending column indices of the `core_items` most rated columns (ties: lower index first)."""
    return np.sort(np.argsort(-np.diff(x.indptr), kind="stable")[:core_items])


def _fold_in(x_core: sp.csr_matrix, core_factors: np.ndarray, x_tail: sp.csr_matrix, l2: float) -> np.ndarray:
    """Factors of the tail movies in the core's space (n_tail x k).

    A user's collab vector is u = x_u V (the sum of their movies' factors) and scores a movie by
    u · v. For a tail movie j, v_j = argmin ||x_j - U v||² + l2 ||v||² = (UᵀU + l2 I)⁻¹ Uᵀ x_j with
    U = X_core V: one ALS half-step against fixed user factors (Hu, Koren & Volinsky, 2008, with
    unit confidence; the penalty is l2 x the mean of diag(UᵀU)). On the core itself it gives back
    about V, since X V Vᵀ ≈ X B ≈ X (EASE).

    U is made FOLD_USERS users at a time (never whole: 160,000 users x 255 factors is 330 MB)."""
    k = core_factors.shape[1]
    gram, rhs = np.zeros((k, k)), np.zeros((x_tail.shape[1], k))
    for start in range(0, x_core.shape[0], FOLD_USERS):
        u = np.asarray(x_core[start : start + FOLD_USERS] @ core_factors)
        gram += u.T @ u
        rhs += np.asarray(x_tail[start : start + FOLD_USERS].T @ u)
    # Relative to the Gram's mean diagonal, so one value fits 600 users and 160,000.
    gram[np.diag_indices_from(gram)] += l2 * np.trace(gram) / len(gram)
    return np.linalg.solve(gram, rhs.T).T


def _ease(x: sp.csr_matrix, l2: float, user_norm: float = 0.0) -> np.ndarray:
    """B = -P / diag(P) with zero diagonal, P = (_gram(x, user_norm) + l2 I)⁻¹ (movies x movies)."""
    dtype = np.float64 if x.shape[1] <= _FULL_EIGH_MAX else np.float32
    gram: np.ndarray = _gram(x, user_norm).astype(dtype)
    gram[np.diag_indices_from(gram)] += l2
    p = _spd_inverse(gram)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def _gram(x: sp.csr_matrix, user_norm: float) -> np.ndarray:
    """XᵀDX (movies x movies, dense) for the binary users x movies `x`: D = diag(n_u^-user_norm),
    n_u the user's interactions in `x`, scaled so that the trace equals XᵀX's (the interaction
    count), which keeps λ in the same units; user_norm = 0 is plain XᵀX. A user with 600 movies adds
    600² co-occurrences and one with 20 adds 400: the damping (as user-kNN's cosine damps long
    rows) keeps a few heavy users' broad lists from setting most of the item-item weights."""
    if user_norm == 0.0:
        plain: np.ndarray = (x.T @ x).toarray()
        return plain
    counts = np.diff(x.indptr).astype(np.float64)
    weights = np.power(np.maximum(counts, 1.0), -user_norm)
    weights *= counts.sum() / max(float(counts @ weights), 1e-12)
    weighted: np.ndarray = (x.T @ (sp.diags(weights.astype(x.dtype)) @ x)).toarray()
    return weighted


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix through its Cholesky factor: about 3x
    faster than a general inverse (seconds instead of tens of seconds at 8,000 movies)."""
    # A tuple of names gives a list; the stub's return type also admits one function.
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (a,))  # type: ignore[misc]
    factor, info = potrf(a, lower=False, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Gram matrix + λI is not positive definite (potrf info {info})")
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"cannot invert the Cholesky factor (potri info {info})")
    full: np.ndarray = np.triu(inverse) + np.triu(inverse, 1).T  # potri fills only the upper triangle
    return full


def _symmetric_factors(b: np.ndarray, k: int) -> np.ndarray:
    """V (n x k) with V Vᵀ ≈ (B + Bᵀ)/2 from its k largest eigenpairs; negative ones are dropped."""
    s = (b + b.T) / 2
    n = len(s)
    if k >= n - 1:
        values, vectors = np.linalg.eigh(s)
        top = np.argsort(-values)[:k]
        values, vectors = values[top], vectors[:, top]
    elif n <= _FULL_EIGH_MAX:  # only the top k pairs (LAPACK evr): about 2x faster than all of them
        values, vectors = scipy.linalg.eigh(s, subset_by_index=[n - k, n - 1], driver="evr")
        top = np.argsort(-values)
        values, vectors = values[top], vectors[:, top]
    else:  # Lanczos for the top k only; a fixed start vector keeps it reproducible
        v0 = np.random.default_rng(0).standard_normal(n).astype(s.dtype)
        values, vectors = eigsh(s, k=k, which="LA", v0=v0)
    factors = np.zeros((n, k), dtype=np.float64)
    factors[:, : len(values)] = vectors * np.sqrt(np.maximum(values, 0.0))[None, :]
    return factors


def _equal_norms(factors: np.ndarray) -> np.ndarray:
    """Append the coordinate that gives every row the largest row norm, then scale to unit length."""
    norms = np.linalg.norm(factors, axis=1)
    top = float(norms.max()) if len(norms) else 0.0
    if top <= 0:
        top = 1.0
    out = np.empty((len(factors), factors.shape[1] + 1), dtype=np.float32)  # no float64 copy of all the factors
    out[:, :-1] = factors / top
    out[:, -1] = np.sqrt(np.maximum(top**2 - norms**2, 0.0)) / top
    return out


def factor_part(stored: np.ndarray) -> np.ndarray:
    """The item factors inside stored collab vectors (rows or one vector): all but the last coordinate."""
    return np.asarray(stored)[..., :-1]


def as_query(factors: np.ndarray) -> np.ndarray | None:
    """A query vector [u, 0] for factors u (say, a user's weighted sum): its cosine with a stored
    vector ranks by the dot product. None when u is zero."""
    norm = float(np.linalg.norm(factors))
    if norm <= 1e-9:
        return None
    return np.append(factors / norm, 0.0).astype(np.float32)


def unit_factors(stored: np.ndarray) -> np.ndarray:
    """The factor parts of stored collab vectors (rows, or one vector as a 1 x d row), each scaled to
    unit length: what `similarity` compares. A caller comparing many vectors with one set scales it once."""
    f = factor_part(np.atleast_2d(stored))
    unit: np.ndarray = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return unit


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of the factor parts: stored vectors a (n x d) against b (m x d) or one vector; n x m."""
    cosines: np.ndarray = unit_factors(a) @ unit_factors(b).T
    return cosines


# -- new movies: collab vectors predicted from content ---------------------------------------------
# Chosen on validation (bench/tune_first_contact.py --part movies; ml-100k, 15% of the movies new,
# three draws): NDCG@10 ranking among the new movies, ridge on `combined` alone λ=1 0.1535, λ=3
# 0.1547; with genres and decade 0.1630 (λ=3, weight 1); kNN in content space (k=10: 0.1404; 30,
# sim⁴: 0.1453), a one-hidden-layer MLP in torch (0.1428; trained on the users' score error: 0.1421),
# direction and length predicted apart (0.1488) all below the linear map.
CONTENT_L2 = 3.0  # ridge penalty of the content -> factors map
FEATURE_WEIGHT = 1.0  # the genres' and the decade's weight beside the unit `combined` vector
FIRST_DECADE, LAST_DECADE = 1920, 2020  # years outside go to the nearest end


def content_inputs(
    combined: dict[int, np.ndarray],
    genres: dict[int, Sequence[str]],
    years: dict[int, int | None],
    weight: float = FEATURE_WEIGHT,
) -> dict[int, np.ndarray]:
    """The content -> factors map's input for each movie of `combined`: its `combined` vector, then
    its genres (multi-hot over every genre the movies name, divided by √count) and its decade
    (one-hot, none when the year is unknown), both x `weight`; float32. The text embedding alone knows
    the genres only through words; as explicit columns they raise the map's ranking of new movies
    by 6% (see above)."""
    vocabulary = {g: i for i, g in enumerate(sorted({g for m in combined for g in genres.get(m, ())}))}
    decades = (LAST_DECADE - FIRST_DECADE) // 10 + 1
    out = {}
    for m, vector in combined.items():
        extra = np.zeros(len(vocabulary) + decades)
        mine = [vocabulary[g] for g in set(genres.get(m, ()))]
        extra[mine] = 1.0 / max(np.sqrt(len(mine)), 1.0)
        year = years.get(m)
        if year is not None:
            extra[len(vocabulary) + (min(max(year, FIRST_DECADE), LAST_DECADE) - FIRST_DECADE) // 10] = 1.0
        out[m] = np.concatenate([np.asarray(vector, dtype=np.float32), (weight * extra).astype(np.float32)])
    return out


def from_content(
    rated: dict[int, np.ndarray],
    content: dict[int, np.ndarray],
    *,
    l2: float = CONTENT_L2,
) -> dict[int, np.ndarray]:
    """Collab vectors for the movies of `content` that `rated` lacks, predicted from their content.

    `rated`: movie id -> stored (unit, norm coordinate last) collab vector learned from ratings;
    `content`: movie id -> the map's input (content_inputs: the `combined` vector, genres, decade).
    A ridge regression W = (CᵀC + l2·I)⁻¹ Cᵀ F maps the rated movies' content C to their factor
    parts F (Hoerl & Kennard, 1970; the "learned map" of a two-tower model, linear); a new movie
    gets f = c W, with its norm capped at 1, and the norm coordinate sqrt(1 - |f|²) that makes it a
    unit vector like the others (see _equal_norms). Returns {} when nothing was rated.
    """
    known = [m for m in rated if m in content]
    new = [m for m in content if m not in rated]
    if not known or not new:
        return {}
    c = np.array([content[m] for m in known], dtype=np.float64)
    f = factor_part(np.array([rated[m] for m in known], dtype=np.float64))
    gram = c.T @ c
    gram[np.diag_indices_from(gram)] += l2
    w = np.linalg.solve(gram, c.T @ f)
    predicted = np.array([content[m] for m in new], dtype=np.float64) @ w
    norms = np.linalg.norm(predicted, axis=1, keepdims=True)
    predicted /= np.maximum(norms, 1.0)
    pad = np.sqrt(np.maximum(1.0 - np.minimum(norms, 1.0) ** 2, 0.0))
    return dict(zip(new, np.concatenate([predicted, pad], axis=1).astype(np.float32), strict=True))
