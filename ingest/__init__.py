"""The ingest worker: `run` loads a catalogue, stores it with its ratings, embeds what changed and
publishes the index (ingest/runner.py); the batched, resumable steps are in ingest/pipeline.py."""

from ingest.pipeline import IngestSummary
from ingest.runner import run

__all__ = ["IngestSummary", "run"]
