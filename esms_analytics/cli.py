"""The ``esms-analytics`` command: a thin skin over the library.

Each command builds the library object, calls one function, and turns the
library's errors into one clear line on stderr and an exit code:

====  ==============================================================
code  meaning
====  ==============================================================
0     success
1     sync finished, but some windows are incomplete or failed
2     bad arguments or configuration (including missing credentials)
3     eSMS refused the ApiKey / SecretKey (CodeResult 101)
4     eSMS or the network failed (after retries), or sent undecodable data
5     lake or disk problem: not a lake, not writable, disk full, corrupt file, locked,
      or its object store refused (missing bucket, credentials, endpoint, down);
      ``lake info`` / ``lake check`` found the lake damaged (a file that cannot
      be read, wrong columns, rows other than the manifest's, a foreign file,
      a missing or damaged manifest)
70    internal error (a bug): run again with --debug and report the traceback
130   interrupted (Ctrl-C, SIGINT)
143   stopped by SIGTERM (cron, systemd, Kubernetes)
====  ==============================================================

``--debug`` shows the traceback behind an error and keeps the exit code.

``sync`` and ``demo`` stop on the first Ctrl-C or SIGTERM: no request is sent
after it, the partition writes under way finish (each is atomic), the lock is
released, and the command says what was stored and how to resume. A second
signal ends the process at once; every partition is still whole, because
each one is written to a hidden temporary file and renamed into place.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import functools
import json
import logging
import math
import os
import shlex
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only light modules at the top: --help and argument errors answer before Polars loads.
from esms_analytics import __version__
from esms_analytics.arguments import check_range, sms_type_list, to_date
from esms_analytics.codes import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_ICEBERG_CATALOG_URI,
    ENV_SECRET_KEY,
    SMS_TYPES,
)
from esms_analytics.errors import (
    AnswerError,
    ApiError,
    AuthError,
    ConfigError,
    DecodeError,
    EsmsError,
    IncompleteWindowError,
    LakeError,
    TransportError,
)
from esms_analytics.ops.logs import logging_configured
from esms_analytics.registry import REPORTS

if TYPE_CHECKING:
    import polars as pl

    from esms_analytics.client import EsmsClient
    from esms_analytics.sync import SyncReport

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_SERVICE = 4
EXIT_LAKE = 5
EXIT_INTERNAL = 70
#: Bounds that keep dates and thread pools sane (a day count past this overflows dates).
MAX_SETTLE_DAYS = 366
MAX_WORKERS = 64
MAX_ATTEMPTS = 100
MAX_DAYS = 3660
#: A sync planning more days of windows than this asks before it starts (``--yes``).
LARGE_SYNC_DAYS = 366
LARGE_SYNC_WINDOWS = LARGE_SYNC_DAYS * len(SMS_TYPES)
#: A sync whose rate limit makes it last longer than this is announced with a warning.
LONG_SYNC_SECONDS = 3600
EXIT_INTERRUPTED = 130
#: Shells report death by signal N as 128 + N: 130 for SIGINT, 143 for SIGTERM.
EXIT_SIGNAL_BASE = 128
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

TYPES_HELP = ", ".join(f"{code} {label}" for code, label in SMS_TYPES.items())

logger = logging.getLogger("esms_analytics")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, like every other error."""

    #: Every command's parser by its full name ("lake info"), for the README reference.
    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def _parse_day(text: str) -> date:
    try:
        return to_date(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_sms_type(text: str) -> int:
    by_label: dict[str, int] = {label: code for code, label in SMS_TYPES.items()}
    try:
        code = int(text)
    except ValueError:
        code = by_label.get(text.strip().lower(), -1)
    if code not in SMS_TYPES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an eSMS SmsType; use one of {TYPES_HELP}"
        )
    return code


def _parse_lake(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} is empty; give the lake's folder (an empty path would mean the current "
            "folder)"
        )
    return text


def _parse_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate: give requests per second, a finite number, 0 for no limit"
        )
    return value


def _parse_positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _parse_not_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return int(text)


def _parse_storage_option(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        # Never echo the text: it may be a secret typed with the wrong separator.
        raise argparse.ArgumentTypeError("give KEY=VALUE, such as aws_region=eu-west-1")
    return key.strip(), value


def _add_lake_options(
    command: argparse.ArgumentParser, *, what: str, default: str | None = None
) -> None:
    command.add_argument(
        "--lake",
        metavar="PATH|URL",
        type=_parse_lake,
        required=default is None,
        default=default,
        help=f"{what}: a directory, or s3://, gs://, az://, abfs:// or file:// URL"
        + (" (required)" if default is None else f" (default {default})"),
    )
    command.add_argument(
        "--storage-option",
        dest="storage_options",
        type=_parse_storage_option,
        action="append",
        metavar="KEY=VALUE",
        help="object-store option on top of the cloud's environment (aws_region, "
        "aws_endpoint_url, allow_http...), repeatable (default none)",
    )
    command.add_argument(
        "--catalog-uri",
        metavar="URI",
        default=None,
        help="an Iceberg lake's catalog: https:// (REST), glue:// or glue://REGION (AWS Glue), "
        "thrift:// (Hive) or a SQLAlchemy URL; a bucket lake needs one (default "
        "$ESMS_ICEBERG_CATALOG_URI, else a local lake's own SQLite catalog)",
    )


def _storage_options(args: argparse.Namespace) -> dict[str, str] | None:
    return dict(args.storage_options) if args.storage_options else None


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    """Make an argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, 0 or more")
    return value


def build_parser() -> _Parser:
    """Build the argument parser of every command (the README's CLI reference is its --help)."""
    parser = _Parser(
        prog="esms-analytics",
        description="Fetch, store and report eSMS (esms.vn) message history. Credentials come "
        f"from {ENV_API_KEY} and {ENV_SECRET_KEY}; the service URL from --base-url or "
        f"{ENV_BASE_URL}.",
        epilog="Exit codes: 0 ok; 1 sync incomplete; 2 bad arguments or configuration; "
        "3 credentials refused; 4 service or network failure (unreachable, retries spent); "
        "5 lake or disk problem (lake info, lake check: the lake is damaged); 70 internal error "
        "(a bug); 130 Ctrl-C; 143 SIGTERM. "
        "--debug shows a traceback and keeps the code.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_debug_option(parser, default=False)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    # The order of the calls is the order of --help.
    sync, fetch = _add_sync_command(commands), _add_fetch_command(commands)
    lake, lake_info, lake_check, lake_pseudonymise, lake_compact = _add_lake_commands(commands)
    parser.commands = {
        "sync": sync,
        "fetch": fetch,
        "lake": lake,
        "lake info": lake_info,
        "lake check": lake_check,
        "lake pseudonymise": lake_pseudonymise,
        "lake compact": lake_compact,
        "report": _add_report_command(commands),
        "simulate": _add_simulate_command(commands),
        "demo": _add_demo_command(commands),
    }
    for command in parser.commands.values():
        _add_debug_option(command, default=argparse.SUPPRESS)
    return parser


def _add_debug_option(command: argparse.ArgumentParser, *, default: object) -> None:
    # On a command, SUPPRESS keeps an absent --debug from undoing one given before it.
    command.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="log every request and show the traceback behind an error; the exit code "
        "stays the documented one (default off)",
    )
    command.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text" if default is False else argparse.SUPPRESS,
        help="what goes to stderr: lines for people, or one JSON object a line (time, level, "
        "event, and sms_type, date, rows, requests, retries, seconds for each window) for a "
        "log collector (default text)",
    )


def _add_range_options(command: argparse.ArgumentParser, *, required: bool) -> None:
    command.add_argument(
        "--from",
        dest="start",
        type=_parse_day,
        required=required,
        metavar="YYYY-MM-DD",
        help="first creation day, Vietnam time"
        + (" (required)" if required else " (default: the first day stored)"),
    )
    command.add_argument(
        "--to",
        dest="end",
        type=_parse_day,
        required=required,
        metavar="YYYY-MM-DD",
        help="last creation day, inclusive; a day after today in Vietnam becomes today, with a "
        "warning" + (" (required)" if required else " (default: the last day stored)"),
    )
    command.add_argument(
        "--sms-type",
        dest="sms_types",
        type=_parse_sms_type,
        action="append",
        metavar="N",
        help=f"message type by number or name, repeatable ({TYPES_HELP}; default every type)",
    )


def _add_service_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--base-url",
        metavar="URL",
        help=f"service URL (default ${ENV_BASE_URL}, else eSMS's own)",
    )
    command.add_argument(
        "--max-attempts",
        metavar="N",
        type=_whole_number(1, MAX_ATTEMPTS),
        default=6,
        help="attempts per request before a window fails (default 6)",
    )


def _add_sync_command(commands: argparse._SubParsersAction[_Parser]) -> argparse.ArgumentParser:
    sync = commands.add_parser(
        "sync",
        help="bring a Parquet lake up to date",
        description="Fetch what the lake lacks or what has not settled "
        "yet, one window per (type, day), into Hive partitions.",
    )
    _add_lake_options(sync, what="the lake (a directory is created if new)")
    _add_range_options(sync, required=True)
    _add_service_options(sync)
    sync.add_argument(
        "--workers",
        metavar="N",
        type=_whole_number(1, MAX_WORKERS),
        default=4,
        help="windows in parallel (default 4)",
    )
    sync.add_argument(
        "--settle-days",
        metavar="DAYS",
        type=_whole_number(0, MAX_SETTLE_DAYS),
        default=3,
        help="days after a day ends before it counts as final (default 3)",
    )
    sync.add_argument(
        "--rate-limit",
        metavar="RPS",
        type=_parse_rate,
        default=10.0,
        help="requests per second at most, 0 for no limit (default 10)",
    )
    sync.add_argument(
        "--refresh",
        action="store_true",
        help="fetch settled windows again, to repair a corrupt partition (default off)",
    )
    sync.add_argument(
        "--yes",
        action="store_true",
        help=f"go ahead with a sync of more than a year of windows ({LARGE_SYNC_WINDOWS:,}: "
        f"{LARGE_SYNC_DAYS} days x {len(SMS_TYPES)} types) without asking; without it such a "
        "sync asks on a terminal and is refused elsewhere (default off)",
    )
    sync.add_argument(
        "--quiet",
        action="store_true",
        help="no plan line and no progress bar, for cron (default off)",
    )
    sync.add_argument(
        "--allow-shrink",
        action="store_true",
        help="store a re-fetch holding under half the rows stored, or none (else the window "
        "fails and its partition is kept; default off)",
    )
    sync.add_argument(
        "--table-format",
        choices=["hive", "delta", "iceberg"],
        default=None,
        help="a new lake's format: Hive files, or a Delta or Iceberg table committed once per "
        "sync; an Iceberg lake in a bucket needs $ESMS_ICEBERG_CATALOG_URI "
        "(default the lake's own; hive for a new lake)",
    )
    sync.add_argument(
        "--privacy",
        choices=["raw", "pseudonymised"],
        default=None,
        help="a new lake's privacy policy: raw rows, or pseudonymised ones (no phone, texts "
        "redacted; the key from ESMS_PSEUDONYM_KEY) (default the lake's own; raw for a new "
        "lake)",
    )
    sync.add_argument(
        "--summary-json",
        metavar="FILE",
        help="write the run's totals to FILE when it ends, however it ends (windows stored, "
        "incomplete, rows, requests, retries, bytes, duration, exit code), for monitoring; "
        "its folder must exist (default none)",
    )
    sync.add_argument(
        "--no-probes",
        action="store_true",
        help="ask every (type, day) on its own instead of finding empty months first with "
        "one wide request each (default off)",
    )
    return sync


def _add_fetch_command(commands: argparse._SubParsersAction[_Parser]) -> argparse.ArgumentParser:
    fetch = commands.add_parser(
        "fetch",
        help="fetch a range into one file, no lake",
        description="Fetch every message of the days into one .parquet, .csv or .json file.",
    )
    _add_range_options(fetch, required=True)
    fetch.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        required=True,
        help="FILE.parquet, .csv or .json to write, checked before fetching (required)",
    )
    _add_service_options(fetch)
    fetch.add_argument("--quiet", action="store_true", help="no progress bar (default off)")
    return fetch


def _add_lake_commands(
    commands: argparse._SubParsersAction[_Parser],
) -> tuple[argparse.ArgumentParser, ...]:
    lake = commands.add_parser("lake", help="inspect, check or pseudonymise a lake")
    actions = lake.add_subparsers(
        dest="lake_command", required=True, metavar="ACTION", parser_class=_Parser
    )
    info = actions.add_parser(
        "info",
        help="days, rows, freshness, unsettled and missing days (reads footers); exit 5 if damaged",
        description="Summarise the lake from its manifest and each file's footer. Exit code 5 "
        "when a file is unreadable, has other columns or rows than recorded, a foreign file "
        "lies in sms/, or the manifest is missing or damaged, so monitoring can watch it.",
    )
    _add_lake_options(info, what="the lake, holding sms/ and _manifest.json")
    check = actions.add_parser(
        "check",
        help="read every page of every file against the manifest; exit 5 if damaged",
        description="Read every page of every data file and check rows, columns and partition "
        "facts against the manifest; warn of negative sell_price. Exit code 5 on any problem. "
        "A plain sync never re-reads settled files: run this from time to time.",
    )
    _add_lake_options(check, what="the lake, holding sms/ and _manifest.json")
    pseudonymise = actions.add_parser(
        "pseudonymise",
        help="write a pseudonymised copy of a raw lake (key from ESMS_PSEUDONYM_KEY)",
        description="Copy a raw Hive lake into a pseudonymised one, file by file, as a sync "
        "with --privacy pseudonymised would have written it; the source is only read. Run "
        "again into the same --to, only the windows fetched since are copied. The key comes "
        "from ESMS_PSEUDONYM_KEY. Exit code 2 when the key, the source or --to is refused "
        "(nothing written), 5 when a source file cannot be read.",
    )
    _add_lake_options(pseudonymise, what="the raw lake to copy, holding sms/ and _manifest.json")
    pseudonymise.add_argument(
        "--to",
        dest="destination",
        metavar="PATH|URL",
        type=_parse_lake,
        required=True,
        help="the pseudonymised lake: a new or empty folder or prefix, or an earlier copy "
        "under the same key (required)",
    )
    compact = actions.add_parser(
        "compact",
        help="merge a Delta or Iceberg lake's small files of settled days (one more version)",
        description="Rewrite the small files of the settled days of a Delta lake (optimize) "
        "or an Iceberg lake (each partition of several files as one), holding the lake's lock, "
        "as one more version: every earlier version stays readable. A Hive lake is refused "
        "(exit 2): each of its partitions is one file already.",
    )
    _add_lake_options(compact, what="the Delta or Iceberg lake")
    compact.add_argument(
        "--settle-days",
        metavar="DAYS",
        type=_whole_number(0, MAX_SETTLE_DAYS),
        default=3,
        help="compact only the days that ended this many days ago or before (default 3)",
    )
    return lake, info, check, pseudonymise, compact


def _add_report_command(commands: argparse._SubParsersAction[_Parser]) -> argparse.ArgumentParser:
    report = commands.add_parser(
        "report",
        help="delivery, cost, trend, carrier and hotspot reports",
        description="Compute a report over the lake. csv and json carry exactly the report's "
        "columns; table is for people. 'html' writes every report with plots to --output.",
    )
    report.add_argument("kind", choices=[*REPORTS, "html"], help="which report (required)")
    _add_lake_options(report, what="the lake, holding sms/ and _manifest.json")
    _add_range_options(report, required=False)
    report.add_argument(
        "--campaign",
        dest="campaigns",
        action="append",
        metavar="NAME",
        help="only this campaign, repeatable (default every campaign)",
    )
    for flag, (name, parse, help_text) in _report_options().items():
        if parse is None:
            report.add_argument(flag, dest=name, action="store_true", default=None, help=help_text)
        else:
            report.add_argument(
                flag, dest=name, metavar="VALUE", action="append", default=None, help=help_text
            )
    report.add_argument(
        "--format",
        choices=("table", "csv", "json", "xlsx"),
        default="table",
        help="table for people (as wide as the terminal), csv (UTF-8) or json for tools, "
        "xlsx for Excel (to --output; with html: one sheet per report) (default table)",
    )
    report.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also save the plot: .png, .svg or .pdf, by the name's extension (default no plot)",
    )
    report.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="html: the page (.html), xlsx: the workbook (.xlsx), written exactly there "
        "(html default <lake>/../reports/report.html or .xlsx; reports/ for a lake in "
        "object storage)",
    )
    return report


def _report_options() -> dict[str, tuple[str, Any, str]]:
    """Each report option of the registry once: its flag, keyword, parser and help.

    An option several reports share (``--by``) lists each report's meaning and default.
    """
    options: dict[str, tuple[str, Any, dict[str, list[str]]]] = {}
    for spec in REPORTS.values():
        for option in spec.options:
            value = option.default
            shown = ("on" if value else "off") if option.parse is None else (value or "none")
            _, _, meanings = options.setdefault(option.flag, (option.name, option.parse, {}))
            meanings.setdefault(f"{option.help} (default {shown})", []).append(spec.kind)
    return {
        flag: (
            name,
            parse,
            "; ".join(f"{', '.join(kinds)}: {text}" for text, kinds in meanings.items()),
        )
        for flag, (name, parse, meanings) in options.items()
    }


def _add_simulate_command(commands: argparse._SubParsersAction[_Parser]) -> argparse.ArgumentParser:
    simulate = commands.add_parser(
        "simulate",
        help="run the eSMS simulator on loopback",
        description="Serve GetSmsSentData_V2 from a seeded history until Ctrl-C.",
    )
    simulate.add_argument(
        "--host",
        default="127.0.0.1",
        help="address of this machine to listen on; 0.0.0.0 for every interface "
        "(default 127.0.0.1)",
    )
    simulate.add_argument(
        "--port",
        type=_whole_number(0, 65535),
        default=8765,
        help="TCP port to listen on, 0 for any free one (default 8765)",
    )
    simulate.add_argument(
        "--seed",
        type=int,
        default=7,
        help="seed of the generated history: the same seed, the same rows (default 7)",
    )
    simulate.add_argument(
        "--days",
        type=_whole_number(0, MAX_DAYS),
        default=90,
        help="days of history before today (default 90)",
    )
    simulate.add_argument(
        "--daily-volume",
        type=_parse_not_negative,
        default=300,
        help="average rows a day over all types (default 300)",
    )
    simulate.add_argument(
        "--latency", type=_seconds, default=0.0, help="seconds added per request (default 0)"
    )
    simulate.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=P",
        help="fail requests with probability P; KIND is one of http500, "
        "http503, http429, slow, drop, truncate, malformed, code99, code160 "
        "or code:NNN (repeatable; default no faults)",
    )
    simulate.add_argument(
        "--arrivals",
        type=_parse_not_negative,
        default=0,
        help="new messages created before each request is answered (default 0)",
    )
    return simulate


def _add_demo_command(commands: argparse._SubParsersAction[_Parser]) -> argparse.ArgumentParser:
    demo = commands.add_parser(
        "demo",
        help="the whole job on the embedded simulator",
        description="Sync ~90 days of every type from the embedded "
        "simulator, print the reports, write plots and an HTML page.",
    )
    _add_lake_options(
        demo,
        what="the lake for simulated data; a lake of real data is refused",
        default="data/lake",
    )
    demo.add_argument(
        "--reports",
        type=Path,
        metavar="DIR",
        default=Path("data/reports"),
        help="where the plots and the HTML page go (default data/reports)",
    )
    demo.add_argument(
        "--days",
        type=_whole_number(1, MAX_DAYS),
        default=90,
        help="days to sync, ending today (default 90)",
    )
    demo.add_argument(
        "--daily-volume",
        type=_parse_positive,
        default=2500,
        help="average rows a day over all types (default 2500)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar (default off)")
    return demo


class _Signals:
    """The stop signals received while a command ran; the first one sets ``stop``."""

    #: Say it as a JSON log event (``--log-format json``).
    as_json = False

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.received: list[int] = []

    def handle(self, signum: int, frame: object) -> None:
        """Stop on the first signal; leave at once on the second."""
        name = signal.Signals(signum).name
        if self.received:
            # Every partition is whole even now: each is renamed into place when complete.
            self._write(
                "quit",
                "stopped at once; every partition is whole (temporary files are hidden)",
                name,
            )
            os._exit(EXIT_SIGNAL_BASE + self.received[0])
        self.received.append(signum)
        self.stop.set()
        self._write(
            "stopping",
            f"{name}: stopping; no new requests, finishing the writes under way (send it "
            "again to quit at once)",
            name,
        )

    def _write(self, event: str, line: str, signal_name: str) -> None:
        # os.write, not print or logging: a handler may run while the main thread holds
        # the lock of either.
        if self.as_json:
            entry = {"level": "WARNING", "event": event, "message": line, "signal": signal_name}
            os.write(2, (json.dumps(entry) + "\n").encode())
        else:
            os.write(2, f"\n{line}\n".encode())

    @property
    def exit_code(self) -> int | None:
        """128 + the first signal's number, or None if none came."""
        return EXIT_SIGNAL_BASE + self.received[0] if self.received else None


@contextlib.contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[_Signals]:
    """Turn Ctrl-C and SIGTERM into ``stop.set()`` while the block runs."""
    signals = _Signals(stop)
    if threading.current_thread() is not threading.main_thread():
        yield signals  # only the main thread may install handlers; stay with Python's
        return
    previous = {signum: signal.signal(signum, signals.handle) for signum in STOP_SIGNALS}
    try:
        yield signals
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    With ``argv`` None (the ``esms-analytics`` command itself), a stopped
    command ends the process without waiting for requests still on the
    network: they were abandoned, and nothing they bring can be written.
    """
    code = _main(argv)
    if argv is None and code != EXIT_OK and threading.active_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    args.command_line = shlex.join(["esms-analytics", *words])
    _say.as_json = _Signals.as_json = args.log_format == "json"
    # The catalog named on the command line is the environment's for this command (and
    # masked in its logs as the variable's value is); an in-process main() puts it back.
    with (
        _environment(ENV_ICEBERG_CATALOG_URI, getattr(args, "catalog_uri", None)),
        logging_configured(args.log_format, debug=args.debug),
    ):
        return _run_command(args)


@contextlib.contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """Set ``name`` to ``value`` (when given) for the block, then put the old value back."""
    if value is None:
        yield
        return
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _run_command(args: argparse.Namespace) -> int:
    handler = {
        "sync": _sync,
        "fetch": _fetch,
        "lake": _lake,
        "report": _report,
        "simulate": _simulate,
        "demo": _demo,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        _say("interrupted", event="interrupted", level=logging.ERROR, exit_code=EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except EsmsError as exc:
        return _fail(args, str(exc), _exit_code(exc))
    except OSError as exc:
        # What the library did not translate: a file or the disk failed under us.
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(args, f"{exc.strerror or exc}{where}", EXIT_LAKE)
    except Exception as exc:
        return _fail(
            args,
            f"unexpected {type(exc).__name__}: {exc}; this is a bug: run again with --debug "
            "and report the traceback",
            EXIT_INTERNAL,
        )


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    """Print one ``error:`` line (after the traceback with --debug); return ``code``."""
    if args.debug and not _say.as_json:
        traceback.print_exc()
    _say(
        f"error: {message}",
        event="error",
        level=logging.ERROR,
        exc_info=args.debug,
        exit_code=code,
    )
    return code


class _Say:
    """What the command line tells people on stderr: a line, or a JSON log event.

    With ``--log-format json`` every line becomes an event of the log (its
    ``message`` the line, its fields the numbers), so that a log collector
    reads stderr as JSON from the first line to the last.
    """

    as_json = False

    def __call__(
        self,
        line: str,
        *,
        event: str,
        level: int = logging.INFO,
        exc_info: bool = False,
        **fields: Any,
    ) -> None:
        if self.as_json:
            text = line.removeprefix("error: ").removeprefix("warning: ")
            logger.log(level, "%s", text, exc_info=exc_info, extra={"event": event, **fields})
        else:
            print(line, file=sys.stderr)


_say = _Say()


def _exit_code(exc: EsmsError) -> int:
    if isinstance(exc, AuthError):
        return EXIT_AUTH
    if isinstance(
        exc, ApiError | AnswerError | TransportError | DecodeError | IncompleteWindowError
    ):
        return EXIT_SERVICE
    if isinstance(exc, LakeError):
        return EXIT_LAKE
    return EXIT_USAGE


def _client(args: argparse.Namespace, **options: Any) -> EsmsClient:
    from esms_analytics.client import EsmsClient, RetryPolicy

    return EsmsClient(
        base_url=args.base_url, retry=RetryPolicy(max_attempts=args.max_attempts), **options
    )


def _sync(args: argparse.Namespace) -> int:
    """Run a sync; with ``--summary-json``, write its totals whatever its end."""
    from datetime import UTC, datetime

    from esms_analytics.ops.summary import check_summary_path, run_summary, write_summary

    path = None if args.summary_json is None else check_summary_path(args.summary_json)
    started = datetime.now(UTC)
    run = _SyncRun()
    code = EXIT_INTERNAL
    error: str | None = None
    try:
        code = _sync_run(args, run)
    except EsmsError as exc:
        code, error = _exit_code(exc), str(exc)
        raise
    except KeyboardInterrupt:
        code, error = EXIT_INTERRUPTED, "interrupted"
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        client = run.client
        summary = run_summary(
            command="sync",
            started=started,
            finished=datetime.now(UTC),
            exit_code=code,
            totals=None if run.report is None else run.report.totals(),
            requests=0 if client is None else client.requests_made,
            retries=0 if client is None else client.retries_made,
            bytes_received=0 if client is None else client.bytes_received,
            error=error,
            lake=str(args.lake),
            **{"from": args.start.isoformat(), "to": args.end.isoformat()},
            sms_types=args.sms_types,
        )
        if _say.as_json:  # a line for people is the summary printed on stdout
            fields: dict[str, Any] = {
                key: value for key, value in summary.items() if key != "error"
            }
            _say(
                f"sync ended with exit code {code}",
                event="summary",
                level=logging.INFO if code == EXIT_OK else logging.WARNING,
                **fields,
            )
        if path is not None:
            write_summary(path, summary)
    return code


@dataclasses.dataclass
class _SyncRun:
    """What a sync run has so far, for its summary: its client, then its report."""

    client: EsmsClient | None = None
    report: SyncReport | None = None


def _sync_run(args: argparse.Namespace, run: _SyncRun) -> int:
    from esms_analytics.sync import plan_sync, sync

    _clamp_to_today(args)
    plan = plan_sync(
        args.lake,
        args.start,
        args.end,
        sms_types=args.sms_types,
        refresh=args.refresh,
        storage_options=_storage_options(args),
        privacy=args.privacy,
        table_format=args.table_format,
    )
    rate = args.rate_limit or None
    seconds = plan.seconds(rate)
    if not args.quiet:
        pace = f"at {rate:g} requests/s" if rate else "with no rate limit"
        took = f"about {_duration(seconds)} {pace}" if seconds is not None else pace
        _say(
            f"sync {args.start}..{args.end}: {plan.windows:,} windows, {plan.to_fetch:,} to "
            f"fetch: at least {plan.to_fetch:,} requests, {took}",
            event="plan",
            windows=plan.windows,
            to_fetch=plan.to_fetch,
            seconds=seconds,
        )
    if seconds is not None and seconds > LONG_SYNC_SECONDS:
        _say(
            f"warning: at --rate-limit {rate:g} the {plan.to_fetch:,} requests take at least "
            f"{_duration(seconds)}",
            event="long_sync",
            level=logging.WARNING,
            seconds=seconds,
        )
    if plan.to_fetch > LARGE_SYNC_WINDOWS and not args.yes:
        _confirm_large_sync(plan.to_fetch)
    with (
        _client(args, rate_limit=args.rate_limit or None) as client,
        _stopping_on_signals(client.stop) as signals,
    ):
        run.client = client
        run.report = report = sync(
            args.lake,
            args.start,
            args.end,
            sms_types=args.sms_types,
            client=client,
            settle_days=args.settle_days,
            workers=args.workers,
            refresh=args.refresh,
            # A progress bar would break a JSON log; the window events say the same.
            progress=not args.quiet and not _say.as_json,
            storage_options=_storage_options(args),
            allow_shrink=args.allow_shrink,
            table_format=args.table_format,
            probes=not args.no_probes,
            privacy=args.privacy,
        )
    print(report.summary())
    if signals.exit_code is not None:
        _say_how_to_resume(report, args.command_line)
        return signals.exit_code
    return EXIT_OK if report.complete else EXIT_INCOMPLETE


def _clamp_to_today(args: argparse.Namespace) -> None:
    """Turn a --to after today in Vietnam into today, with a warning (cron clocks run ahead)."""
    from datetime import datetime

    from esms_analytics.codes import VN_TZ

    today = datetime.now(VN_TZ).date()
    if args.start > today:
        raise ConfigError(
            f"--from {args.start} is after today in Vietnam ({today}): no message can have "
            "been created then"
        )
    if args.end > today:
        _say(
            f"warning: --to {args.end} is after today in Vietnam ({today}); using --to {today}",
            event="clamped",
            level=logging.WARNING,
        )
        args.end = today


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _confirm_large_sync(windows: int) -> None:
    """Ask on a terminal before a sync of more than a year of windows; refuse elsewhere."""
    question = (
        f"this sync would fetch {windows:,} windows, more than a year of every type "
        f"({LARGE_SYNC_WINDOWS:,})"
    )
    if not sys.stdin.isatty():
        raise ConfigError(f"{question}; add --yes to go ahead, or narrow --from/--to")
    answer = input(f"{question}; go ahead? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise ConfigError(f"{question}; not confirmed, nothing was fetched")


def _say_how_to_resume(report: SyncReport, command_line: str) -> None:
    _say(
        f"stopped: {report.count('fetched')} windows stored by this run, "
        f"{report.count('stopped')} not fetched; run the same command again to resume "
        f"(stored and settled windows are not fetched again): {command_line}",
        event="stopped",
        level=logging.WARNING,
        command_line=command_line,
    )


def _fetch(args: argparse.Namespace) -> int:
    from esms_analytics.render import check_output
    from esms_analytics.windows import fetch_days

    check_output(args.output, (".parquet", ".csv", ".json"), option="--output")
    _clamp_to_today(args)
    with _client(args) as client:
        frame = fetch_days(
            client,
            args.start,
            args.end,
            sms_types=sms_type_list(args.sms_types),
            progress=not args.quiet,
        )
    _write_frame(frame, args.output)
    print(f"{frame.height:,} rows written to {args.output}")
    return EXIT_OK


def _write_frame(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` by the file's suffix (0640); a failure is an OSError naming the file."""
    import polars as pl

    from esms_analytics.files import open_file

    suffix = path.suffix.lower()
    try:
        with open_file(path) as file:
            if suffix == ".parquet":
                frame.write_parquet(file)
            elif suffix == ".csv":
                frame.write_csv(file)
            else:
                frame.write_json(file)
    except (OSError, pl.exceptions.PolarsError) as exc:
        if path.is_file():
            path.unlink()  # no half-written file under the name asked for
        raise OSError(
            errno.EIO, f"cannot write the {frame.height:,} fetched rows ({exc})", str(path)
        ) from exc


def _lake(args: argparse.Namespace) -> int:
    actions = {"pseudonymise": _pseudonymise, "compact": _compact}
    return actions.get(args.lake_command, _lake_info)(args)


def _compact(args: argparse.Namespace) -> int:
    from datetime import datetime, timedelta

    from esms_analytics.codes import VN_TZ
    from esms_analytics.lake import open_lake
    from esms_analytics.tables import compact_lake

    store = open_lake(args.lake, create=False, storage_options=_storage_options(args))
    before = datetime.now(VN_TZ).date() - timedelta(days=args.settle_days)
    done = compact_lake(store, before)
    if not done.files_removed:
        said = f"nothing to merge in the days before {before} (one file a partition already)"
    else:
        said = (
            f"{done.files_removed:,} files of the days before {before} merged into "
            f"{done.files_added:,} (version {done.version})"
        )
    _say(
        f"{store.location}: {said}",
        event="compacted",
        files_removed=done.files_removed,
        files_added=done.files_added,
        version=done.version,
    )
    return EXIT_OK


def _lake_info(args: argparse.Namespace) -> int:
    from esms_analytics.check import check_lake, lake_info

    if args.lake_command == "check" and (table := _table_problems(args)) is not None:
        for problem in table:
            print(f"problem: {problem}")
        if table:
            _say(
                f"error: {len(table)} problems in the table of {args.lake}",
                event="error",
                level=logging.ERROR,
                problems=len(table),
            )
            return EXIT_LAKE
        print(f"{args.lake}: the table's log and files are whole")
        return EXIT_OK
    if args.lake_command == "check":
        check = check_lake(args.lake, storage_options=_storage_options(args))
        print(check.summary())
        info, problems = check.info, sum(f.severity == "problem" for f in check.findings)
    else:
        info = lake_info(args.lake, storage_options=_storage_options(args))
        print(info.summary())
        problems = 0 if info.healthy else 1
    if not problems:
        return EXIT_OK
    damaged = info.windows.filter(info.windows["status"] != "ok").height
    # Only the advice that applies: a lost manifest alone needs no repair by hand.
    advice = [
        *(["repair each day above with `sync --refresh`"] if damaged else []),
        *(["move the foreign files out of sms/"] if info.foreign else []),
        *(
            ["the next sync writes the manifest again from what was rebuilt"]
            if info.manifest_problem
            else []
        ),
    ]
    _say(
        f"error: {damaged} partitions of {args.lake} are corrupt or missing, "
        f"{len(info.foreign)} foreign files, manifest "
        f"{'damaged' if info.manifest_problem else 'whole'} ({problems} problems in all); "
        + "; ".join(advice or ["see the lines above"]),
        event="error",
        level=logging.ERROR,
        problems=problems,
    )
    return EXIT_LAKE


def _pseudonymise(args: argparse.Namespace) -> int:
    from esms_analytics.convert import pseudonymise_lake

    done = pseudonymise_lake(args.lake, args.destination, storage_options=_storage_options(args))
    _say(
        done.summary(),
        event="pseudonymised",
        windows=done.windows,
        files=done.files,
        rows=done.rows,
        current=done.current,
        missing=done.missing,
    )
    return EXIT_OK


def _table_problems(args: argparse.Namespace) -> list[str] | None:
    """Check a Delta or Iceberg lake's table; None for a Hive lake."""
    from esms_analytics.store import open_store
    from esms_analytics.tables import open_table

    table = open_table(open_store(args.lake, storage_options=_storage_options(args)))
    return None if table is None else table.check()


def _reading_the_lake(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Name the lake and what to do when a damaged file fails the scan of a report."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from esms_analytics.lake import reading_lake

        with reading_lake(args.lake, _storage_options(args)):
            return handler(args)

    return run


@_reading_the_lake
def _report(args: argparse.Namespace) -> int:
    from esms_analytics import render
    from esms_analytics.bundle import Selection
    from esms_analytics.lake import read_lake
    from esms_analytics.render import write_table

    if args.start is not None and args.end is not None:
        check_range(args.start, args.end)
    selection = Selection(
        args.start,
        args.end,
        None if args.sms_types is None else tuple(args.sms_types),
        None if args.campaigns is None else tuple(args.campaigns),
    )
    # A repeated option (--by carrier --by date) means the same as one with commas.
    given = {
        name: value if isinstance(value, bool) else ",".join(value)
        for name, _, _ in _report_options().values()
        if (value := getattr(args, name)) is not None
    }
    if args.kind == "html":
        if given:
            raise ConfigError(f"--{next(iter(given)).replace('_', '-')} does not apply to html")
        return _report_html(args, selection)
    spec = REPORTS[args.kind]
    options = spec.parse(given)  # an option of another report fails before the lake is read
    workbook = _checked_outputs(args)
    frame = read_lake(
        args.lake,
        start=args.start,
        end=args.end,
        sms_types=args.sms_types,
        storage_options=_storage_options(args),
    )
    table = spec.compute(frame, campaigns=args.campaigns, **options)
    if workbook is not None:
        render.write_workbook({args.kind: table}, workbook)
        print(f"{table.height:,} rows written to {workbook}")
    else:
        write_table(table, args.format, sys.stdout)
    if table.height == 0:
        # A threshold of the report's own (hotspots' --min-messages) is a filter too.
        thresholds = [
            f"{option.flag} {options.get(option.name, option.default)}"
            for option in spec.options
            if option.name.startswith("min_")
        ]
        narrow = "the filter" + "".join(f" or {threshold}" for threshold in thresholds)
        _say(
            f"no rows match this selection (is the lake empty, or {narrow} too narrow?)",
            event="no_rows",
            level=logging.WARNING,
        )
    if args.plot is not None:
        from esms_analytics.bundle import plot_report
        from esms_analytics.plots import save_figure

        covered = selection.resolved(frame) or selection
        save_figure(plot_report(args.kind, table, covered), args.plot)
        _say(f"plot written to {args.plot}", event="plot", path=str(args.plot))
    return EXIT_OK


def _default_report_path(lake: str) -> Path:
    if "://" in lake and not lake.startswith("file://"):
        return Path("reports") / "report.html"  # a lake in a bucket: beside the caller
    return (
        Path(lake.removeprefix("file://")).expanduser().resolve().parent
        / "reports"
        / ("report.html")
    )


def _checked_outputs(args: argparse.Namespace) -> Path | None:
    """Check --plot and --output before any work; return the workbook to write, if any."""
    from esms_analytics import render

    if args.plot is not None:
        from esms_analytics.plots import plot_format

        plot_format(args.plot)
        render.check_output(args.plot, (args.plot.suffix.lower(),), option="--plot")
    if args.format != "xlsx":
        if args.output is not None:
            raise ConfigError(
                f"--output applies to html and xlsx; {args.format} goes to stdout (use > FILE)"
            )
        return None
    if args.output is None:
        raise ConfigError("--format xlsx writes a file: give --output FILE.xlsx")
    workbook: Path = args.output
    render.check_output(workbook, (".xlsx",), option="--output")
    return workbook


def _report_html(args: argparse.Namespace, selection: Any) -> int:
    """Write the page (or, with --format xlsx, the workbook) at exactly --output.

    Every filter applies; an empty selection is an error, not an empty page.
    """
    from esms_analytics import render
    from esms_analytics.bundle import write_report, write_workbook
    from esms_analytics.lake import read_lake

    if args.plot is not None:
        raise ConfigError("--plot does not apply to html: its plots are inside the page")
    if args.format not in ("table", "xlsx"):
        raise ConfigError(
            f"--format {args.format} does not apply to html; use xlsx or leave it out"
        )
    suffix = ".xlsx" if args.format == "xlsx" else ".html"
    output = args.output or _default_report_path(args.lake).with_suffix(suffix)
    render.check_output(output, (suffix,), option="--output" if args.output else "")
    # No dates here: the page compares the selection with the period before it.
    frame = read_lake(args.lake, sms_types=args.sms_types, storage_options=_storage_options(args))
    if args.format == "xlsx":
        bundle = write_workbook(frame, output, selection, source=str(args.lake))
        print(f"workbook written to {output} (sheets: {', '.join(bundle.tables)})")
    else:
        write_report(frame, output, selection, source=str(args.lake))
        print(f"report written to {output}")
    return EXIT_OK


def _simulate(args: argparse.Namespace) -> int:
    from esms_analytics.simulator import Faults, Simulator

    faults = Faults(latency=args.latency, arrivals_per_request=args.arrivals)
    for spec in args.fault:
        kind, _, probability = spec.partition("=")
        try:
            faults.set_rate(kind, float(probability or "1"))
        except ValueError as exc:
            raise ConfigError(f"--fault {spec}: {exc}") from None
    try:
        simulator = Simulator(
            host=args.host,
            port=args.port,
            seed=args.seed,
            days=args.days,
            daily_volume=args.daily_volume,
            faults=faults,
        )
    except OSError as exc:
        raise ConfigError(_listen_problem(args.host, args.port, exc)) from None
    print(
        f"eSMS simulator serving {simulator.base_url}\n"
        f"  export {ENV_BASE_URL}={simulator.base_url}\n"
        f"  export {ENV_API_KEY}={simulator.api_key} {ENV_SECRET_KEY}={simulator.secret_key}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    simulator.serve_forever()
    return EXIT_OK


def _listen_problem(host: str, port: int, exc: OSError) -> str:
    """Say why the simulator cannot listen on ``host:port``, blaming the right option."""
    if isinstance(exc, socket.gaierror):
        return f"--host {host} is not an address or a host name that resolves ({exc.strerror})"
    if exc.errno == errno.EADDRINUSE:
        return f"--port {port} is in use on {host}; choose another --port, or 0 for any free one"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"--host {host} is not an address of this machine; use 127.0.0.1 (this machine "
            "only) or 0.0.0.0 (every interface)"
        )
    if exc.errno == errno.EACCES:
        return f"--port {port} needs privileges on this machine; choose one from 1024 up"
    return f"cannot listen on {host}:{port}: {exc.strerror}"


def _demo(args: argparse.Namespace) -> int:
    from esms_analytics.demo import run_demo

    with _stopping_on_signals(threading.Event()) as signals:
        result = run_demo(
            lake=args.lake,
            storage_options=_storage_options(args),
            reports_dir=args.reports,
            days=args.days,
            daily_volume=args.daily_volume,
            progress=not args.quiet,
            stop=signals.stop,
        )
    if signals.exit_code is not None:
        _say_how_to_resume(result.sync, args.command_line)
        return signals.exit_code
    return EXIT_OK if result.sync.complete else EXIT_INCOMPLETE


def reference_markdown() -> str:
    """Render the CLI reference of the README: every command's ``--help``, 100 columns wide."""
    import os
    from unittest import mock

    parser = build_parser()
    sections = [("esms-analytics", parser)] + [
        (f"esms-analytics {name}", command) for name, command in parser.commands.items()
    ]
    parts = []
    with mock.patch.dict(os.environ, {"COLUMNS": "100"}):
        for title, command in sections:
            parts.append(f"#### `{title}`\n\n```text\n{command.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
