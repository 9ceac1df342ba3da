"""The ingest worker: the batched, resumable pipeline that stores a catalogue (app/datasets) and embeds it."""
