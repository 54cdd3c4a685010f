"""Log lines in one format (`--log-format json|text`), uvicorn's included; event fields, never a secret."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

EVENT_FIELDS = ("event", "experiment", "request", "status", "kind", "provider")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the event fields, and a traceback as one string."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line |= {k: getattr(record, k) for k in EVENT_FIELDS if getattr(record, k, None) is not None}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value …`, one line per event (a traceback follows on its own lines)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={getattr(record, k)}" for k in EVENT_FIELDS if getattr(record, k, None) is not None)
        text = super().format(record)
        return f"{text} {fields}" if fields and "\n" not in text else text


def configure(fmt: str = "text", level: int = logging.INFO) -> dict[str, Any]:
    """Send every log line (expbot's and uvicorn's) through one handler; returns uvicorn's `log_config`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its lines carry full URLs
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def event(logger: logging.Logger, name: str, message: str, **fields: Any) -> None:
    """An event line (request.created, request.applied, outbox.retry …) with its ids."""
    logger.info(message, extra={"event": name, **fields})
