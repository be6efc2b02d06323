"""The exceptions esms-analytics raises, one tree under :class:`EsmsError`.

::

    EsmsError
    ├── ConfigError (ValueError)     bad arguments, missing credentials, unsafe base URL
    ├── ApiError                     eSMS answered with a CodeResult that is not a success
    │   └── AuthError                CodeResult 101: wrong ApiKey or SecretKey (never retried)
    ├── TransportError               the network, HTTP status or body failed on every attempt
    │   └── ServiceUnreachableError  nothing answers at the URL: refused, DNS or TLS failure
    ├── StoppedError                 the caller asked to stop (Ctrl-C, SIGTERM, client.stop)
    ├── AnswerError                  eSMS answered, but not what was asked (a lying count,
    │                                rows of another day or type)
    ├── IncompleteWindowError        a window kept changing while it was paged
    ├── DecodeError (ValueError)     a row holds a value that cannot be decoded
    └── LakeError                    the Parquet lake cannot be used as asked
        ├── LakeLockedError          another sync holds the lake's lock
        └── CorruptPartitionError    a partition file cannot be read

Every error carries its facts as attributes (the request, the field and value,
the lake and partition) and its message says what was asked, what came back
and what to do. None of them ever contains the ApiKey or the SecretKey: the
client redacts them before an error is built, and a test asserts it.
"""

from __future__ import annotations


class EsmsError(Exception):
    """Root of every error raised by esms-analytics."""


class ConfigError(EsmsError, ValueError):
    """The caller asked for something that cannot work (arguments, credentials, URL)."""


class _RequestError(EsmsError):
    """An error about one request of one window: the facts every such error carries."""

    def __init__(
        self,
        message: str,
        *,
        attempts: int = 1,
        sms_type: int | None = None,
        window: str | None = None,
        page: int | None = None,
    ):
        super().__init__(message)
        self.attempts = attempts
        self.sms_type = sms_type
        self.window = window
        self.page = page


class ApiError(_RequestError):
    """eSMS answered the request with a ``CodeResult`` other than success.

    Attributes
    ----------
    code : str
        The ``CodeResult`` as eSMS sent it, normalised to a string (``"101"``).
    server_message : str
        The server's ``ErrorMessage`` (redacted), empty when it sent none.
    attempts : int
        How many requests were made before giving up.
    sms_type, window, page : int, str, int or None
        The request that failed, when the error is about one.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        server_message: str = "",
        attempts: int = 1,
        sms_type: int | None = None,
        window: str | None = None,
        page: int | None = None,
    ):
        super().__init__(message, attempts=attempts, sms_type=sms_type, window=window, page=page)
        self.code = code
        self.server_message = server_message


class AuthError(ApiError):
    """CodeResult 101: eSMS refused the ApiKey / SecretKey pair."""


class TransportError(_RequestError):
    """The request failed on every attempt: connection, timeout, HTTP status or body.

    Attributes
    ----------
    attempts : int
        How many requests were made.
    sms_type, window, page : int, str, int or None
        The request that failed, when the error is about one.
    """


class AnswerError(_RequestError):
    """eSMS answered, but the answer cannot be what was asked; nothing of it is stored.

    A ``CountTotal`` implying more pages than a window can have, rows created
    outside the window asked for, or rows of another SmsType. Not retried: the
    same question would get the same answer.

    Attributes
    ----------
    sms_type, window, page : int, str, int or None
        The request or window concerned.
    """


class ServiceUnreachableError(TransportError):
    """Nothing usable answers at the service URL: retrying the next window would not help.

    Raised for a refused connection, a host name that does not resolve and a TLS
    handshake that fails; not for an HTTP error status or a timeout, which a
    live but busy service also produces.

    Attributes
    ----------
    url : str
        The URL that was asked.
    cause : str
        What went wrong, in words (``"nothing listens on 127.0.0.1:8765"``).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        cause: str,
        attempts: int = 1,
        sms_type: int | None = None,
        window: str | None = None,
        page: int | None = None,
    ):
        super().__init__(message, attempts=attempts, sms_type=sms_type, window=window, page=page)
        self.url = url
        self.cause = cause


class StoppedError(EsmsError):
    """The caller asked the client to stop (``client.stop`` was set): no request was sent."""


class IncompleteWindowError(EsmsError):
    """A window kept changing on every walk of its pages; fetch it again later.

    Attributes
    ----------
    sms_type : int
    window : str
        The window, as ``YYYY-MM-DD`` for a whole day.
    passes : int
        Walks of the window made.
    count_total : int
        The service's last ``CountTotal``.
    unique_rows : int
        Distinct rows the last walk saw.
    """

    def __init__(
        self, *, sms_type: int, window: str, passes: int, count_total: int, unique_rows: int
    ):
        super().__init__(
            f"SmsType={sms_type} window {window} changed on each of {passes} passes "
            f"(CountTotal now {count_total}, {unique_rows} unique rows): messages are still "
            "arriving; fetch it again in a moment"
        )
        self.sms_type = sms_type
        self.window = window
        self.passes = passes
        self.count_total = count_total
        self.unique_rows = unique_rows


class DecodeError(EsmsError, ValueError):
    """A value in a row cannot be decoded; names the field, the value and the row.

    Attributes
    ----------
    field : str
        The wire field (``"SentTime"``).
    value : object
        The raw value that failed (None for a missing field).
    reference_id : str
        The row's ``ReferenceId`` (empty when it has none).
    rows : int
        How many rows of the batch fail the same way.
    expected : str
        What the field should hold.
    """

    def __init__(self, *, field: str, value: object, reference_id: str, rows: int, expected: str):
        super().__init__(
            f"cannot decode {field}={value!r} in the row with ReferenceId "
            f"{reference_id or '(no ReferenceId)'!r} ({rows} row(s) affected): {expected}; "
            "report the raw row to eSMS or fix the input before decoding"
        )
        self.field = field
        self.value = value
        self.reference_id = reference_id
        self.rows = rows
        self.expected = expected


class LakeError(EsmsError):
    """The lake cannot be used as asked.

    Attributes
    ----------
    lake : str
        The lake's location as given (a path or URL).
    partition : str or None
        The partition or file concerned, when there is one.
    """

    def __init__(self, message: str, *, lake: str, partition: str | None = None):
        super().__init__(message)
        self.lake = lake
        self.partition = partition


class LakeLockedError(LakeError):
    """Another sync is writing to the same lake.

    Attributes
    ----------
    holder : str
        What the lock says of its holder (``pid 123 since ...``), or empty.
    """

    def __init__(self, *, lake: str, holder: str):
        super().__init__(
            f"another sync is writing to the lake {lake} ({holder or 'holder unknown'}); "
            "wait for it to finish, or stop it, then run again",
            lake=lake,
        )
        self.holder = holder


class NewerLakeError(LakeError):
    """The lake was written by a newer esms-analytics, with a schema this one does not know.

    Reading still works (with a warning); writing (``sync``, ``sync --refresh``,
    ``demo``) is refused before anything is written: upgrade esms-analytics.

    Attributes
    ----------
    found : str
        The lake's ``schema_version``.
    known : str
        The newest ``schema_version`` this release writes.
    """

    def __init__(self, *, lake: str, found: str, known: str, version: str):
        super().__init__(
            f"the lake {lake} has schema_version {found}, newer than esms-analytics {version} "
            f"knows ({known}): nothing was written; upgrade (pip install -U esms-analytics) "
            "to write to it",
            lake=lake,
        )
        self.found = found
        self.known = known


class CorruptPartitionError(LakeError):
    """A partition file is unreadable; ``sync --refresh`` of its day repairs it.

    Attributes
    ----------
    sms_type : int
    day : str
        The partition's day, ``YYYY-MM-DD``.
    problem : str
        What the reader said.
    """

    def __init__(self, *, lake: str, partition: str, sms_type: int, day: str, problem: str):
        super().__init__(
            f"the partition file {partition} is unreadable ({problem}); repair it with "
            f"`esms-analytics sync --lake {lake} --from {day} --to {day} "
            f"--sms-type {sms_type} --refresh`",
            lake=lake,
            partition=partition,
        )
        self.sms_type = sms_type
        self.day = day
        self.problem = problem
