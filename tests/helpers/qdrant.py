"""The Qdrant server image the tests run against; compose.yaml runs the same one
(tests/test_compose.py checks it)."""

# qdrant-client 1.20 supports servers of the same minor version (and ±1, with fewer features).
QDRANT_IMAGE = "qdrant/qdrant:v1.20.0"
