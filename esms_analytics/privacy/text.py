r"""Message texts without their personal parts: redaction and templates.

``redact`` replaces what identifies a person or opens an account with a
placeholder: codes (runs of four or more digits, OTP-like tokens mixing
letters and digits, digits in groups such as ``553 210`` or one by one),
phone numbers (``0901888484``, ``84901888484``, ``+84 90 188 8484``,
``(028) 3829 1234``, 1800/1900 hotlines), e-mail addresses, amounts
(``1.500.000đ``, ``150,000 VND``, ``50k``), full dates (a birthday is
personal) and the name after a greeting (``Chào anh {name},``).
``template`` goes further: it also replaces the parts that change from one
message of a template to the next (short dates, times, order ids, URLs,
other numbers) so that the messages of one template group together.

Each rule is a regular expression applied with Polars' ``str.replace_all``:
``redact_expr`` and ``template_expr`` are vectorised expressions for frames
and lazy frames (a sync page of 500 rows costs a few dozen regex passes, no
Python per row); ``redact`` and ``template`` run the same expressions on one
string, so the scalar and the frame forms can never disagree. Texts are put
in Unicode NFC first, and a template is derived from the redacted text
(:func:`template_of_redacted`), so a pseudonymised sync runs the redaction
rules once a row. The regexes are Rust's (the ``regex`` crate Polars uses):
no look-around, ``\p{Lu}`` is an upper-case letter in any script; word
boundaries are ASCII (``(?-u:\b)``), several times faster than Unicode ones,
and a Vietnamese letter then counts as a boundary, which only widens what is
redacted. ``\d`` is Unicode-aware, but a text of Latin, Vietnamese,
punctuation and emoji characters only (nearly every SMS) has no digit but
0-9 and is already in NFC: it skips the normalisation and runs the rules
with ``[0-9]``, three times faster; any other text takes the Unicode rules.

Examples
--------
>>> redact("Ma OTP cua ban la 482913. Goi 0901 888 484 neu can.")
'Ma OTP cua ban la {code}. Goi {phone} neu can.'
>>> redact("Hoa don 1.500.000đ, lien he an.nguyen@example.vn")
'Hoa don {amount}, lien he {email}'
>>> template("Chào Nguyễn Văn An, mã OTP của bạn là 482913, hiệu lực 5 phút.")
'Chào {name}, mã OTP của bạn là {code}, hiệu lực {n} phút.'
>>> template("Kinh gui Quy khach Tran Thi B: lich hen luc 14:00 ngay 25/11.")
'Kinh gui Quy khach {name}: lich hen luc {time} ngay {date}.'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import polars as pl

__all__ = [
    "PLACEHOLDERS",
    "redact",
    "redact_expr",
    "template",
    "template_expr",
    "template_of_redacted",
]

#: Every placeholder the two functions write; nothing else in their output is invented.
PLACEHOLDERS: Final = (
    "{amount}",
    "{code}",
    "{date}",
    "{email}",
    "{n}",
    "{name}",
    "{phone}",
    "{time}",
    "{url}",
)

# Letter-digit or digit-letter: the step every OTP-like token contains somewhere.
_MIXED = r"(?:[A-Za-z][0-9]|[0-9][A-Za-z])"
_ALNUM = r"[A-Za-z0-9]"
# Five or more letters and digits with both kinds: the step at any position, the
# rest around it (the regex crate has no look-ahead to say "length >= 5" otherwise).
# Four-character mixes ("9x99", "12h", "A1B2") stay: too many are ordinary words.
_TOKEN = (
    rf"(?-u:\b)(?:{_ALNUM}{{3,}}{_MIXED}{_ALNUM}*|{_ALNUM}{{2}}{_MIXED}{_ALNUM}+"
    rf"|{_ALNUM}{_MIXED}{_ALNUM}{{2,}}|{_MIXED}{_ALNUM}{{3,}})(?-u:\b)"
)
_CURRENCY = r"(?:vnđ|vnd|đồng|dong|đ|d|usd)"
_THOUSANDS = r"(?:nghìn|nghin|ngàn|ngan|triệu|trieu|tỷ|ty|tr|k)"

_GREETING = (
    r"(?i:xin chào|xin chao|chào mừng|chao mung|chào|chao|kính gửi|kinh gui|thân gửi|than gui"
    r"|gửi|gui|dear|hello|hi)"
)
_TITLE = (
    r"(?i:quý khách hàng|quy khach hang|quý khách|quy khach|khách hàng|khach hang|kh|anh|chị|chi"
    r"|em|bạn|ban|ông|ong|bà|ba|cô|co|mr\.?|mrs\.?|ms\.?)"
)
_WORD = r"\p{Lu}[\p{L}\p{M}]*"

#: (pattern, replacement) in the order they run; each sees the previous one's output.
_REDACT_RULES: Final[tuple[tuple[str, str], ...]] = (
    (r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", "{email}"),
    # Dates with a year (a birthday is personal data); day/month alone is left to template.
    (
        r"(?-u:\b)\d{1,2}[/.\-]\d{1,2}[/.\-]\d{4}(?-u:\b)|(?-u:\b)\d{4}-\d{1,2}-\d{1,2}(?-u:\b)",
        "{date}",
    ),
    # Vietnamese numbers: 0 or 84 or +84, then 8-10 digits, single spaces, dots or dashes
    # between groups; service hotlines 1800/1900 as well.
    (r"(?:\(?\+84\)?|(?-u:\b)84|(?-u:\b)0)(?:[ .\-]?\d){8,10}(?-u:\b)", "{phone}"),
    # ... and a landline with its area code in brackets, (028) 3829 1234 (one pass for both).
    (
        r"(?-u:\b)1[89]00[ .\-]?\d{4}(?:\d{2})?(?-u:\b)|(?-u:\b)1[89]00[ .\-]\d{2,3}[ .\-]\d{2,3}(?-u:\b)"
        r"|\(0\d{2,3}\)[ .\-]?\d{3,4}[ .\-]?\d{3,4}(?-u:\b)",
        "{phone}",
    ),
    # Amounts: grouped thousands with or without a unit, plain numbers with a unit,
    # 50k / 1,5 triệu, and a currency written first.
    (rf"(?i)\d{{1,3}}(?:[.,]\d{{3}})+(?:\s?{_CURRENCY}\b)?", "{amount}"),
    (rf"(?i)(?-u:\b)\d+(?:[.,]\d+)?\s?(?:{_CURRENCY}|{_THOUSANDS})\b", "{amount}"),
    (r"(?i)(?:(?-u:\b)(?:vnđ|vnd|usd)|\$)\s?\d+(?:[.,]\d+)*", "{amount}"),
    # OTP-like tokens, and codes written in groups (553 210, 553-210, 55 32 10) or digit by
    # digit (4 8 2 9 1 3): one pass.
    (
        _TOKEN + r"|(?-u:\b)(?:\d{3,4}[ \-]\d{2,4}|\d{2}[ \-]\d{3,4}|\d{2}[ \-]\d{2}[ \-]\d{2}"
        r"|(?:\d[ \-]){3,7}\d)(?-u:\b)",
        "{code}",
    ),
    # Whatever digits are left in runs of four or more, even glued to a word ("mã123456").
    (r"\d{4,}", "{code}"),
    # A capitalised name after a greeting and titles, up to punctuation or the end:
    # "Chào Nguyễn Văn An," "Kinh gui Quy khach Tran Thi B:". A title alone stays.
    (
        rf"(?P<greet>(?-u:\b){_GREETING})(?P<title>(?:\s+{_TITLE})*)\s+{_WORD}(?:\s+{_WORD}){{0,5}}"
        r"(?P<end>\s*(?:[,!.:;]|$))",
        "${greet}${title} {name}${end}",
    ),
)


#: Template rules that run first on the redacted text: URLs and order ids.
_TEMPLATE_BEFORE: Final[tuple[tuple[str, str], ...]] = (
    (r"(?i)(?:https?://|www\.)[^\s]*[^\s.,;:!?)\]]", "{url}"),
    # An order id, whole even where redaction already put a placeholder in it (#A-{code}).
    (r"#(?:[A-Za-z0-9]|\{[a-z]+\})(?:[A-Za-z0-9_\-]|\{[a-z]+\})*", "#{code}"),
)
#: Then what changes from one message of a template to the next: dates, times, numbers.
_TEMPLATE_AFTER: Final[tuple[tuple[str, str], ...]] = (
    (r"(?-u:\b)\d{1,2}/\d{1,2}(?:/\d{2})?(?-u:\b)", "{date}"),
    (r"(?i)(?-u:\b)(?P<day>ngày|ngay)\s+\d{1,2}(?-u:\b)", "${day} {date}"),
    (r"(?i)(?-u:\b)\d{1,2}(?::\d{2}(?::\d{2})?|h\d{2}|h|g\d{2}|g)(?-u:\b)", "{time}"),
    (r"(?-u:\b)\d+(?:[.,]\d+)?(?-u:\b)", "{n}"),
    # Every run of white space becomes one space: a lone space already is one, and leaving
    # it alone makes this pass several times cheaper than ``\s+`` (most texts have no other).
    (r"\s{2,}|[^\S ]", " "),
)

#: Texts made only of these characters are already in NFC, whatever their order, and their
#: only decimal digits are 0-9: none of them is changed by NFC, is a combining mark,
#: composes with the character before it, or is a digit of another script (a test checks
#: each against ``unicodedata``). Latin with Vietnamese precomposed letters, punctuation,
#: currency signs, arrows, symbols and emoji; a text with any other character (a
#: combining accent, an Arabic-Indic digit) is normalised and takes the Unicode rules.
_NFC_INERT_RANGES: Final = (
    (0x0000, 0x02FF),
    (0x1E00, 0x1EFF),
    (0x2010, 0x205E),
    (0x20A0, 0x20C0),
    (0x2190, 0x2328),
    (0x232B, 0x23FF),
    (0x2500, 0x27BF),
    (0x1F300, 0x1FAFF),
)
_NFC_INERT: Final = (
    "^[" + "".join(rf"\x{{{low:X}}}-\x{{{high:X}}}" for low, high in _NFC_INERT_RANGES) + "]*$"
)


def _ascii_digits(rules: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    # The same rules with ``[0-9]`` for ``\d``: the regex crate runs a small class several
    # times faster than the Unicode one (hundreds of digits in other scripts).
    return tuple((pattern.replace(r"\d", "[0-9]"), replacement) for pattern, replacement in rules)


_REDACT_ASCII: Final = _ascii_digits(_REDACT_RULES)
_TEMPLATE_AFTER_ASCII: Final = _ascii_digits(_TEMPLATE_AFTER)


def _apply(expr: pl.Expr, rules: tuple[tuple[str, str], ...]) -> pl.Expr:
    for pattern, replacement in rules:
        expr = expr.str.replace_all(pattern, replacement)
    return expr


def _apply_by_text(
    expr: pl.Expr,
    ascii: tuple[tuple[str, str], ...],
    unicode: tuple[tuple[str, str], ...],
    *,
    normalise: bool,
) -> pl.Expr:
    # A text of _NFC_INERT characters (nearly every SMS) is in NFC and has no digit but
    # 0-9: the ASCII-digit rules. Any other text is put in NFC (when ``normalise``) and
    # takes the Unicode-digit rules, so a phone in other digits is redacted too; over the
    # column of nulls the other texts leave, those passes cost next to nothing.
    others: pl.Expr = pl.when(expr.str.contains(_NFC_INERT).not_()).then(expr)
    if normalise:
        others = others.str.normalize("NFC")
    return pl.coalesce(_apply(others, unicode), _apply(expr, ascii))


def redact_expr(expr: pl.Expr) -> pl.Expr:
    """Replace codes, phones, e-mails, amounts, full dates and greeted names in ``expr``'s texts.

    A name is the capitalised words after a greeting and its titles ("Chào anh
    Nguyễn Văn An," becomes "Chào anh {name},").

    The text is put in Unicode NFC first. Nulls stay null. Vectorised: one
    ``str.replace_all`` per rule.

    Examples
    --------
    >>> frame = pl.DataFrame({"content": ["Mã xác thực của bạn là 123456.", None]})
    >>> frame.select(redact_expr(pl.col("content")))["content"].to_list()
    ['Mã xác thực của bạn là {code}.', None]
    """
    return _apply_by_text(expr, _REDACT_ASCII, _REDACT_RULES, normalise=True)


def template_expr(expr: pl.Expr) -> pl.Expr:
    """Turn each text of ``expr`` into its template: redacted, every variable part replaced.

    Names after greetings become ``{name}``, URLs ``{url}``, order ids ``#{code}``,
    day/month dates ``{date}``, times ``{time}``, other numbers ``{n}``; runs of white
    space become one space and the ends are trimmed; the text is put in Unicode NFC
    first. Nulls stay null.

    Examples
    --------
    >>> frame = pl.DataFrame({"content": ["Don hang #58213 da giao", "Don hang #7 da giao"]})
    >>> frame.select(template_expr(pl.col("content")))["content"].unique().to_list()
    ['Don hang #{code} da giao']
    """
    # NFC first (in redact_expr): a text typed in decomposed Unicode is the same template
    # as its composed twin.
    return template_of_redacted(redact_expr(expr))


def template_of_redacted(expr: pl.Expr) -> pl.Expr:
    """Return the template of texts that :func:`redact_expr` has already redacted.

    ``template_of_redacted(redact_expr(e))`` is ``template_expr(e)``: a
    pseudonymised sync redacts each text once and derives its template from the
    redacted text, so the redaction rules run once a row, not twice. The template
    rules see placeholders where codes, phones and amounts were; a URL or an order id
    holding one is still a URL or an order id.

    Examples
    --------
    >>> frame = pl.DataFrame({"content": ["Chào An, xem https://x.vn/p/58213 nhé"]})
    >>> redacted = frame.select(redact_expr(pl.col("content")))
    >>> redacted.select(template_of_redacted(pl.col("content"))).item()
    'Chào {name}, xem {url} nhé'
    """
    named = _apply(expr, _TEMPLATE_BEFORE)
    after = _apply_by_text(named, _TEMPLATE_AFTER_ASCII, _TEMPLATE_AFTER, normalise=False)
    return after.str.strip_chars()


def _one(function: Callable[[pl.Expr], pl.Expr], content: str) -> str:
    return str(pl.select(function(pl.lit(content, dtype=pl.String))).item())


def redact(content: str) -> str:
    """Return ``content`` with codes, phones, e-mails, amounts and full dates replaced.

    Examples
    --------
    >>> redact("Giao dich 250,000 VND, ma GD 88213407, luc 10:15")
    'Giao dich {amount}, ma GD {code}, luc 10:15'
    """
    return _one(redact_expr, content)


def template(content: str) -> str:
    """Return the template of ``content``: the text its template's messages share.

    Examples
    --------
    >>> template("Ma OTP cua ban la 482913")
    'Ma OTP cua ban la {code}'
    """
    return _one(template_expr, content)
