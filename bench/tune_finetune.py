"""Warm users (issue 11: MSR's item split, NDCG@10 >= 0.50): the collab factors fine-tuned with a
multinomial denoising loss (Mult-DAE, Liang et al. 2018), started from today's EASE factorisation,
measured on a validation split carved from the training part (the test's own rule, seed + 100).

    .venv/bin/python bench/tune_finetune.py [--dataset ml-100k|demo] [--split item|user] [--seeds 1,2,3]
        [--configs NAME,...] [--every 5]

The served collab model scores movie j for a user as u·v_j with u = Σ_i w_i f_i over their rated
movies (app/recommend/user_vector.py); today F = V = the rank-255 factors of collab.item_vectors.
Here the core movies' F and V (tied: one matrix, the serving form as it is; untied: an encoder and a
decoder matrix, which serving would have to store apart) start from those factors and take Adam
steps on: per batch of users, a random share `drop` of each user's rated core movies is removed
from the input (binary, as the fit sees pairs only), the rest are summed through F, the softmax
runs over every core movie but the kept inputs (they are excluded when ranking too), and the loss
is the dropped movies' mean −log probability, each user weighing |dropped|^0.5 (the user
normalisation of the fit); plus l2 x the mean squared distance of each row from its start (in
units of the factors' RMS). A scalar temperature is learned beside them (ranking ignores it). The
tail movies are folded in afterwards from the tuned core, as collab.item_vectors does.

Every `--every` epochs the validation users are scored as tune_warm.py scores today's fit (the
served weights, the factor-norm discount recomputed from the tuned factors) and NDCG@10 printed
with the paired difference from today's fit ± its standard error; epoch 0 is today's fit.

Measured (README, Quality, "the collab factors fine-tuned"): every configuration below loses at
every epoch on the ml-100k item and user splits and the demo user split, while the held-out
multinomial loss falls: the softmax likelihood moves the top 10 toward rarer movies.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from common import add_fold_args, log, paired_difference
from tune_warm import FACTORS, Fold, _norm_discount, make_fold

from app.embedding import collab
from app.evaluation.runner import load_dataset
from app.recommend.tuning import TUNED

torch.set_num_threads(1)  # the machine is shared


@dataclass(frozen=True)
class Config:
    tied: bool = True
    drop: float = 0.25  # share of each user's rated core movies removed from the input
    l2: float = 0.1  # pull toward the start, per row, in units of the factors' RMS squared
    lr: float = 3e-3  # Adam, in units of the factors' RMS
    epochs: int = 30
    batch: int = 256
    user_norm: float = 0.5  # a user's loss weighs |dropped|^(1 - user_norm) (mean over dropped x that)
    sgd: bool = (
        False  # SGD with momentum 0.9 instead of Adam (Adam moves the small-eigenvalue columns as far as the large)
    )
    sharpen: float | None = None  # fixed log temperature above the fitted start (None: learned)


CONFIGS = {
    "tied": Config(),
    "tied lr 1e-3": Config(lr=1e-3),
    "tied lr 1e-2": Config(lr=1e-2),
    "tied l2 0.01": Config(l2=0.01),
    "tied l2 1": Config(l2=1.0),
    "tied drop 0.5": Config(drop=0.5),
    "sharp 1": Config(lr=1e-3, sharpen=1.0),
    "sharp 2": Config(lr=1e-3, sharpen=2.0),
    "sharp 3": Config(lr=1e-3, sharpen=3.0),
    "sgd 0.3": Config(sgd=True, lr=0.3, sharpen=0.0),
    "sgd 3": Config(sgd=True, lr=3.0, sharpen=0.0),
    "sgd 30": Config(sgd=True, lr=30.0, sharpen=0.0),
    "untied": Config(tied=False),
    "untied l2 0.01": Config(tied=False, l2=0.01),
}


@dataclass
class Core:
    """One fold's core: what collab.item_vectors fits, in the fold's column order."""

    cols: np.ndarray  # the core movies' columns in fold.ids
    tail: np.ndarray  # the other rated movies' columns in fold.ids
    x: sp.csr_matrix  # binary users x core movies
    x_tail: sp.csr_matrix  # binary users x tail movies
    factors: np.ndarray  # core x FACTORS: EASE's symmetric factors, unscaled


def make_core(fold: Fold) -> Core:
    users, movies = fold.fit["user_id"].to_numpy(), fold.fit["movie_id"].to_numpy()
    core_ids, x = collab.core_interactions(users, movies)
    rated = np.unique(movies)
    tail_ids = np.setdiff1d(rated, core_ids)
    user_ids = np.unique(users)
    full = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (np.searchsorted(user_ids, users), np.searchsorted(rated, movies))),
        (len(user_ids), len(rated)),
    )
    full.data[:] = 1.0
    x_tail = full[:, np.searchsorted(rated, tail_ids)].tocsr()
    factors = collab.ease_factors(x, FACTORS)
    return Core(np.searchsorted(fold.ids, core_ids), np.searchsorted(fold.ids, tail_ids), x, x_tail, factors)


def assemble(fold: Fold, core: Core, f: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encoder and decoder factors over fold.ids (tail folded in from the tuned core; a tail movie's
    encoder row is its decoder row), both scaled by the decoder's largest row norm as stored."""
    enc, dec = np.zeros((len(fold.ids), FACTORS)), np.zeros((len(fold.ids), FACTORS))
    enc[core.cols], dec[core.cols] = f, v
    if len(core.tail):
        # _fold_in regresses on U = X F (the users' encoded vectors): the decoder rows of the tail.
        tail = collab._fold_in(core.x, f, core.x_tail, collab.FOLD_L2)
        enc[core.tail], dec[core.tail] = tail, tail
    top = float(np.linalg.norm(dec, axis=1).max())
    return enc / top, dec / top


def validate(fold: Fold, enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Per-user validation NDCG@10 with the served weights (discount from the stored, decoder, norms)."""
    warm = (fold.plain > 0).sum(axis=1, keepdims=True) > TUNED.new_user_max
    discount = _norm_discount(dec, TUNED.collab_norm_power)[None, :]
    weights = np.where(warm, fold.plain * discount, fold.plain)
    scores = weights @ enc @ dec.T
    s = np.where(fold.seen, -np.inf, scores)
    top = np.argpartition(-s, 10, axis=1)[:, :10]
    counts = np.log1p(np.asarray(fold.x.sum(0)).ravel())
    log(f"  top 10: mean log(1 + training count) {counts[top].mean():.3f}, distinct movies {len(np.unique(top))}")
    return fold.evaluate(scores)[0]


def _batch_loss(
    xb: torch.Tensor, f: torch.Tensor, v: torch.Tensor, log_t: torch.Tensor, cfg: Config, gen: torch.Generator
) -> torch.Tensor:
    """Mean weighted −log softmax probability of the dropped movies of a dense binary batch."""
    rated = xb > 0
    kept = rated & (torch.rand(xb.shape, generator=gen) >= cfg.drop)
    dropped = rated & ~kept
    n_drop = dropped.sum(1)
    ok = n_drop > 0
    kept, dropped, n_drop = kept[ok], dropped[ok], n_drop[ok].float()
    logits = log_t.exp() * ((kept.float() @ f) @ v.T)
    logp = torch.log_softmax(logits.masked_fill(kept, float("-inf")), dim=1)
    per_user = -(logp.masked_fill(~dropped, 0.0)).sum(1) / n_drop
    weight = n_drop ** (1.0 - cfg.user_norm)
    return (per_user * weight).sum() / weight.sum()


def _initial_temperature(x: torch.Tensor, f: torch.Tensor, cfg: Config) -> float:
    """The log temperature that minimises the loss of one dropout draw at the start (a grid)."""
    with torch.no_grad():
        grid = torch.linspace(-14.0, 2.0, 65)
        losses = [
            float(_batch_loss(x, f, f, torch.tensor(float(t)), cfg, torch.Generator().manual_seed(0))) for t in grid
        ]
    log(f"  start temperature {float(grid[int(np.argmin(losses))]):.2f}, loss {min(losses):.3f}")
    return float(grid[int(np.argmin(losses))])


@torch.no_grad()
def _held_loss(fold: Fold, core: Core, f: torch.Tensor, v: torch.Tensor, log_t: torch.Tensor) -> float:
    """The loss of the validation targets among the core movies, every fitting movie as input."""
    seen = torch.tensor(fold.seen[:, core.cols])
    target = torch.tensor(fold.relevant[:, core.cols])
    logits = log_t.exp() * ((seen.float() @ f) @ v.T)
    logp = torch.log_softmax(logits.masked_fill(seen, float("-inf")), dim=1)
    n = target.sum(1).clamp(min=1).float()
    return float((-(logp.masked_fill(~target, 0.0)).sum(1) / n).mean())


def _report(
    fold: Fold, core: Core, f: np.ndarray, v: np.ndarray, log_t: float, epoch: int, base: np.ndarray
) -> np.ndarray:
    """Per-user validation NDCG@10 of factors f, v (unscaled), logged with the held-out loss."""
    ndcg = validate(fold, *assemble(fold, core, f, v))
    scale = float(np.sqrt(np.mean(core.factors**2)))
    tensors = (torch.tensor(f / scale, dtype=torch.float32), torch.tensor(v / scale, dtype=torch.float32))
    held = _held_loss(fold, core, *tensors, torch.tensor(log_t))
    diff = (ndcg - base).mean()
    log(f"  epoch {epoch}: ndcg {ndcg.mean():.4f} ({diff:+.4f}), held-out loss {held:.4f}, log T {log_t:.2f}")
    return ndcg


def fine_tune(fold: Fold, core: Core, cfg: Config, every: int, base: np.ndarray) -> dict[int, np.ndarray]:
    """Per-user validation NDCG@10 every `every` epochs (epoch 0: the start)."""
    scale = float(np.sqrt(np.mean(core.factors**2)))
    start = torch.tensor(core.factors / scale, dtype=torch.float32)
    f = start.clone().requires_grad_(True)
    v = f if cfg.tied else start.clone().requires_grad_(True)
    x = torch.tensor(core.x.toarray(), dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    learned = cfg.sharpen is None
    log_t = torch.tensor(_initial_temperature(x, start, cfg) + (cfg.sharpen or 0.0), requires_grad=learned)
    params = ([f] if cfg.tied else [f, v]) + ([log_t] if learned else [])
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9) if cfg.sgd else torch.optim.Adam(params, lr=cfg.lr)
    curve = {0: _report(fold, core, core.factors, core.factors, float(log_t.detach()), 0, base)}
    for epoch in range(1, cfg.epochs + 1):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch):
            loss = _batch_loss(x[order[i : i + cfg.batch]], f, v, log_t, cfg, gen)
            pull = ((f - start) ** 2).sum(1).mean() + (0 if cfg.tied else ((v - start) ** 2).sum(1).mean())
            opt.zero_grad()
            (loss + cfg.l2 * pull).backward()  # type: ignore[no-untyped-call]
            opt.step()
        if epoch % every == 0:
            fd, vd = (t.detach().double().numpy() * scale for t in (f, v))
            curve[epoch] = _report(fold, core, fd, vd, float(log_t.detach()), epoch, base)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_fold_args(parser)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--every", default=5, type=int)
    args = parser.parse_args()
    started = time.perf_counter()
    movies, ratings = load_dataset(args.dataset)
    folds = [make_fold([m.id for m in movies], ratings, s, args.split, False, 0.25) for s in args.seeds]
    cores = [make_core(f) for f in folds]
    bases = [f.evaluate(f.today())[0] for f in folds]
    label = f"{args.dataset} {args.split} validation"
    log(f"{label}: {sum(len(f.rows) for f in folds)} users, {len(folds)} seeds, {time.perf_counter() - started:.0f} s")
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        curves = [
            fine_tune(fold, core, cfg, args.every, base) for fold, core, base in zip(folds, cores, bases, strict=True)
        ]
        base = np.concatenate(bases)
        for epoch in curves[0]:
            ndcg = np.concatenate([c[epoch] for c in curves])
            seeds = " ".join(f"{c[epoch].mean():.4f}" for c in curves)
            change = paired_difference(ndcg, base)
            print(f"{label} {name:<16} epoch {epoch:>3} ndcg={ndcg.mean():.4f} ({change}) seeds {seeds}", flush=True)
    log(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
