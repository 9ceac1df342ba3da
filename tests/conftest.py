"""Shared fixtures. Real models, real engines, real databases; small data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# ---- qdrant server fixtures (owned by tests/qdrant_fixtures.py) ----
pytest_plugins = ["tests.qdrant_fixtures"]
