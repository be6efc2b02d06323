"""The one registry of reports: each report declared once, for the CLI, the HTML bundle and plots.

A :class:`ReportSpec` says which function computes a report, the columns it
returns, its title and note, the options it accepts with their defaults (a
test holds them equal to the functions' signatures), how its rows are
ordered, which plot draws it and what the standard bundle asks of it.

The registry names the functions and schemas of :mod:`esms_analytics.reports`
and imports that module (and Polars) only when a report runs: the command
line builds its options and answers ``--help`` from here without loading it.

``esms-analytics report KIND`` builds its options from :data:`REPORTS`, the
bundle and the plots iterate over it; adding a report is one entry here.
Values are checked by the report functions themselves (through
:mod:`esms_analytics.arguments`), so the library and the CLI refuse the same
things with the same words.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from esms_analytics.errors import ConfigError


def _names(text: str) -> list[str]:
    """Split ``carrier,date`` (or one name) into names, as ``--by`` takes them."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a whole number") from None


@dataclass(frozen=True)
class Option:
    """One option of a report: the function's keyword and its command-line form.

    ``parse`` turns the command line's text into the value the function takes
    (None for a flag); the function checks the value.
    """

    name: str
    help: str
    parse: Callable[[str], Any] | None = None
    default: Any = None

    @property
    def flag(self) -> str:
        """Return the command-line spelling: ``min_messages`` is ``--min-messages``."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ReportSpec:
    """One report, declared once.

    Attributes
    ----------
    kind : str
        Its name on the command line and in the bundle (``report delivery``).
    function_name : str
        The report function in :mod:`esms_analytics.reports` (any engine in, the
        same kind of frame out); :attr:`function` imports it.
    title, note : str
        What the HTML page and the plots call it, and how to read it.
    measures_name : str
        The schema in :mod:`esms_analytics.reports` of the columns after its
        dimensions; :attr:`measures` imports it.
    options : tuple of Option
        The keywords it accepts besides the row filters.
    order : str
        How its rows are sorted, in words (for ``--help`` and the docs).
    plot : str
        The name of its function in :mod:`esms_analytics.plots`.
    bundle : mapping
        The options it gets in the standard bundle (``report html``, the demo).
    """

    kind: str
    function_name: str
    title: str
    note: str
    measures_name: str
    options: tuple[Option, ...]
    order: str
    plot: str
    bundle: Mapping[str, Any] = field(default_factory=dict)

    @property
    def function(self) -> Callable[..., Any]:
        """Return the report function (this imports the reports, and Polars)."""
        function: Callable[..., Any] = getattr(_reports(), self.function_name)
        return function

    @property
    def measures(self) -> dict[str, Any]:
        """Return the columns after the dimensions, with their Narwhals dtypes."""
        schema: dict[str, Any] = getattr(_reports(), self.measures_name)
        return schema

    @property
    def defaults(self) -> dict[str, Any]:
        """Return each option's default."""
        return {option.name: option.default for option in self.options}

    def dimensions(self, columns: list[str]) -> list[str]:
        """Return the columns of a result of this report that are dimensions, in order."""
        return [name for name in columns if name not in self.measures]

    def check(self, options: Mapping[str, Any]) -> None:
        """Raise a ConfigError for an option this report does not take, naming those it does."""
        accepted = {option.name for option in self.options} | FILTERS
        unknown = sorted(set(options) - accepted)
        if unknown:
            takes = ", ".join(option.flag for option in self.options) or "no options"
            raise ConfigError(
                f"{', '.join('--' + name.replace('_', '-') for name in unknown)} does not apply "
                f"to the {self.kind} report; it takes {takes}"
            )

    def parse(self, texts: Mapping[str, str | bool]) -> dict[str, Any]:
        """Turn command-line values (option name to text, True for a flag) into options."""
        self.check(texts)
        parsers = {option.name: option.parse for option in self.options}
        options: dict[str, Any] = {}
        for name, text in texts.items():
            parse = parsers[name]
            options[name] = parse(text) if parse is not None and isinstance(text, str) else text
        return options

    def compute(self, frame: Any, **options: Any) -> Any:
        """Run the report on ``frame``; an option it does not take is a ConfigError."""
        self.check(options)
        return self.function(frame, **options)


def _reports() -> Any:
    return importlib.import_module("esms_analytics.reports")


#: The row filters every report takes (``--from``, ``--to``, ``--sms-type``, ``--campaign``).
FILTERS: Final = frozenset({"start", "end", "sms_types", "campaigns"})
#: reports.DIMENSIONS, spelled out so that --help needs no import of the reports (a test
#: holds them equal).
DIMENSION_NAMES: Final = (
    "campaign",
    "template",
    "sms_type",
    "carrier",
    "date",
    "week",
    "month",
)
BY_DIMENSIONS_HELP: Final = f"{', '.join(DIMENSION_NAMES)}, or several, comma-separated"

REPORTS: Final[dict[str, ReportSpec]] = {
    spec.kind: spec
    for spec in (
        ReportSpec(
            kind="delivery",
            function_name="delivery",
            title="Delivery by campaign",
            note="delivery_rate = delivered / (delivered + failed); pending messages are left "
            "out. Provisional campaigns still have messages waiting for a carrier report (up "
            "to ~3 days), so their numbers can still move.",
            measures_name="DELIVERY_MEASURES",
            options=(Option("by", BY_DIMENSIONS_HELP, _names, "campaign"),),
            order="time dimensions first, chronologically; then the most messages",
            plot="plot_delivery_by_campaign",
        ),
        ReportSpec(
            kind="cost",
            function_name="cost_breakdown",
            title="Cost by campaign",
            note="Spend in VND as eSMS reports it (sell_price), split into delivered, failed "
            "and not-yet-final messages; cost per delivered message counts all spend.",
            measures_name="COST_MEASURES_NW",
            options=(
                Option("by", BY_DIMENSIONS_HELP, _names, "campaign"),
                Option("totals", "append a (total) row", default=False),
            ),
            order="time dimensions first, chronologically; then the largest cost; total last",
            plot="plot_cost_breakdown",
            bundle={"totals": True},
        ),
        ReportSpec(
            kind="trend",
            function_name="delivery_trend",
            title="Delivery trend",
            note="Volume and delivery rate per period of creation (Vietnam time).",
            measures_name="TREND_MEASURES_NW",
            options=(
                Option("every", "the period: 1d, 1w or 1mo", str, "1d"),
                Option("by", "one line per carrier, sms_type or campaign", str),
            ),
            order="period, chronologically; then the by dimension",
            plot="plot_delivery_trend",
        ),
        ReportSpec(
            kind="carriers",
            function_name="carrier_performance",
            title="Carrier performance",
            note="Carrier is estimated from the number's prefix: the carrier that first issued "
            "it (ported numbers count under their old carrier).",
            measures_name="CARRIER_MEASURES",
            options=(),
            order="message type; then the most messages",
            plot="plot_carrier_performance",
        ),
        ReportSpec(
            kind="hotspots",
            function_name="failure_hotspots",
            title="Failure hotspots",
            note="Campaign x carrier pairs with at least 100 messages and the worst delivery "
            "rates; the black mark is the campaign's rate over all carriers.",
            measures_name="HOTSPOT_MEASURES",
            options=(
                Option(
                    "by", "campaign or template: what is paired with the carrier", str, "campaign"
                ),
                Option(
                    "min_messages", "the smallest campaign x carrier volume", _whole_number, 100
                ),
                Option("top", "how many pairs to keep", _whole_number, 20),
            ),
            order="worst delivery rate first; then the most failed",
            plot="plot_failure_hotspots",
        ),
    )
}


def report_spec(kind: str) -> ReportSpec:
    """Return the report called ``kind``; a ConfigError listing the kinds otherwise."""
    if kind not in REPORTS:
        raise ConfigError(f"there is no {kind!r} report; use one of {', '.join(REPORTS)}")
    return REPORTS[kind]
