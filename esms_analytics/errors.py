"""The exceptions esms-analytics raises, one tree under :class:`EsmsError`.

::

    EsmsError
    ├── ConfigError (ValueError)     bad arguments, missing credentials, unsafe base URL
    ├── ApiError                     eSMS answered with a CodeResult that is not a success
    │   └── AuthError                CodeResult 101: wrong ApiKey or SecretKey (never retried)
    ├── TransportError               the network, HTTP status or body failed on every attempt
    ├── IncompleteWindowError        a window kept changing while it was paged
    ├── DecodeError (ValueError)     a row holds a value that cannot be decoded
    └── LakeError                    the Parquet lake cannot be used as asked
        ├── LakeLockedError          another sync holds the lake's lock
        └── CorruptPartitionError    a partition file cannot be read

Every message says what was asked, what came back and what to do. None of them
ever contains the ApiKey or the SecretKey: the client redacts them before an
error is built, and a test asserts it.
"""

from __future__ import annotations


class EsmsError(Exception):
    """Root of every error raised by esms-analytics."""


class ConfigError(EsmsError, ValueError):
    """The caller asked for something that cannot work (arguments, credentials, URL)."""


class ApiError(EsmsError):
    """eSMS answered the request with a ``CodeResult`` other than success.

    Attributes
    ----------
    code : str
        The ``CodeResult`` as eSMS sent it, normalised to a string (``"101"``).
    server_message : str
        The server's ``ErrorMessage``, empty when it sent none.
    attempts : int
        How many requests were made before giving up.
    """

    def __init__(self, message: str, *, code: str, server_message: str = "", attempts: int = 1):
        super().__init__(message)
        self.code = code
        self.server_message = server_message
        self.attempts = attempts


class AuthError(ApiError):
    """CodeResult 101: eSMS refused the ApiKey / SecretKey pair."""


class TransportError(EsmsError):
    """The request failed on every attempt: connection, timeout, HTTP status or body.

    Attributes
    ----------
    attempts : int
        How many requests were made.
    """

    def __init__(self, message: str, *, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class IncompleteWindowError(EsmsError):
    """A window kept changing on every walk of its pages; fetch it again later."""


class DecodeError(EsmsError, ValueError):
    """A value in a row cannot be decoded; names the field, the value and the row."""


class LakeError(EsmsError):
    """The lake directory cannot be used as asked."""


class LakeLockedError(LakeError):
    """Another sync is writing to the same lake."""


class CorruptPartitionError(LakeError):
    """A partition file is unreadable; ``sync --refresh`` of its day repairs it."""
