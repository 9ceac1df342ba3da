"""Structured logs: one JSON object per line, extras included."""

from __future__ import annotations

import logging
import logging.config
from typing import Any

import msgspec

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # msgspec rather than json: this line is written for every request (uvicorn's access log).
        return _ENCODER.encode(entry).decode()


_ENCODER = msgspec.json.Encoder(enc_hook=str)  # what json has no type for (paths, exceptions): its str()


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """JSON lines on stderr, as a dictConfig: uvicorn applies it in each worker process it spawns."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "json"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {name: {"level": "WARNING"} for name in ("httpx", "httpcore", "sentence_transformers", "urllib3")},
    }


def configure_logging(level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(level))
