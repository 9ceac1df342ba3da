"""The docs say what the software does: settings, dimensions, defaults, CLI help and messages.

Each check reads the number or name from the code, so the next change to the code that the docs
miss fails here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from app.embedding.device import default_batch_size
from app.embedding.factory import build_manifest
from app.settings import Settings
from app.vectorstore import COLLAB_DIM
from movierec.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def env_names(model: type[BaseSettings] = Settings) -> dict[str, list[str]]:
    """Setting -> the environment variables that set it (its alias choices, else MOVIEREC_<NAME>); a
    group's settings (settings.recommend) are read from the same variables as the others."""
    prefix = model.model_config.get("env_prefix", "")
    names = {}
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
            names.update(env_names(field.annotation))
            continue
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
        names[name] = [str(c) for c in choices] or [f"{prefix}{name}".upper()]
    return names


def section(text: str, heading: str) -> str:
    """The body of one `## heading` section of a Markdown file."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, heading
    return match.group(1)


def test_every_setting_is_in_the_readme_table() -> None:
    table = [
        line for line in section((ROOT / "README.md").read_text(), "Configuration").splitlines() if line.startswith("|")
    ]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", "\n".join(table)))
    missing = {name: envs for name, envs in env_names().items() if not set(envs) & documented}
    assert not missing, f"settings missing from the README's Configuration table: {missing}"
    # ... and the table names nothing that does not exist.
    known = {e for envs in env_names().values() for e in envs}
    assert documented <= known, documented - known


def test_deploy_doc_gives_the_vector_sizes_the_index_has(tmp_path: Path) -> None:
    dims = build_manifest(Settings(data_dir=tmp_path)).vector_dims()
    assert dims["collab"] == COLLAB_DIM
    rows = dict(re.findall(r"^\s*\| `(\w+)`\s*\| (\d+)\s*\|", (ROOT / "docs/deploy.md").read_text(), flags=re.M))
    assert {name: int(size) for name, size in rows.items()} == dims


def test_bench_readme_gives_the_cpu_batch_default() -> None:
    text = " ".join((ROOT / "bench/README.md").read_text().split())
    stated = re.findall(r"CPU default (?:is|of) (\d+)", text)
    assert stated and {int(n) for n in stated} == {default_batch_size("cpu", "text")}, stated


def test_workers_help_shows_its_default() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "--workers" in line)
    assert "default: MOVIEREC_WORKERS, else one per CPU core, at most 4" in line, line


def test_status_on_an_empty_data_dir_says_so_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEREC_", "QDRANT_", "DATABASE_URL"))}
    env |= {"MOVIEREC_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "movierec.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run
    assert "no index yet: run `movierec ingest`" in run.stderr
    assert not data.exists() and list(tmp_path.iterdir()) == [], list(tmp_path.rglob("*"))


def test_readme_says_how_to_stop_the_server_and_what_it_logs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "prints nothing more" not in readme
    assert "To stop the server" in readme and "Ctrl-C" in readme


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        (["ingest"], "--rating-scale", "[default: detected]"),
        (["token", "create"], "--ttl-hours", "[default: MOVIEREC_TOKEN_TTL_HOURS]"),
    ],
)
def test_a_default_written_in_brackets_is_shown(command: list[str], option: str, default: str) -> None:
    """Rich reads `[...]` in help text as markup and dropped it: 'Lifetime in hours .'."""
    result = CliRunner().invoke(cli, [*command, "--help"], env={"COLUMNS": "250", "TERMINAL_WIDTH": "250"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if option in line)
    assert default in line, line
