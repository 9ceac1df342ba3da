"""The `movierec` command: the composition root that wires the domain (`app`) and the worker (`ingest`)."""
