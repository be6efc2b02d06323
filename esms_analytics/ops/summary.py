"""A run's totals as one JSON file, for monitoring (``sync --summary-json FILE``).

The file is written when the run ends, whatever its end: a sync refused by
the service or stopped by a signal writes its exit code and its error too,
so a monitor tells "ran and failed" from "did not run" (no new file).
It is replaced atomically (a reader sees the last run or this one, never
half a file), readable by its owner and group only, and holds no secret:
every value of :data:`~esms_analytics.ops.logs.SECRET_VARIABLES` is masked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Final

from esms_analytics._version import __version__
from esms_analytics.errors import ConfigError
from esms_analytics.files import replace_file
from esms_analytics.ops.logs import mask, secrets_from_environment

#: What each exit code of the command line means, written beside it.
OUTCOMES: Final = {
    0: "ok",
    1: "incomplete",
    2: "usage",
    3: "auth",
    4: "service",
    5: "lake",
    70: "internal",
    130: "interrupted",
    143: "terminated",
}


def check_summary_path(text: str) -> Path:
    """Return ``text`` as the summary's path, or say in one line why it cannot be written.

    Checked before a sync starts, so that a mistyped folder costs no request.
    """
    path = Path(text)
    if not text.strip() or path.is_dir():
        raise ConfigError(
            f"--summary-json {text!r} is a folder; give a file name, e.g. {text or '.'}/sync.json"
        )
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(
            f"--summary-json {text}: the folder {folder} does not exist; create it or choose "
            "another file"
        )
    if not os.access(folder, os.W_OK):
        raise ConfigError(
            f"--summary-json {text}: the folder {folder} cannot be written by this user; "
            "choose another file"
        )
    return path


def run_summary(
    *,
    command: str,
    started: datetime,
    finished: datetime,
    exit_code: int,
    totals: Mapping[str, object] | None,
    requests: int,
    retries: int,
    bytes_received: int,
    error: str | None = None,
    **facts: object,
) -> dict[str, object]:
    """Assemble a run's summary.

    ``totals`` are the sync's numbers (:meth:`~esms_analytics.sync.SyncReport.totals`),
    None when the run ended before it had any (refused credentials, a bad lake):
    the window counts are then null, not zero. ``requests``, ``retries`` and
    ``bytes_received`` are the client's own counters, probes included.
    """
    counts: dict[str, object] = dict.fromkeys(
        ("windows", "fetched", "skipped", "incomplete", "failed", "stopped", "rows")
    )
    if totals is not None:
        counts.update({name: totals[name] for name in counts})
    return {
        "esms_analytics_version": __version__,
        "command": command,
        **facts,
        "started_at": started.isoformat(timespec="milliseconds"),
        "finished_at": finished.isoformat(timespec="milliseconds"),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "exit_code": exit_code,
        "outcome": OUTCOMES.get(exit_code, "error"),
        "error": error,
        **counts,
        "requests": requests,
        "retries": retries,
        "bytes": bytes_received,
    }


def write_summary(path: Path, summary: Mapping[str, object]) -> None:
    """Write ``summary`` to ``path`` atomically (0640), every secret masked."""
    text = mask(json.dumps(summary, indent=2, default=str), secrets_from_environment())
    replace_file(path, (text + "\n").encode("utf-8"))
