"""The ingest worker: catalogue sources and the batched, resumable embedding pipeline."""
