"""The wire format of ``GetSmsSentData_V2``: field names, CodeResults, the answer's envelope.

Both the HTTP client (which parses each answer) and the decoder (which types
its rows) import this module; it knows nothing of HTTP.

Protocol facts this module relies on (see ``README.md``, "Limits and assumptions"):

- Numbers may come as strings and strings as numbers (``"100"`` or ``100``).
- Errors come back as HTTP 200 with a ``CodeResult``: 100 success, 105 "no
  data" (an empty window), 101 bad credentials, 99 and 160 transient; any
  other code is a final failure with the server's ``ErrorMessage``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Final

import polars as pl

ENDPOINT: Final = "GetSmsSentData_V2"
MAX_PAGE_SIZE: Final = 500
CODE_SUCCESS: Final = "100"
CODE_NO_DATA: Final = "105"
CODE_AUTH_FAILED: Final = "101"

# Fields of a SentData row as the service names them. "RefercenceId" is the spelling
# of the documentation's table; "SentStatus" the boolean of older responses.
RAW_FIELDS: Final = (
    "SmsId",
    "ReferenceId",
    "RefercenceId",
    "Campaign",
    "Content",
    "Phone",
    "SellPrice",
    "SmsType",
    "SendStatus",
    "SendResult",
    "SentStatus",
    "SentTime",
)
#: A page's rows before typing: every field a string, whatever JSON type it came as.
RAW_SCHEMA: Final = pl.Schema({name: pl.String() for name in RAW_FIELDS})
ENVELOPE_SCHEMA: Final = pl.Schema(
    {
        "CodeResult": pl.String(),
        "CountTotal": pl.String(),
        "ErrorMessage": pl.String(),
        "SentData": pl.List(pl.Struct(dict(RAW_SCHEMA))),
    }
)


@dataclass(frozen=True)
class Envelope:
    """The fields of one answer; ``raw`` holds its rows as a frame of strings."""

    code: str
    count_total: str | None
    error_message: str
    raw: pl.DataFrame
    body: bytes


def parse_envelope(body: bytes) -> Envelope | str:
    """Parse an answer's fields, rows as a frame of strings; or why the body is unusable."""
    try:
        # Polars parses the page in one pass and turns every field into a string,
        # whether the service sent "5" or 5: the fast path for 500-row pages.
        frame = pl.read_json(io.BytesIO(body), schema=ENVELOPE_SCHEMA)
    except pl.exceptions.PolarsError:
        return _parse_envelope_slowly(body)
    if frame.height != 1 or frame["CodeResult"][0] is None:
        return "the body has no CodeResult"
    rows = frame["SentData"][0]
    raw = pl.DataFrame(schema=RAW_SCHEMA) if rows is None else rows.struct.unnest()
    return Envelope(
        normalise_code(frame["CodeResult"][0]),
        frame["CountTotal"][0],
        frame["ErrorMessage"][0] or "",
        raw,
        body,
    )


def _parse_envelope_slowly(body: bytes) -> Envelope | str:
    # Valid JSON of an unexpected shape (a field as an object, say) still decodes when the
    # rows are dicts; anything else is a broken body, worth another attempt.
    try:
        payload = json.loads(body)
    except ValueError:
        return f"the body is not valid JSON ({len(body)} bytes)"
    if not isinstance(payload, dict) or "CodeResult" not in payload:
        return "the body has no CodeResult"
    rows = payload.get("SentData") or []
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        return f"SentData is not a list of rows but {type(rows).__name__}"
    raw = (
        pl.DataFrame(
            [{name: _scalar(row.get(name)) for name in RAW_FIELDS} for row in rows],
            schema=RAW_SCHEMA,
            strict=False,
        )
        if rows
        else pl.DataFrame(schema=RAW_SCHEMA)
    )
    total = payload.get("CountTotal")
    return Envelope(
        normalise_code(payload["CodeResult"]),
        None if total is None else str(total),
        str(payload.get("ErrorMessage") or ""),
        raw,
        body,
    )


def _scalar(value: object) -> object:
    # An object or array where a value belongs stays visible, as its JSON text, so that
    # the decoder names it instead of the row vanishing.
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def normalise_code(value: object) -> str:
    """Normalise a CodeResult to a string: ``"100"``, ``100`` and ``100.0`` are the same code.

    >>> normalise_code(100.0), normalise_code(" 105 "), normalise_code("abc")
    ('100', '105', 'abc')
    """
    text = str(value).strip()
    try:
        return str(int(float(text)))
    except ValueError:
        return text
