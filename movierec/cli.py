"""The `movierec` command: ingest, import-ratings, status, eval, serve, token."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict, cast

import typer

from app.names import EvalDataset, EvalProtocol, HistoryFormat, SourceName, SplitBy
from app.settings import MAX_TOKEN_TTL_HOURS, Device, Settings, get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Movie recommendations on Qdrant.")
token_cli = typer.Typer(no_args_is_help=True, help="Bearer tokens for the API.")
cli.add_typer(token_cli, name="token")


RatingScale = Literal["5", "10"]  # --rating-scale: stars out of 5, or out of 10 (halved)


def _echo_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, default=str))


# What Ctrl-C leaves: ratings are written in one transaction (all or none), embedded batches stay in
# the staging index, and nothing is published half-built.
INTERRUPTED = (
    "what was embedded so far is kept and nothing half-built is published; the same command resumes from there"
)


@cli.command()
def ingest(
    source: Annotated[SourceName, typer.Option(help="Catalogue source.")] = "demo",
    movies: Annotated[Path | None, typer.Option(help="Movies file (tmdb: JSON, JSONL or CSV).")] = None,
    ratings: Annotated[Path | None, typer.Option(help="Ratings CSV (userId,movieId,rating,timestamp).")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Folder of a movielens or movies-dataset source.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N movies.")] = None,
    rebuild: Annotated[bool, typer.Option(help="Re-embed everything into a fresh index, then switch.")] = False,
    device: Annotated[Device | None, typer.Option(help="Compute device (default: MOVIEREC_DEVICE).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Movies per embedding batch.")] = None,
    if_missing: Annotated[bool, typer.Option(help="Do nothing when an index is already published.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    rating_scale: Annotated[
        RatingScale | None,
        typer.Option(help="Scale of --ratings: 5 (0.5-5 stars) or 10 (halved) \\[default: detected]."),
    ] = None,
) -> None:
    """Load a catalogue and its ratings, embed what changed, and publish the index.

    Bad rows are reported on stderr (file:line or file: record N) and skipped; a file that cannot
    be read stops the ingest with one line and exit status 2, before anything is written."""
    import ingest as ingest_
    from app.datasets import UnusableFileError
    from app.errors import ConflictError, DiskSpaceError, InvalidInputError
    from app.vectorstore import open_store
    from ingest.ratings import RatingsFileError

    settings = get_settings()
    _exit_if_data_dir_unwritable(settings, serving=False)
    store = open_store(settings)
    if if_missing and store.manifest() is not None:
        typer.echo(f"index present ({store.generation()}); skipping ingest", err=True)
        return
    # Libraries print to stdout (the image model's loading line): with --json only the object goes there.
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with quiet:
            summary = ingest_.run(
                settings,
                source,
                movies=movies,
                ratings=ratings,
                directory=directory,
                limit=limit,
                rating_scale=int(rating_scale) if rating_scale else None,
                rebuild=rebuild,
                device=device,
                batch_size=batch_size,
                progress=not as_json,
                store=store,
                report=lambda line: typer.echo(line, err=True),
            )
    except (UnusableFileError, RatingsFileError) as exc:
        for err in getattr(exc, "errors", []):  # NothingUsableError: the rows that were refused
            typer.echo(f"skipped: {err}", err=True)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except InvalidInputError as exc:  # a wrong combination of options, checked once by ingest.run
        option = (
            {"directory": "--dir", "rating_scale": "--rating-scale"}.get(exc.field, f"--{exc.field}")
            if exc.field
            else None
        )
        raise typer.BadParameter(str(exc), param_hint=option) from None
    except (ConflictError, DiskSpaceError) as exc:  # another ingest runs on this data dir; too little disk
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted: {INTERRUPTED}", err=True)
        raise typer.Exit(130) from None
    if as_json:
        _echo_json(summary.to_dict())
        return
    s = summary
    typer.echo(
        f"{s.movies_read} movie rows read, {s.bad_rows} bad rows skipped, {s.ratings} ratings stored; "
        f"{s.movies} movies in the index ({s.with_poster} with poster, {s.without_poster} without): "
        f"{s.embedded} embedded, {s.skipped_unchanged} unchanged, {s.deleted} removed, "
        f"{s.failed} posters failed; {s.collab_vectors} collab vectors; "
        f"index {s.seconds:.1f} s ({s.movies_per_s:.1f} movies/s), total {s.total_seconds:.1f} s"
    )
    for key, value in s.source_stats.items():
        typer.echo(f"  {key}: {value}")


@cli.command("import-ratings")
def import_ratings(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The export's ratings CSV.")],
    user: Annotated[int, typer.Option("--user", min=1, help="Whose ratings these are.")],
    fmt: Annotated[HistoryFormat, typer.Option("--format", help="Which export the file is.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Import a user's own Letterboxd or IMDb ratings as that user's ratings (never reverted by an ingest).

    A file that cannot be read as that export stops with one line and exit status 2, as `ingest`
    does, before the database is opened."""
    from dataclasses import asdict

    from sqlmodel import Session

    from app.catalog.db import make_engine
    from app.datasets import UnusableFileError
    from app.datasets.history import import_history, read_history
    from app.errors import ConflictError

    try:
        history = read_history(_read_bytes(file), fmt, name=file.name)
    except UnusableFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for warning in history.warnings:
        typer.echo(f"warning: {warning}", err=True)
    engine = make_engine(get_settings().sqlalchemy_url)
    try:
        with Session(engine) as session:
            report = import_history(session, user, history)
            session.commit()
    except ConflictError as exc:  # no catalogue yet: `movierec ingest` first
        typer.echo(f"error: {exc} (movierec ingest)", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if as_json:
        _echo_json({"user_id": user, "format": fmt, **asdict(report)})
        return
    r = report
    typer.echo(
        f"user {user}: {r.rows} rows, {r.matched} matched ({r.imported} imported, {r.unchanged} unchanged, "
        f"{r.kept_newer} kept newer), {r.unmatched_total} unmatched, {r.skipped_total} skipped"
    )
    if r.unmatched_total > len(r.unmatched) or r.skipped_total > len(r.skipped):
        typer.echo(f"  (the first {len(r.unmatched)} unmatched and {len(r.skipped)} skipped rows listed)")
    for item in r.unmatched:
        suggestions = cast(list[dict[str, object]], item["suggestions"])
        close = "; ".join(f"{s['title']} ({s['year']}), id {s['movie_id']}" for s in suggestions)
        hint = f"; did you mean: {close}?" if close else ""
        year = f" ({item['year']})" if item["year"] is not None else ""
        typer.echo(f"  unmatched: {file.name}:{item['line']}: {item['title']}{year}{hint}")
    for item in r.skipped:
        typer.echo(f"  skipped: {file.name}:{item['line']}: {item['field']}: {item['message']}")


def _exit_if_data_dir_unwritable(settings: Settings, *, serving: bool) -> None:
    """Exit 2 with one line when the data folder must be written and cannot be (a read-only mount,
    no write permission): said as such, before a database or an index fails on it."""
    from app.datadir import probe_data_dir

    if (problem := probe_data_dir(settings, serving=serving)) is not None:
        typer.echo(f"error: {problem.says()}", err=True)
        raise typer.Exit(2)


def _device_or_exit(settings: Settings) -> str:
    """MOVIEREC_DEVICE resolved; CUDA asked for where there is none exits 2 with one line."""
    from app.embedding.device import CUDA_SETTING_MISSING, resolve_device

    try:
        return resolve_device(settings.device)
    except ValueError:  # the setting is validated: only "cuda" can fail here
        typer.echo(f"error: {CUDA_SETTING_MISSING}", err=True)
        raise typer.Exit(2) from None


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; UnusableFileError (one line) when it cannot be read (permissions, a folder)."""
    from app.datasets import UnusableFileError

    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnusableFileError(str(path), f"cannot read the file ({exc.strerror})", "check the path") from None


@cli.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Embedding quality metrics: coverage, poster coverage, device, models. Exit 1 when no index exists."""
    from app.catalog.db import make_engine
    from app.status import embedding_metrics
    from app.vectorstore import open_store

    settings = get_settings()
    store = open_store(settings)
    if store.manifest() is None:  # before make_engine, which would create an empty database
        typer.echo("no index yet: run `movierec ingest`", err=True)
        raise typer.Exit(1)
    metrics = embedding_metrics(make_engine(settings.sqlalchemy_url), store, _device_or_exit(settings))
    if as_json:
        _echo_json(metrics)
        return
    for key, value in metrics.items():
        typer.echo(f"{key:>26}: {json.dumps(value) if isinstance(value, dict) else value}")


@cli.command("eval")
def eval_(
    dataset: Annotated[EvalDataset, typer.Option(help="Catalogue and ratings to evaluate on.")] = "ml-100k",
    protocol: Annotated[
        EvalProtocol,
        typer.Option(
            help="stratified: a random 25% held out; temporal: each user's latest 25%; "
            "new-movies: stratified, and a seeded 15% of movies lose all training ratings."
        ),
    ] = "stratified",
    k: Annotated[int, typer.Option("--k", min=1, help="Length of each recommendation list.")] = 10,
    users: Annotated[int | None, typer.Option(min=1, help="Evaluate a seeded sample of this many test users.")] = None,
    split: Annotated[
        SplitBy, typer.Option(help="stratified protocol: hold out 25% of each user's ratings, or of each movie's.")
    ] = "user",
    seeds: Annotated[str, typer.Option(help="Split seeds, comma-separated, e.g. 1,2,3,4,5: mean ± std.")] = "42",
    new_users: Annotated[
        bool, typer.Option("--new-users", help="Add the new-user sweep: histories cut to 1, 2, 3, 5, 10.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    save: Annotated[
        bool, typer.Option("--save", help="Also save the JSON report for the dashboard (DATA_DIR/eval/last.json).")
    ] = False,
) -> None:
    """Offline evaluation: every strategy and baseline ranks the catalogue from training ratings only."""
    from app.embedding.factory import build_manifest, build_text_encoder
    from app.evaluation import EvalConfig, format_report, run_eval

    settings = get_settings()
    dev = _device_or_exit(settings)
    config = EvalConfig(
        cache_dir=settings.data_dir / "eval-cache",
        manifest=build_manifest(settings),
        make_encoder=lambda: build_text_encoder(settings, dev),
        history_size=settings.recommend.history_size,
        half_life_days=settings.recommend.half_life_days,
        popularity=settings.recommend.popularity_weight,
        diversity=settings.recommend.diversity,
    )
    try:
        seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter("comma-separated integers, e.g. 1,2,3", param_hint="--seeds") from None
    if not seed_list:
        raise typer.BadParameter("at least one seed", param_hint="--seeds")
    log = (lambda _: None) if as_json else (lambda line: typer.echo(line, err=True))
    report = run_eval(
        dataset,
        protocol,
        k,
        config,
        users=users,
        log=log,
        by=split,
        seeds=seed_list,
        new_users=new_users,
    )
    if save:
        _save_eval(settings.eval_report_path, report.to_json())
    if as_json:
        _echo_json(report.to_json())
    else:
        typer.echo(format_report(report))


def _save_eval(target: Path, report: dict[str, Any]) -> None:
    """Atomically replace the saved report that the dashboard's Quality page reads."""
    from app.files import atomic_write

    with atomic_write(target) as tmp:
        tmp.write_text(json.dumps({**report, "saved_at": int(time.time())}, default=str))


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[
        int | None,
        # Parentheses, not brackets: typer's rich help reads "[...]" as markup and drops it.
        typer.Option(min=1, help="Worker processes (default: MOVIEREC_WORKERS, else one per CPU core, at most 4)."),
    ] = None,
    timeout_keep_alive: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Close idle keep-alive connections after this many seconds "
            "(default: MOVIEREC_TIMEOUT_KEEP_ALIVE_S, 75).",
        ),
    ] = None,
) -> None:
    """Serve the REST API (OpenAPI docs at /schema)."""
    import uvicorn

    from app.auth import signing_key
    from app.logs import logging_config
    from app.multiproc import prepare_multiprocess_dir

    settings = get_settings()
    _exit_if_data_dir_unwritable(settings, serving=True)
    if settings.device == "cuda":  # "auto" is resolved in the workers: torch is not imported here for it
        _device_or_exit(settings)
    signing_key(settings)  # created here, once, before the workers start and read it
    count = workers or settings.api_workers
    # Before any worker imports prometheus_client: then GET /metrics sums every worker's samples.
    samples = prepare_multiprocess_dir(settings.metrics_dir, port)
    try:
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
    finally:  # Ctrl-C (SIGINT) gets here; SIGTERM ends the process first, and the next start empties it
        if settings.metrics_dir is None:
            shutil.rmtree(samples, ignore_errors=True)


# httptools (llhttp, in C) with h11's cap on the request line and headers, which it reads from
# `h11_max_incomplete_event_size` (larger: 431). Parsing with h11 itself cost about a sixth of a worker's CPU.
HTTP_PROTOCOL = "app.api.http_protocol:BoundedHttpToolsProtocol"


class ServerLimits(TypedDict):
    http: str
    h11_max_incomplete_event_size: int
    timeout_keep_alive: int


def server_limits(settings: Settings, timeout_keep_alive: int | None = None) -> ServerLimits:
    """The uvicorn options `serve` bounds connections with (shared with the tests that check them).

    `h11_max_incomplete_event_size` caps the request line and headers (larger: 431); HTTP_PROTOCOL
    honours it as uvicorn's h11 protocol does.
    """
    return {
        "http": HTTP_PROTOCOL,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": timeout_keep_alive or settings.timeout_keep_alive_s,
    }


@token_cli.command("create")
def token_create(
    admin: Annotated[bool, typer.Option("--admin", help="A token that may do everything.")] = False,
    user: Annotated[int | None, typer.Option("--user", min=1, help="A token for this user id only.")] = None,
    ttl_hours: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_TOKEN_TTL_HOURS, help="Lifetime in hours \\[default: MOVIEREC_TOKEN_TTL_HOURS]."),
    ] = None,
) -> None:
    """Print a signed bearer token (HS256, signed with MOVIEREC_SECRET_KEY or the data dir's generated key)."""
    from sqlmodel import Session

    from app.auth import issue_token
    from app.catalog.db import make_engine
    from app.catalog.tokens import token_version

    holder = _token_holder(admin, user)
    settings = get_settings()
    if settings.needs_generated_key():
        # Run outside the repository root, the default data dir is ./data here: a key made for it signs
        # tokens that the API serving the real data dir refuses ("Invalid token").
        typer.echo(
            f"warning: no signing key in {settings.data_dir} yet, so one is generated there: only an API "
            "serving this data dir accepts the token (run from the folder `make run` ran in, or set "
            "MOVIEREC_DATA_DIR / MOVIEREC_SECRET_KEY as the API has them)",
            err=True,
        )
    # The token carries its holder's current version, so a later revoke refuses it.
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        version = token_version(session, holder)
    engine.dispose()
    typer.echo(issue_token(settings, user_id=user, admin=admin, ttl_hours=ttl_hours, version=version))


@token_cli.command("revoke")
def token_revoke(
    user: Annotated[
        int | None, typer.Option("--user", min=1, help="Revoke every token issued to this user so far.")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Revoke every admin token issued so far.")] = False,
) -> None:
    """Refuse every token issued to one user (or every admin token) so far, without rotating the key;
    new tokens still work."""
    from sqlmodel import Session

    from app.catalog.db import make_engine
    from app.catalog.tokens import revoke_tokens

    holder = _token_holder(admin, user)
    settings = get_settings()
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        version = revoke_tokens(session, holder)
    engine.dispose()
    whose = "every admin token" if user is None else f"user {user}'s tokens"
    typer.echo(
        f"revoked {whose} (token version now {version}); API workers refuse them within {settings.token_refresh_s:g} s"
    )


def _token_holder(admin: bool, user: int | None) -> int:
    """The token_versions row a `token` command reads or raises: ADMIN_TOKENS for --admin, else the
    user id. Raises BadParameter unless exactly one of --admin and --user is given."""
    from app.catalog.tokens import ADMIN_TOKENS

    if admin == (user is not None):
        raise typer.BadParameter("give exactly one of --admin or --user ID")
    return ADMIN_TOKENS if user is None else user


def main() -> None:
    # Set once, where the process starts, before anything imports huggingface_hub: every model loads
    # from a local path, so nothing may try the hub (and hang without a network). Workers inherit it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
    except Exception as exc:
        if (trouble := environment_problem(exc)) is None:
            raise  # a bug: its traceback helps
        typer.echo(f"error: {trouble}", err=True)
        raise SystemExit(2) from None


def environment_problem(exc: Exception) -> str | None:
    """One line for a failure of the machine, not of the code: the data dir read-only or full, the
    database unreachable, locked, too slow or read-only. None for anything else."""
    if isinstance(exc, OSError):  # its text names the errno's meaning and the path
        return str(exc)
    from sqlalchemy import exc as sa_exc

    from app.catalog.db import READ_ONLY_MESSAGE, SQLITE_BUSY_TIMEOUT_S, driver_message, is_locked, is_read_only

    if not isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return None
    if is_locked(exc):
        return f"the database is locked by another writer (waited {SQLITE_BUSY_TIMEOUT_S:g} s): try again later"
    if is_read_only(exc):
        return READ_ONLY_MESSAGE
    why = driver_message(exc)
    return f"the database is unavailable: {why}; check DATABASE_URL, and that it runs and accepts writes"


if __name__ == "__main__":
    main()
