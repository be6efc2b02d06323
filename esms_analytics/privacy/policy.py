"""A lake's privacy policy: ``raw`` rows, or ``pseudonymised`` ones without phones or texts.

A lake's policy is chosen when it is created (``sync --privacy``) and recorded
in its manifest and in every data file's key-value metadata. A pseudonymised
lake holds no phone number and no message text as it was sent:

- ``phone`` and ``phone_e164`` are gone;
- ``phone_token`` is HMAC-SHA256(key, the E.164 form, or the raw value when
  the number is not Vietnamese), in hex: the same number gives the same token
  in every window and every sync under one key, so recipients still count;
- ``phone_masked`` keeps what names the carrier (``+84`` and the two digits
  after it) and the last three digits, with a fixed run of five stars between
  (``+8490*****484``), so the mask does not tell the length either;
- ``content`` is redacted (:func:`~esms_analytics.privacy.text.redact`) and a
  ``template`` column (:func:`~esms_analytics.privacy.text.template`) groups
  the messages of one template;
- ``carrier``, ``length``, ``segments`` and ``encoding`` were computed from the
  raw values by the decoder, before any of this.

The key comes from ``ESMS_PSEUDONYM_KEY``. It is never stored, logged or
printed: the lake records only its :attr:`PrivacyPolicy.fingerprint`, an HMAC
of a fixed text under the key, so a sync with another key is refused.

This module sits below the lake and the sync in the import graph: it knows
frames of :data:`~esms_analytics.decode.SCHEMA`, not where they are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Final, Literal

import polars as pl

from esms_analytics.decode import SCHEMA
from esms_analytics.errors import ConfigError
from esms_analytics.privacy.text import redact_expr, template_of_redacted

__all__ = [
    "KEY_VARIABLE",
    "MIN_KEY_LENGTH",
    "POLICIES",
    "PSEUDONYMISED",
    "PSEUDONYMISED_SCHEMA",
    "RAW",
    "PrivacyPolicy",
]

RAW: Final = "raw"
PSEUDONYMISED: Final = "pseudonymised"
POLICIES: Final = (RAW, PSEUDONYMISED)
PolicyName = Literal["raw", "pseudonymised"]
#: The environment variable holding the pseudonym key.
KEY_VARIABLE: Final = "ESMS_PSEUDONYM_KEY"
#: Shorter keys are refused: a short key can be found by trying keys against a token.
MIN_KEY_LENGTH: Final = 16
#: What the fingerprint is the HMAC of: fixed, so one key always has one fingerprint.
_FINGERPRINT_TEXT: Final = b"esms-analytics pseudonym key fingerprint v1"
#: Stars between the kept prefix and the last three digits, whatever was hidden.
_MASK: Final = "*****"


def _schema() -> pl.Schema:
    # SCHEMA's order, with the phones' place taken by their pseudonyms: the order is a
    # contract (README "Personal data"), like SCHEMA's.
    columns: dict[str, pl.DataType] = {}
    for name, dtype in SCHEMA.items():
        if name == "content":
            columns |= {"content": dtype, "template": pl.String()}
        elif name == "phone":
            columns |= {"phone_token": pl.String(), "phone_masked": pl.String()}
        elif name != "phone_e164":
            columns[name] = dtype
    return pl.Schema(columns)


#: The columns of a pseudonymised lake's rows, in order: :data:`~esms_analytics.decode.SCHEMA`
#: with ``template`` after ``content`` and ``phone_token``, ``phone_masked`` where the phones were.
PSEUDONYMISED_SCHEMA: Final = _schema()


class PrivacyPolicy:
    """What a lake keeps of personal data: ``raw`` or ``pseudonymised`` (with its key).

    The key is held privately: :func:`repr` and :class:`str` show the policy
    and the key's fingerprint, never the key.

    Parameters
    ----------
    name : ``raw`` or ``pseudonymised``
    key : str, optional
        The pseudonym key, required for ``pseudonymised`` (at least
        :data:`MIN_KEY_LENGTH` characters), refused for ``raw``.

    Examples
    --------
    >>> policy = PrivacyPolicy("pseudonymised", key="0123456789abcdef")
    >>> policy
    PrivacyPolicy('pseudonymised', fingerprint='...')
    >>> "0123456789abcdef" in repr(policy)
    False
    """

    __slots__ = ("__key", "name")

    def __init__(self, name: str, *, key: str | None = None):
        if name not in POLICIES:
            raise ConfigError(f"--privacy {name!r} is not a policy: give raw or pseudonymised")
        if name == RAW and key is not None:
            raise ConfigError("a raw lake takes no pseudonym key")
        if name == PSEUDONYMISED:
            _check_key(key)
        self.name: PolicyName = RAW if name == RAW else PSEUDONYMISED
        self.__key = None if key is None else key.encode("utf-8")

    @classmethod
    def from_environment(cls, name: str, environ: Mapping[str, str] | None = None) -> PrivacyPolicy:
        """Return the policy ``name``, its key from ``ESMS_PSEUDONYM_KEY`` when pseudonymised.

        Raises :class:`~esms_analytics.errors.ConfigError` naming the variable
        when it is missing or too short (its value is never shown).
        """
        if name != PSEUDONYMISED:
            return cls(name)
        key = (os.environ if environ is None else environ).get(KEY_VARIABLE)
        return cls(name, key=key)

    @property
    def pseudonymised(self) -> bool:
        """True for a pseudonymised policy."""
        return self.name == PSEUDONYMISED

    @property
    def fingerprint(self) -> str | None:
        """The key's fingerprint: 16 hex digits of HMAC-SHA256(key, a fixed text); None if raw."""
        if self.__key is None:
            return None
        return hmac.new(self.__key, _FINGERPRINT_TEXT, hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        if self.__key is None:
            return f"PrivacyPolicy({self.name!r})"
        return f"PrivacyPolicy({self.name!r}, fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivacyPolicy):
            return NotImplemented
        return self.name == other.name and self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash((self.name, self.fingerprint))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the key into wherever the pickle goes: refused.
        raise TypeError("a PrivacyPolicy is not pickled: it holds the pseudonym key")

    @property
    def schema(self) -> pl.Schema:
        """The columns of the lake's rows (before the partition ``date``)."""
        return PSEUDONYMISED_SCHEMA if self.pseudonymised else SCHEMA

    def facts(self) -> dict[str, str]:
        """Return what a lake records of its policy: ``privacy``, a key's fingerprint if any.

        The fingerprint is ``pseudonym_key_fingerprint``, never the key: enough to refuse a
        sync with another key.

        >>> PrivacyPolicy("raw").facts()
        {'privacy': 'raw'}
        """
        fingerprint = self.fingerprint
        return {"privacy": self.name} | (
            {"pseudonym_key_fingerprint": fingerprint} if fingerprint else {}
        )

    def tokens(self, values: pl.Series) -> pl.Series:
        """Return HMAC-SHA256(key, value) in hex for each of ``values`` (null stays null).

        Each distinct value is hashed once, then mapped back. The HMAC is RFC 2104's
        over ``hashlib.sha256``, its two padded key blocks hashed once and copied for
        each value: the same digest as ``hmac.new(key, value, "sha256")`` in less than
        half its time (a test checks both agree).
        """
        if self.__key is None:
            raise ConfigError("a raw policy makes no tokens")
        inner, outer = _padded_key_hashes(self.__key)
        distinct = values.drop_nulls().unique()
        hashed = []
        for value in distinct.to_list():
            message = inner.copy()
            message.update(value.encode("utf-8"))
            digest = outer.copy()
            digest.update(message.digest())
            hashed.append(digest.hexdigest())
        return values.replace_strict(
            distinct, pl.Series(hashed, dtype=pl.String()), default=None, return_dtype=pl.String()
        )

    def pseudonymise(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Turn a frame of :data:`~esms_analytics.decode.SCHEMA` into this policy's rows.

        A raw policy returns ``frame`` as it is. Row order is kept.

        Examples
        --------
        >>> from esms_analytics.decode import decode_rows
        >>> rows = [dict(SmsId=1, ReferenceId="r", Campaign="A", Phone="0901888484",
        ...              Content="Ma OTP 482913", SellPrice=800, SmsType=2, SendStatus=5,
        ...              SendResult=1, SentTime="/Date(1763600000000+0700)/")]
        >>> policy = PrivacyPolicy("pseudonymised", key="0123456789abcdef")
        >>> out = policy.pseudonymise(decode_rows(rows))
        >>> out.select("content", "template", "phone_masked", "carrier").row(0)
        ('Ma OTP {code}', 'Ma OTP {code}', '+8490*****484', 'mobifone')
        >>> out.schema == PSEUDONYMISED_SCHEMA
        True
        """
        if not self.pseudonymised:
            return frame
        identity = frame.select(pl.coalesce("phone_e164", "phone")).to_series()
        # The template from the redacted text: the redaction rules run once a row.
        return (
            frame.with_columns(
                phone_token=self.tokens(identity),
                phone_masked=masked_phone(pl.col("phone_e164"), pl.col("phone")),
                content=redact_expr(pl.col("content")),
            )
            .with_columns(template=template_of_redacted(pl.col("content")))
            .select(list(PSEUDONYMISED_SCHEMA))
        )


def masked_phone(e164: pl.Expr, raw: pl.Expr) -> pl.Expr:
    """Mask a phone: ``+84`` and the carrier's two digits, five stars, the last three digits.

    A number that is not Vietnamese (no E.164 form) keeps only its last three
    digits, and only when it has seven or more; a shorter one is all stars.
    """
    digits = raw.str.replace_all(r"\D", "")
    other = (
        pl.when(digits.str.len_chars() >= 7)
        .then(pl.lit(_MASK) + digits.str.slice(-3))
        .otherwise(pl.lit(_MASK))
    )
    vietnamese = e164.str.slice(0, 5) + pl.lit(_MASK) + e164.str.slice(-3)
    return pl.when(e164.is_not_null()).then(vietnamese).when(raw.is_not_null()).then(other)


def _padded_key_hashes(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    # RFC 2104: the key (hashed first when longer than a block) padded to SHA-256's
    # 64-byte block, XORed with 0x36 for the inner hash and 0x5c for the outer one.
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    return (
        hashlib.sha256(bytes(byte ^ 0x36 for byte in padded)),
        hashlib.sha256(bytes(byte ^ 0x5C for byte in padded)),
    )


def _check_key(key: str | None) -> None:
    if key is None or not key.strip():
        raise ConfigError(
            f"a pseudonymised lake needs its key: set {KEY_VARIABLE} (at least "
            f"{MIN_KEY_LENGTH} characters, kept secret and never stored in the lake)"
        )
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"{KEY_VARIABLE} is {len(key)} characters long; a pseudonym key needs at least "
            f"{MIN_KEY_LENGTH}: choose a longer one (e.g. `openssl rand -hex 32`)"
        )
