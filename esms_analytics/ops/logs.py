"""Log records as text or as one JSON object a line, secrets masked either way.

>>> import logging
>>> record = logging.makeLogRecord(
...     {"name": "esms_analytics", "levelname": "INFO", "msg": "stored with key s3cret-key",
...      "created": 0.0, "event": "window", "rows": 12}
... )
>>> print(JsonFormatter(secrets=["s3cret-key"]).format(record))
{"time": "1970-01-01T00:00:00.000Z", "level": "INFO", "logger": "esms_analytics", "event": "window", "message": "stored with key ***", "rows": 12}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Final, TextIO

from esms_analytics.errors import ConfigError

LOG_FORMATS: Final = ("text", "json")
#: Environment variables whose values never appear in a log line.
SECRET_VARIABLES: Final = (
    "ESMS_API_KEY",
    "ESMS_SECRET_KEY",
    "ESMS_PSEUDONYM_KEY",
    "ESMS_ICEBERG_CATALOG_URI",  # a SQL catalog's URL may hold its database's password
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
)
#: A value this short is not masked: masking "1" would mangle every number of a line.
MIN_SECRET_CHARS: Final = 4
MASK: Final = "***"
#: The attributes every LogRecord has; any other one came in ``extra=`` and is a field.
_RECORD_ATTRIBUTES: Final = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "event",
}


#: The handler :func:`configure_logging` installed, if it did.
_installed: list[logging.Handler] = []


def secrets_from_environment() -> list[str]:
    """Return the values of :data:`SECRET_VARIABLES` set in the environment."""
    values = (os.environ.get(name, "") for name in SECRET_VARIABLES)
    return [value for value in values if len(value) >= MIN_SECRET_CHARS]


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` with :data:`MASK`, the longest first.

    >>> mask("key=abcd1234 and abcd1234", ["abcd1234"])
    'key=*** and ***'
    """
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SECRET_CHARS:
            text = text.replace(secret, MASK)
    return text


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message``, secrets masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """Format as :class:`logging.Formatter` does, then mask the secrets."""
        return mask(super().format(record), self.secrets)


class JsonFormatter(logging.Formatter):
    """One JSON object a record: time (UTC), level, logger, event, message, then the fields.

    The fields are what the record was given in ``extra=`` (``sms_type``,
    ``date``, ``rows``, ``requests``, ``retries``, ``seconds``...); ``event``
    names what happened (``window``, ``plan``, ``summary``, ``error``) and is
    ``message`` for a record that names none. A traceback (``--debug``) goes
    in ``traceback``. Secrets are masked in the whole line.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", "message"),
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return mask(json.dumps(entry, ensure_ascii=False, default=str), self.secrets)


@contextlib.contextmanager
def logging_configured(
    log_format: str = "text", *, debug: bool = False, stream: TextIO | None = None
) -> Iterator[logging.Handler]:
    """Do :func:`configure_logging` for the block, then put the levels and handlers back.

    For the command line called in-process (``main([...])`` from a test, a
    notebook or an Airflow task): the process's logging is as before afterwards.
    """
    root, own = logging.getLogger(), logging.getLogger("esms_analytics")
    levels = root.level, own.level
    handler = configure_logging(log_format, debug=debug, stream=stream)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        if handler in _installed:
            _installed.remove(handler)
        root.setLevel(levels[0])
        own.setLevel(levels[1])


def configure_logging(
    log_format: str = "text", *, debug: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """Send log records to ``stream`` (stderr) as ``text`` or ``json``; return the handler.

    Text logs show warnings (everything with ``debug``); JSON logs are for
    machines and also carry esms-analytics's ``info`` events, one a window.
    Other libraries' records show from warnings on, or everything with ``debug``.
    """
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"log format {log_format!r} is not known; use {' or '.join(LOG_FORMATS)}")
    secrets = secrets_from_environment()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if log_format == "json" else TextFormatter(secrets))
    root = logging.getLogger()
    if _installed:  # a second call (a test, a notebook) replaces the first's handler
        root.removeHandler(_installed.pop())
    _installed.append(handler)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    own = logging.DEBUG if debug else logging.INFO if log_format == "json" else logging.NOTSET
    logging.getLogger("esms_analytics").setLevel(own)
    return handler
