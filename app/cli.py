"""The `movierec` command: ingest, status, eval, serve, token."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from app.settings import MAX_TOKEN_TTL_HOURS, Settings, get_settings

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
    timeout_keep_alive: Annotated[
        int | None,
        typer.Option(min=1, help="Close idle keep-alive connections after this many seconds "
                     "[default: MOVIEREC_TIMEOUT_KEEP_ALIVE_S, 75]."),
    ] = None,
) -> None:
    """Serve the REST API (OpenAPI docs at /schema)."""
    import uvicorn

    from app.auth import signing_key
    from app.logs import logging_config

    settings = get_settings()
    signing_key(settings)  # created here, once, before the workers start and read it
    count = workers or settings.api_workers
    # The log config, not configure_logging(): worker processes start fresh, and uvicorn applies it in each.
    uvicorn.run(
        "app.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=count,
        log_config=logging_config(),
        **server_limits(settings, timeout_keep_alive),
    )


def server_limits(settings: Settings, timeout_keep_alive: int | None = None) -> dict[str, object]:
    """The uvicorn options `serve` bounds connections with (shared with the tests that check them).

    h11, not httptools: only h11 caps the size of a request's line and headers (larger: 400).
    """
    return {
        "http": "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": timeout_keep_alive or settings.timeout_keep_alive_s,
    }


@token_cli.command("create")
def token_create(
    admin: Annotated[bool, typer.Option("--admin", help="A token that may do everything.")] = False,
    user: Annotated[int | None, typer.Option("--user", min=1, help="A token for this user id only.")] = None,
    ttl_hours: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_TOKEN_TTL_HOURS, help="Lifetime in hours [default: MOVIEREC_TOKEN_TTL_HOURS]."),
    ] = None,
) -> None:
    """Print a signed bearer token (HS256, signed with MOVIEREC_SECRET_KEY or the data dir's generated key)."""
    from sqlmodel import Session

    from app.auth import issue_token
    from app.catalog.db import make_engine
    from app.catalog.tokens import token_version

    if admin == (user is not None):
        raise typer.BadParameter("give exactly one of --admin or --user ID")
    settings = get_settings()
    version = 0
    if user is not None:  # the token carries the user's current version, so a later revoke refuses it
        engine = make_engine(settings.sqlalchemy_url)
        with Session(engine) as session:
            version = token_version(session, user)
        engine.dispose()
    typer.echo(issue_token(settings, user_id=user, admin=admin, ttl_hours=ttl_hours, version=version))


@token_cli.command("revoke")
def token_revoke(
    user: Annotated[int, typer.Option("--user", min=1, help="Revoke every token issued to this user so far.")],
) -> None:
    """Refuse every token issued to one user so far, without rotating the key; new tokens still work."""
    from sqlmodel import Session

    from app.catalog.db import make_engine
    from app.catalog.tokens import revoke_tokens

    settings = get_settings()
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        version = revoke_tokens(session, user)
    engine.dispose()
    typer.echo(
        f"revoked user {user}'s tokens (token version now {version}); "
        f"API workers refuse them within {settings.token_refresh_s:g} s"
    )


def main() -> None:
    from pydantic import ValidationError

    from app.logs import configure_logging

    configure_logging()
    try:
        cli()
    except ValidationError as exc:  # bad settings: one line naming the variable, not a traceback
        problem = exc.errors()[0]
        name = f"MOVIEREC_{str(problem['loc'][0]).upper()}: " if problem["loc"] else ""
        typer.echo(f"error: {name}{problem['msg'].removeprefix('Value error, ')}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
