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
5     lake problem: not a directory, not writable, corrupt file, locked, or
      its object store refused (missing bucket, credentials, endpoint, down)
130   interrupted (Ctrl-C)
====  ==============================================================

``--debug`` shows the traceback behind an error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from esms_analytics import __version__
from esms_analytics.arguments import sms_type_list, to_date
from esms_analytics.client import ENV_API_KEY, ENV_BASE_URL, ENV_SECRET_KEY, EsmsClient
from esms_analytics.codes import SMS_TYPES
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

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_SERVICE = 4
EXIT_LAKE = 5
EXIT_INTERRUPTED = 130

REPORT_KINDS = ("delivery", "cost", "trend", "carriers", "hotspots", "html")
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
    try:
        code = int(text)
    except ValueError:
        code = -1
    if code not in SMS_TYPES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an eSMS SmsType; use one of {TYPES_HELP}"
        )
    return code


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
        required=default is None,
        default=default,
        help=f"{what}: a directory, or s3://, gs://, az://, abfs:// or file:// URL",
    )
    command.add_argument(
        "--storage-option",
        dest="storage_options",
        type=_parse_storage_option,
        action="append",
        metavar="KEY=VALUE",
        help="object-store option on top of the cloud's environment (aws_region, "
        "aws_endpoint_url, allow_http...), repeatable",
    )


def _storage_options(args: argparse.Namespace) -> dict[str, str] | None:
    return dict(args.storage_options) if args.storage_options else None


def build_parser() -> _Parser:
    """Build the argument parser of every command (the README's CLI reference is its --help)."""
    parser = _Parser(
        prog="esms-analytics",
        description="Fetch, store and report eSMS (esms.vn) message history. Credentials come "
        f"from {ENV_API_KEY} and {ENV_SECRET_KEY}; the service URL from --base-url or "
        f"{ENV_BASE_URL}.",
        epilog="Exit codes: 0 ok; 1 sync incomplete; 2 bad arguments or configuration; "
        "3 credentials refused; 4 service or network failure; 5 lake problem; 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="log everything, show tracebacks")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    # The order of the calls is the order of --help.
    sync, fetch = _add_sync_command(commands), _add_fetch_command(commands)
    lake, lake_info = _add_lake_commands(commands)
    parser.commands = {
        "sync": sync,
        "fetch": fetch,
        "lake": lake,
        "lake info": lake_info,
        "report": _add_report_command(commands),
        "simulate": _add_simulate_command(commands),
        "demo": _add_demo_command(commands),
    }
    return parser


def _add_range_options(command: argparse.ArgumentParser, *, required: bool) -> None:
    command.add_argument(
        "--from",
        dest="start",
        type=_parse_day,
        required=required,
        metavar="YYYY-MM-DD",
        help="first creation day (Vietnam time)",
    )
    command.add_argument(
        "--to",
        dest="end",
        type=_parse_day,
        required=required,
        metavar="YYYY-MM-DD",
        help="last creation day, inclusive",
    )
    command.add_argument(
        "--sms-type",
        dest="sms_types",
        type=_parse_sms_type,
        action="append",
        metavar="N",
        help=f"message type, repeatable; default every type ({TYPES_HELP})",
    )


def _add_service_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--base-url", metavar="URL", help=f"service URL (default ${ENV_BASE_URL} or eSMS)"
    )
    command.add_argument(
        "--max-attempts",
        metavar="N",
        type=_parse_positive,
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
        type=_parse_positive,
        default=4,
        help="windows in parallel (default 4)",
    )
    sync.add_argument(
        "--settle-days",
        metavar="DAYS",
        type=_parse_not_negative,
        default=3,
        help="days after a day ends before it counts as final (default 3)",
    )
    sync.add_argument(
        "--rate-limit",
        metavar="RPS",
        type=float,
        default=10.0,
        help="requests per second at most, 0 for no limit (default 10)",
    )
    sync.add_argument(
        "--refresh",
        action="store_true",
        help="fetch settled windows again (repairs a corrupt partition)",
    )
    sync.add_argument(
        "--allow-shrink",
        action="store_true",
        help="store a re-fetch holding under half the rows stored, or none (else the window "
        "fails and its partition is kept)",
    )
    sync.add_argument("--quiet", action="store_true", help="no progress bar (for cron)")
    return sync


def _add_fetch_command(commands: argparse._SubParsersAction[_Parser]) -> argparse.ArgumentParser:
    fetch = commands.add_parser(
        "fetch",
        help="fetch a range into one file, no lake",
        description="Fetch every message of the days into one .parquet, .csv or .json file.",
    )
    _add_range_options(fetch, required=True)
    fetch.add_argument(
        "--output", type=Path, required=True, help="FILE.parquet|.csv|.json to write"
    )
    _add_service_options(fetch)
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    return fetch


def _add_lake_commands(
    commands: argparse._SubParsersAction[_Parser],
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    lake = commands.add_parser("lake", help="inspect a lake")
    actions = lake.add_subparsers(
        dest="lake_command", required=True, metavar="ACTION", parser_class=_Parser
    )
    info = actions.add_parser("info", help="days, rows, freshness, unsettled and missing days")
    _add_lake_options(info, what="the lake")
    return lake, info


def _add_report_command(commands: argparse._SubParsersAction[_Parser]) -> argparse.ArgumentParser:
    report = commands.add_parser(
        "report",
        help="delivery, cost, trend, carrier and hotspot reports",
        description="Compute a report over the lake. csv and json carry exactly the report's "
        "columns; table is for people. 'html' writes every report with plots to --output.",
    )
    report.add_argument("kind", choices=REPORT_KINDS)
    _add_lake_options(report, what="the lake")
    _add_range_options(report, required=False)
    report.add_argument(
        "--campaign",
        dest="campaigns",
        action="append",
        metavar="NAME",
        help="only this campaign, repeatable",
    )
    report.add_argument(
        "--by",
        action="append",
        metavar="DIM",
        help="cost: campaign, sms_type, carrier, date or month (repeatable or "
        "comma-separated); trend: carrier, sms_type or campaign",
    )
    report.add_argument(
        "--every", choices=("1d", "1w", "1mo"), default="1d", help="trend period (default 1d)"
    )
    report.add_argument(
        "--min-messages",
        metavar="N",
        type=_parse_positive,
        default=100,
        help="hotspots: smallest campaign x carrier volume (default 100)",
    )
    report.add_argument("--totals", action="store_true", help="cost: append a total row")
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
        help="also save the plot: .png, .svg or .pdf, by the name's extension",
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


def _add_simulate_command(commands: argparse._SubParsersAction[_Parser]) -> argparse.ArgumentParser:
    simulate = commands.add_parser(
        "simulate",
        help="run the eSMS simulator on loopback",
        description="Serve GetSmsSentData_V2 from a seeded history until Ctrl-C.",
    )
    simulate.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    simulate.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    simulate.add_argument(
        "--seed", type=int, default=7, help="seed of the generated history (default 7)"
    )
    simulate.add_argument(
        "--days", type=_parse_not_negative, default=90, help="days of history (default 90)"
    )
    simulate.add_argument(
        "--daily-volume",
        type=_parse_not_negative,
        default=300,
        help="average rows a day over all types (default 300)",
    )
    simulate.add_argument(
        "--latency", type=float, default=0.0, help="seconds added per request (default 0)"
    )
    simulate.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=P",
        help="fail requests with probability P; KIND is one of http500, "
        "http503, http429, slow, drop, truncate, malformed, code99, code160 "
        "or code:NNN (repeatable)",
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
    _add_lake_options(demo, what="the lake (default data/lake)", default="data/lake")
    demo.add_argument(
        "--reports",
        type=Path,
        metavar="DIR",
        default=Path("data/reports"),
        help="where the plots and the HTML page go (default data/reports)",
    )
    demo.add_argument(
        "--days", type=_parse_positive, default=90, help="days of history (default 90)"
    )
    demo.add_argument(
        "--daily-volume",
        type=_parse_positive,
        default=2500,
        help="average rows a day over all types (default 2500)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    return demo


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = {
        "sync": _sync,
        "fetch": _fetch,
        "lake": _lake_info,
        "report": _report,
        "simulate": _simulate,
        "demo": _demo,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EsmsError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return _exit_code(exc)


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
    from esms_analytics.client import RetryPolicy

    return EsmsClient(
        base_url=args.base_url, retry=RetryPolicy(max_attempts=args.max_attempts), **options
    )


def _sync(args: argparse.Namespace) -> int:
    from esms_analytics.sync import sync

    with _client(args, rate_limit=args.rate_limit or None) as client:
        report = sync(
            args.lake,
            args.start,
            args.end,
            sms_types=args.sms_types,
            client=client,
            settle_days=args.settle_days,
            workers=args.workers,
            refresh=args.refresh,
            progress=not args.quiet,
            storage_options=_storage_options(args),
            allow_shrink=args.allow_shrink,
        )
    print(report.summary())
    return EXIT_OK if report.complete else EXIT_INCOMPLETE


def _fetch(args: argparse.Namespace) -> int:
    from esms_analytics.windows import fetch_days

    suffix = args.output.suffix.lower()
    if suffix not in (".parquet", ".csv", ".json"):
        raise ConfigError(f"--output {args.output} must end in .parquet, .csv or .json")
    with _client(args) as client:
        frame = fetch_days(
            client,
            args.start,
            args.end,
            sms_types=sms_type_list(args.sms_types),
            progress=not args.quiet,
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.write_parquet(args.output)
    elif suffix == ".csv":
        frame.write_csv(args.output)
    else:
        frame.write_json(args.output)
    print(f"{frame.height:,} rows written to {args.output}")
    return EXIT_OK


def _lake_info(args: argparse.Namespace) -> int:
    from esms_analytics.lake import lake_info

    print(lake_info(args.lake, storage_options=_storage_options(args)).summary())
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from esms_analytics import render
    from esms_analytics.bundle import KINDS, Selection
    from esms_analytics.lake import read_lake
    from esms_analytics.render import write_table

    selection = Selection(
        args.start,
        args.end,
        None if args.sms_types is None else tuple(args.sms_types),
        None if args.campaigns is None else tuple(args.campaigns),
    )
    if args.kind == "html":
        return _report_html(args, selection)
    workbook = _checked_outputs(args)
    frame = read_lake(
        args.lake,
        start=args.start,
        end=args.end,
        sms_types=args.sms_types,
        storage_options=_storage_options(args),
    )
    kind = KINDS[args.kind]
    filters = {"campaigns": args.campaigns}
    by = [part for value in (args.by or []) for part in value.split(",") if part]
    if args.kind == "cost":
        table = kind.compute(frame, by=by or "campaign", totals=args.totals, **filters)
    elif args.kind == "trend":
        if len(by) > 1:
            raise ConfigError("trend takes one --by dimension: carrier, sms_type or campaign")
        table = kind.compute(frame, every=args.every, by=by[0] if by else None, **filters)
    elif args.kind == "hotspots":
        table = kind.compute(frame, min_messages=args.min_messages, **filters)
    else:
        if by:
            raise ConfigError(f"--by does not apply to the {args.kind} report")
        table = kind.compute(frame, **filters)
    if workbook is not None:
        render.write_workbook({args.kind: table}, workbook)
        print(f"{table.height:,} rows written to {workbook}")
    else:
        write_table(table, args.format, sys.stdout)
    if table.height == 0:
        print(
            "no rows match this selection (is the lake empty, or the filter too narrow?)",
            file=sys.stderr,
        )
    if args.plot is not None:
        from esms_analytics.bundle import plot_report
        from esms_analytics.plots import save_figure

        covered = selection.resolved(frame) or selection
        save_figure(plot_report(args.kind, table, covered), args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
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
        render.check_output(args.plot, (args.plot.suffix.lower(),))
    if args.format != "xlsx":
        if args.output is not None:
            raise ConfigError(
                f"--output applies to html and xlsx; {args.format} goes to stdout (use > FILE)"
            )
        return None
    if args.output is None:
        raise ConfigError("--format xlsx writes a file: give --output FILE.xlsx")
    workbook: Path = args.output
    render.check_output(workbook, (".xlsx",))
    return workbook


def _report_html(args: argparse.Namespace, selection: Any) -> int:
    """Write the page (or, with --format xlsx, the workbook) at exactly --output.

    Every filter applies; an empty selection is an error, not an empty page.
    """
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
        raise ConfigError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror}; choose another --port"
        ) from None
    print(
        f"eSMS simulator serving {simulator.base_url}\n"
        f"  export {ENV_BASE_URL}={simulator.base_url}\n"
        f"  export {ENV_API_KEY}={simulator.api_key} {ENV_SECRET_KEY}={simulator.secret_key}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    simulator.serve_forever()
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from esms_analytics.demo import run_demo

    result = run_demo(
        lake=args.lake,
        storage_options=_storage_options(args),
        reports_dir=args.reports,
        days=args.days,
        daily_volume=args.daily_volume,
        progress=not args.quiet,
    )
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
