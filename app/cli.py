"""The `movierec` command: ingest, import-ratings, status, eval, serve, token."""

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


class RatingScale(str, Enum):
    five = "5"
    ten = "10"


class EvalDataset(str, Enum):
    ml100k = "ml-100k"
    demo = "demo"


class EvalProtocol(str, Enum):
    stratified = "stratified"
    temporal = "temporal"


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
    rating_scale: Annotated[
        RatingScale | None, typer.Option(help="Scale of --ratings: 5 (0.5-5 stars) or 10 (halved) [default: detected].")
    ] = None,
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
    if ratings is not None and source is not Source.tmdb:
        raise typer.BadParameter(f"the {source.value} source reads its packaged ratings", param_hint="--ratings")

    from ingest.ratings import RatingsFileError

    # A ratings file is streamed by the bulk path (ingest/ratings.py), not loaded with the catalogue.
    catalogue = load_catalogue(source.value, movies=movies, limit=limit)
    try:
        scale = int(rating_scale.value) if rating_scale else None
        n_ratings, errors = store_catalogue(engine, catalogue, ratings, rating_scale=scale, force=rebuild)
    except RatingsFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
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


class HistoryFormat(str, Enum):
    letterboxd = "letterboxd"
    imdb = "imdb"


@cli.command("import-ratings")
def import_ratings(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The export's ratings CSV.")],
    user: Annotated[int, typer.Option("--user", min=1, help="Whose ratings these are.")],
    fmt: Annotated[HistoryFormat, typer.Option("--format", help="Which export the file is.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Import a user's own Letterboxd or IMDb ratings as that user's ratings (never reverted by an ingest)."""
    from dataclasses import asdict

    from sqlmodel import Session

    from app.catalog.db import make_engine
    from app.catalog.history import import_history
    from app.errors import InvalidInput

    engine = make_engine(get_settings().sqlalchemy_url)
    with Session(engine) as session:
        try:
            report = import_history(session, user, file.read_bytes(), fmt.value)
        except InvalidInput as exc:
            typer.echo(f"error: {file}: {exc}", err=True)
            raise typer.Exit(1) from None
        session.commit()
    if as_json:
        _echo_json({"user_id": user, "format": fmt.value, **asdict(report)})
        return
    r = report
    typer.echo(
        f"user {user}: {r.rows} rows, {r.matched} matched ({r.imported} imported, {r.unchanged} unchanged, "
        f"{r.kept_newer} kept newer), {len(r.unmatched)} unmatched, {len(r.skipped)} skipped"
    )
    for item in r.unmatched:
        typer.echo(f"  unmatched: {file.name}:{item['line']}: {item['title']} ({item['year']})")
    for item in r.skipped:
        typer.echo(f"  skipped: {file.name}:{item['line']}: {item['field']}: {item['message']}")


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
        EvalProtocol, typer.Option(help="stratified: a random 25% of each user's ratings held out; temporal: latest.")
    ] = EvalProtocol.stratified,
    k: Annotated[int, typer.Option("--k", min=1, help="Length of each recommendation list.")] = 10,
    users: Annotated[int | None, typer.Option(min=1, help="Evaluate a seeded sample of this many test users.")] = None,
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
    )
    log = (lambda _: None) if as_json else (lambda line: typer.echo(line, err=True))
    report = run_eval(dataset.value, protocol.value, k, config, users=users, log=log)
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
