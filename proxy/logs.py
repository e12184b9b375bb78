"""Log formats, and the access log that never blocks the event loop.

Access log lines are formatted on the loop but written by a thread behind a
queue, so a slow disk costs a request nothing. The access log is off by
default: at tens of thousands of requests a second it is the largest cost a
request can carry.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
import time
from typing import Protocol

from settings import redact_url

access = logging.getLogger("proxy.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra` fields become keys."""

    _STANDARD = frozenset(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler])


class AccessRecord(Protocol):
    """What an access log line says of one answered request."""

    @property
    def peer(self) -> bytes: ...
    @property
    def method(self) -> bytes: ...
    @property
    def target(self) -> bytes: ...
    @property
    def minor(self) -> int: ...
    @property
    def status(self) -> int: ...
    @property
    def version(self) -> str: ...
    @property
    def backend(self) -> str | None: ...
    @property
    def retried(self) -> bool: ...


class AccessLog:
    """Writes one line per answered request to `target` ("-" for stderr, or a file)."""

    def __init__(self, target: str, fmt: str) -> None:
        self.json = fmt == "json"
        handler: logging.Handler = (
            logging.StreamHandler(sys.stderr)
            if target == "-"
            else logging.FileHandler(target, encoding="utf-8")
        )
        handler.setFormatter(JsonFormatter() if self.json else logging.Formatter("%(message)s"))
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._listener = logging.handlers.QueueListener(self._queue, handler)
        self._queue_handler = logging.handlers.QueueHandler(self._queue)
        access.addHandler(self._queue_handler)
        access.setLevel(logging.INFO)
        access.propagate = False
        self._listener.start()

    def record(self, ex: AccessRecord, duration_s: float) -> None:
        method = ex.method.decode("latin-1")
        # A control URL may carry ?token=...: never written down.
        target = redact_url(ex.target.decode("latin-1"))
        peer = ex.peer.decode("latin-1")
        if self.json:
            access.info(
                "request",
                extra={
                    "client": peer,
                    "method": method,
                    "target": target,
                    "status": ex.status,
                    "version": ex.version,
                    "backend": ex.backend,
                    "retried": ex.retried,
                    "duration_ms": round(duration_s * 1000, 3),
                },
            )
        else:
            access.info(
                '%s - - [%s] "%s %s HTTP/1.%d" %d version=%s backend=%s duration_ms=%.3f',
                peer,
                time.strftime("%d/%b/%Y:%H:%M:%S %z"),
                method,
                target,
                ex.minor,
                ex.status,
                ex.version,
                ex.backend or "-",
                duration_s * 1000,
            )

    def close(self) -> None:
        self._listener.stop()
        access.removeHandler(self._queue_handler)
        for handler in self._listener.handlers:
            handler.close()
