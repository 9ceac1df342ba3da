"""The `movierec` command: ingest, status, eval, serve, token."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from app.settings import get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Movie recommendations on Qdrant.")
token_cli = typer.Typer(no_args_is_help=True, help="Bearer tokens for the API.")
cli.add_typer(token_cli, name="token")


class Source(str, Enum):
    demo = "demo"
    ml100k = "ml-100k"
    tmdb = "tmdb"


class EvalDataset(str, Enum):
    ml100k = "ml-100k"
    demo = "demo"


class EvalProtocol(str, Enum):
    stratified = "stratified"
    temporal = "temporal"
    new_movies = "new-movies"


class EvalSplit(str, Enum):
    user = "user"
    item = "item"


class DeviceOpt(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def _echo_json(data: dict) -> None:  # type: ignore[type-arg]
    typer.echo(json.dumps(data, default=str))


@cli.command()
def ingest(
    source: Annotated[Source, typer.Option(help="Catalogue source.")] = Source.demo,
    movies: Annotated[Path | None, typer.Option(help="Movies file (tmdb: JSON, JSONL or CSV).")] = None,
    ratings: Annotated[Path | None, typer.Option(help="Ratings CSV (userId,movieId,rating,timestamp).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N movies.")] = None,
    rebuild: Annotated[bool, typer.Option(help="Re-embed everything into a fresh index, then switch.")] = False,
    device: Annotated[DeviceOpt | None, typer.Option(help="Compute device (default: MOVIEREC_DEVICE).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Movies per embedding batch.")] = None,
    if_missing: Annotated[bool, typer.Option(help="Do nothing when an index is already published.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Load a catalogue and its ratings, embed what changed, and publish the index."""
    from sqlmodel import Session

    from app.catalog import repository as repo
    from app.catalog.db import make_engine
    from app.embedding.device import default_batch_size, resolve_device
    from app.embedding.factory import build_movie_embedder
    from app.vectorstore import build_manifest, open_store
    from ingest.pipeline import index_movies, store_catalogue
    from ingest.sources import load_catalogue

    settings = get_settings()
    store = open_store(settings)
    if if_missing and store.manifest() is not None:
        typer.echo(f"index present ({store.generation()}); skipping ingest", err=True)
        return
    dev = resolve_device((device.value if device else None) or settings.device)
    batch = batch_size or settings.batch_size or default_batch_size(dev, "text")
    engine = make_engine(settings.sqlalchemy_url)
    if source is Source.tmdb and movies is None:
        raise typer.BadParameter("--source tmdb needs --movies PATH", param_hint="--movies")

    catalogue = load_catalogue(source.value, movies=movies, ratings=ratings, limit=limit)
    n_ratings, errors = store_catalogue(engine, catalogue)
    for err in errors[:20]:
        typer.echo(f"skipped: {err}", err=True)
    if len(errors) > 20:
        typer.echo(f"... and {len(errors) - 20} more bad rows", err=True)
    with Session(engine) as session:
        all_movies = repo.all_movies(session)
        rated = repo.rated_pairs(session)  # the collab vectors learn from every rating in the database
    summary = index_movies(
        all_movies,
        store,
        build_manifest(settings),
        lambda with_images: build_movie_embedder(settings, dev, batch, with_images=with_images),
        batch_size=batch,
        rebuild=rebuild,
        progress=not as_json,
        ratings=rated,
    )
    summary.ratings, summary.bad_rows = n_ratings, len(errors)
    summary.source_stats = dict(catalogue.stats)
    if as_json:
        _echo_json(summary.to_dict())
        return
    s = summary
    typer.echo(
        f"{s.movies} movies ({s.with_poster} with poster, {s.without_poster} without): "
        f"{s.embedded} embedded, {s.skipped_unchanged} unchanged, {s.deleted} removed, "
        f"{s.failed} poster failures; {s.collab_vectors} collab vectors; "
        f"{s.ratings} ratings, {s.bad_rows} bad rows skipped; "
        f"{s.seconds:.1f} s, {s.movies_per_s:.1f} movies/s"
    )
    for key, value in s.source_stats.items():
        typer.echo(f"  {key}: {value}")


@cli.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Embedding quality metrics: coverage, poster coverage, device, models."""
    from app.catalog.db import make_engine
    from app.embedding.device import resolve_device
    from app.status import embedding_metrics
    from app.vectorstore import open_store

    settings = get_settings()
    metrics = embedding_metrics(
        make_engine(settings.sqlalchemy_url), open_store(settings), resolve_device(settings.device)
    )
    if as_json:
        _echo_json(metrics)
        return
    for key, value in metrics.items():
        typer.echo(f"{key:>26}: {json.dumps(value) if isinstance(value, dict) else value}")


@cli.command("eval")
def eval_(
    dataset: Annotated[EvalDataset, typer.Option(help="Catalogue and ratings to evaluate on.")] = EvalDataset.ml100k,
    protocol: Annotated[
        EvalProtocol,
        typer.Option(help="stratified: a random 25% held out; temporal: each user's latest 25%; "
                     "new-movies: stratified, and a seeded 15% of movies lose all training ratings."),
    ] = EvalProtocol.stratified,
    k: Annotated[int, typer.Option("--k", min=1, help="Length of each recommendation list.")] = 10,
    users: Annotated[int | None, typer.Option(min=1, help="Evaluate a seeded sample of this many test users.")] = None,
    split: Annotated[
        EvalSplit, typer.Option(help="stratified protocol: hold out 25% of each user's ratings, or of each movie's.")
    ] = EvalSplit.user,
    seeds: Annotated[str, typer.Option(help="Split seeds, comma-separated, e.g. 1,2,3,4,5: mean ± std.")] = "42",
    new_users: Annotated[
        bool, typer.Option("--new-users", help="Add the new-user sweep: histories cut to 1, 2, 3, 5, 10.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Offline evaluation: every strategy and baseline ranks the catalogue from training ratings only."""
    from app.embedding.device import resolve_device
    from app.embedding.factory import build_text_encoder
    from app.recommend.eval import EvalConfig, format_report, run_eval
    from app.vectorstore import build_manifest

    settings = get_settings()
    dev = resolve_device(settings.device)
    config = EvalConfig(
        cache_dir=settings.data_dir / "eval-cache",
        manifest=build_manifest(settings),
        make_encoder=lambda: build_text_encoder(settings, dev),
        history_size=settings.history_size,
        half_life_days=settings.half_life_days,
        popularity=settings.popularity_weight,
        diversity=settings.diversity,
    )
    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter("comma-separated integers, e.g. 1,2,3", param_hint="--seeds") from None
    if not seed_list:
        raise typer.BadParameter("at least one seed", param_hint="--seeds")
    log = (lambda _: None) if as_json else (lambda line: typer.echo(line, err=True))
    report = run_eval(
        dataset.value, protocol.value, k, config, users=users, log=log, by=split.value, seeds=seed_list,
        new_users=new_users,
    )
    if as_json:
        _echo_json(report.to_json())
    else:
        typer.echo(format_report(report))


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes [default: MOVIEREC_WORKERS, else one per CPU core, at most 4]."),
    ] = None,
) -> None:
    """Serve the REST API (OpenAPI docs at /schema)."""
    import uvicorn

    from app.logs import logging_config

    count = workers or get_settings().api_workers
    # The log config, not configure_logging(): worker processes start fresh, and uvicorn applies it in each.
    uvicorn.run(
        "app.api.app:create_app", factory=True, host=host, port=port, workers=count, log_config=logging_config()
    )


@token_cli.command("create")
def token_create(
    admin: Annotated[bool, typer.Option("--admin", help="A token that may do everything.")] = False,
    user: Annotated[int | None, typer.Option("--user", help="A token for this user id only.")] = None,
    ttl_hours: Annotated[int | None, typer.Option(help="Lifetime in hours.")] = None,
) -> None:
    """Print a signed bearer token (HS256, signed with MOVIEREC_SECRET_KEY)."""
    from app.auth import issue_token

    if admin == (user is not None):
        raise typer.BadParameter("give exactly one of --admin or --user ID")
    settings = get_settings()
    typer.echo(issue_token(settings, user_id=user, admin=admin, ttl_hours=ttl_hours))


def main() -> None:
    from app.logs import configure_logging

    configure_logging()
    cli()


if __name__ == "__main__":
    main()
