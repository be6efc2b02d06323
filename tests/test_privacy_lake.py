"""A pseudonymised lake (#20): no phone in any byte, stable tokens, the key checked and kept out."""

from __future__ import annotations

import hmac
import logging
import pickle
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from esms_analytics import read_lake, reports
from esms_analytics.cli import main
from esms_analytics.codes import SMS_TYPES
from esms_analytics.errors import ConfigError
from esms_analytics.lake import PSEUDONYMISED_LAKE_SCHEMA
from esms_analytics.privacy.policy import KEY_VARIABLE, PSEUDONYMISED_SCHEMA, PrivacyPolicy
from esms_analytics.simulator import Simulator
from esms_analytics.simulator.history import VIETNAM
from esms_analytics.sync import sync

from .conftest import NOW

KEY = "test-pseudonym-key-not-a-secret-0123"
OTHER_KEY = "another-pseudonym-key-not-a-secret-987"
FIRST, LAST = NOW.date() - timedelta(days=6), NOW.date() - timedelta(days=1)
MIDDLE = FIRST + timedelta(days=2)
#: One person, written as the service writes numbers on different days: one token.
REPEATED = ("0901888484", "84901888484", "+84901888484")


def _day_ms(day: date) -> tuple[int, int]:
    start = int(datetime(day.year, day.month, day.day, tzinfo=VIETNAM).timestamp() * 1000)
    return start, start + 86_400_000 - 1


def truth_phones(sim: Simulator, first: date, last: date) -> set[str]:
    """Every phone the simulator holds for the days, as it sends them."""
    phones: set[str] = set()
    day = first
    while day <= last:
        start, end = _day_ms(day)
        for sms_type in SMS_TYPES:
            for messages, lo, hi in sim.history.visible(sms_type, start, end, end + 1):
                phones.update(message.phone for message in messages[lo:hi])
        day += timedelta(days=1)
    return phones


def phone_forms(phones: set[str]) -> set[bytes]:
    """Each phone raw, national, E.164 without and with its plus (what a leak could look like)."""
    forms: set[str] = set()
    for phone in phones:
        digits = re.sub(r"\D", "", phone)
        national = "0" + digits[2:] if digits.startswith("84") else digits
        forms |= {phone, digits, national, "84" + national[1:], "+84" + national[1:]}
    return {form.encode() for form in forms if len(form) >= 9}


def leaks(folder: Path, forms: set[bytes]) -> list[tuple[str, str]]:
    """(file, form) for every form found in any byte of any file under ``folder``."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [(str(path), form.decode()) for form in forms if form in data]
    return found


def repeat_one_phone(sim: Simulator, first: date, last: date) -> None:
    """Give the first customer-care message of each day one person's number, in turn forms."""
    day, turn = first, 0
    while day <= last:
        start, end = _day_ms(day)
        for messages, lo, _ in sim.history.visible(2, start, end, end + 1):
            messages[lo].phone = REPEATED[turn % len(REPEATED)]
            turn += 1
        day += timedelta(days=1)


@dataclass
class Lakes:
    raw: Path
    pseudonymised: Path
    phones: set[str]


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lakes]:
    """The same days in a raw lake and a pseudonymised one (synced in two syncs)."""
    folder = tmp_path_factory.mktemp("privacy")
    policy = PrivacyPolicy("pseudonymised", key=KEY)
    with Simulator(now=NOW, days=20, daily_volume=80, seed=23) as sim, sim.client() as client:
        repeat_one_phone(sim, FIRST, LAST)
        now = sim.clock.now()
        sync(folder / "raw", FIRST, LAST, client=client, progress=False, now=now)
        for first, last in ((FIRST, MIDDLE), (MIDDLE + timedelta(days=1), LAST)):
            sync(
                folder / "pseudo",
                first,
                last,
                client=client,
                progress=False,
                now=now,
                privacy=policy,
            )
        yield Lakes(folder / "raw", folder / "pseudo", truth_phones(sim, FIRST, LAST))


def joined(lakes: Lakes) -> pl.DataFrame:
    """The raw lake's rows beside the pseudonymised lake's, row for row (message ids)."""
    keys = ["sms_id", "reference_id", "date", "sms_type"]
    raw = read_lake(lakes.raw).collect().with_columns(pl.col("phone").alias("raw_phone"))
    pseudo = read_lake(lakes.pseudonymised).collect()
    assert raw.height == pseudo.height
    # (sms_id, reference_id) names a row, except for the rare blast sharing both: take
    # the rows in the lakes' order (the same: both sort by the raw columns first).
    raw, pseudo = (f.with_columns(n=pl.int_range(pl.len()).over(keys)) for f in (raw, pseudo))
    both = raw.join(pseudo, on=[*keys, "n"], suffix="_p", validate="1:1")
    assert both.height == raw.height
    return both


def test_no_phone_of_the_simulator_in_any_byte_of_the_lake(lakes: Lakes) -> None:
    forms = phone_forms(lakes.phones)
    assert len(forms) > 100
    # The scan finds them where they are: in the raw lake.
    assert leaks(lakes.raw, forms)
    assert leaks(lakes.pseudonymised, forms) == []
    frame = read_lake(lakes.pseudonymised).collect()
    assert frame.schema == PSEUDONYMISED_LAKE_SCHEMA
    assert list(PSEUDONYMISED_SCHEMA)[3:7] == ["content", "template", "phone_token", "phone_masked"]
    assert not {"phone", "phone_e164"} & set(frame.columns)


def test_the_key_is_nowhere_only_its_fingerprint(lakes: Lakes) -> None:
    fingerprint = PrivacyPolicy("pseudonymised", key=KEY).fingerprint
    assert fingerprint is not None
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint)
    assert leaks(lakes.pseudonymised, {KEY.encode()}) == []
    manifest = (lakes.pseudonymised / "_manifest.json").read_text()
    assert '"privacy": "pseudonymised"' in manifest
    assert f'"pseudonym_key_fingerprint": "{fingerprint}"' in manifest
    for path in lakes.pseudonymised.rglob("*.parquet"):
        metadata = pq.read_schema(path).metadata
        assert metadata[b"esms_analytics.privacy"] == b"pseudonymised"
        assert metadata[b"esms_analytics.pseudonym_key_fingerprint"] == fingerprint.encode()
    assert KEY not in repr(PrivacyPolicy("pseudonymised", key=KEY))


def test_one_phone_one_token_across_days_and_syncs(lakes: Lakes) -> None:
    both = joined(lakes)
    person = both.filter(pl.col("raw_phone").is_in(REPEATED))
    # On every day, in each sync, in all three of its forms: one token.
    assert person["date"].n_unique() == (LAST - FIRST).days + 1
    assert set(person["raw_phone"]) == set(REPEATED)
    assert person["date"].min() <= MIDDLE < person["date"].max()
    assert person["phone_token"].n_unique() == 1
    assert person["phone_masked"].unique().to_list() == ["+8490*****484"]
    identity = pl.coalesce("phone_e164", "raw_phone")
    pairs = both.select(identity.alias("identity"), "phone_token").unique()
    assert pairs["identity"].n_unique() == pairs["phone_token"].n_unique() == pairs.height
    assert both["phone_token"].str.contains(r"^[0-9a-f]{64}$").all()


def test_masks_keep_the_carrier_prefix_and_three_digits(lakes: Lakes) -> None:
    both = joined(lakes)
    vietnamese = both.filter(pl.col("phone_e164").is_not_null())
    expected = (
        pl.col("phone_e164").str.slice(0, 5) + pl.lit("*****") + pl.col("phone_e164").str.slice(-3)
    )
    assert vietnamese.height > 0
    assert (vietnamese["phone_masked"] == vietnamese.select(expected).to_series()).all()
    assert both["phone_masked"].str.contains(r"^(\+84\d\d)?\*{5}(\d{3})?$").all()


def test_derived_columns_come_from_the_raw_values(lakes: Lakes) -> None:
    both = joined(lakes)
    for column in ("carrier", "length", "segments", "encoding", "send_result", "sell_price"):
        assert_frame_equal(
            both.select(pl.col(column)),
            both.select(pl.col(f"{column}_p").alias(column)),
        )
    # The text is redacted, and its template groups it; codes are gone.
    coded = both.filter(pl.col("content").str.contains(r"\d{6}"))
    assert coded.height > 0
    assert not coded["content_p"].str.contains(r"\d{6}").any()
    assert coded["template"].str.contains("{code}", literal=True).all()
    assert both["template"].n_unique() < both["content"].n_unique()


def test_unique_recipients_equal_the_raw_count(lakes: Lakes) -> None:
    raw = reports.unique_recipients(lakes.raw, by=["date", "carrier"]).sort(["date", "carrier"])
    pseudo = reports.unique_recipients(lakes.pseudonymised, by=["date", "carrier"])
    assert_frame_equal(pseudo.sort(["date", "carrier"]), raw)
    assert reports.unique_recipients(lakes.pseudonymised).rows() == (
        reports.unique_recipients(lakes.raw).rows()
    )


# -- the command line ------------------------------------------------------------


@pytest.fixture
def env(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    return sim


def _sync(sim: Simulator, lake: Path, *extra: str, days: int = 3) -> int:
    first, last = NOW.date() - timedelta(days=days), NOW.date() - timedelta(days=1)
    argv = ["sync", "--lake", str(lake), "--from", str(first), "--to", str(last)]
    return main([*argv, "--base-url", sim.base_url, "--quiet", "--rate-limit", "0", *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def refusals(sim: Simulator, lake: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., str]:
    """A re-sync of ``lake`` that must be refused: one line, exit 2, no request, nothing changed.

    The lake and the simulator's requests are taken as they are now; the function
    returned runs the sync with its extra arguments and returns the error line.
    """
    capsys.readouterr()
    before = _snapshot(lake)
    sim.reset_requests()

    def refused(*extra: str) -> str:
        assert _sync(sim, lake, "--refresh", *extra) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert len(err.strip().splitlines()) == 1, err
        assert _snapshot(lake) == before
        assert sim.requests == []
        return err

    return refused


def test_no_phone_or_key_in_exports_html_or_logs(
    env: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    lake, out = tmp_path / "lake", tmp_path / "out"
    out.mkdir()
    caplog.set_level(logging.DEBUG)
    assert _sync(env, lake, "--privacy", "pseudonymised", "--debug") == 0
    assert main(["sync", "--lake", str(lake), "--from", "2026-11-15", "--to", "2026-11-16",
                 "--base-url", env.base_url, "--quiet", "--log-format", "json",
                 "--summary-json", str(out / "summary.json")]) == 0  # fmt: skip
    for form in ("csv", "json"):
        assert main(["report", "delivery", "--lake", str(lake), "--format", form]) == 0
        assert main(["report", "delivery", "--lake", str(lake), "--by", "template",
                     "--format", form]) == 0  # fmt: skip
    assert main(["report", "html", "--lake", str(lake), "--output", str(out / "r.html")]) == 0
    stdout, stderr = capsys.readouterr()
    assert "template" in stdout
    # The logs were captured: the debug lines and the JSON events of the windows.
    assert "sms_type=" in stderr
    assert '"event": "window"' in stderr
    (out / "stdout.txt").write_text(stdout)
    (out / "stderr.txt").write_text(stderr)
    (out / "log.txt").write_text("\n".join(record.getMessage() for record in caplog.records))
    assert (out / "r.html").stat().st_size > 10_000
    forms = phone_forms(truth_phones(env, date(2026, 11, 15), NOW.date()))
    assert leaks(lake, forms) == []
    assert leaks(out, forms) == []
    assert leaks(lake, {KEY.encode()}) == leaks(out, {KEY.encode()}) == []


def test_another_key_or_policy_is_refused_and_nothing_written(
    env: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = tmp_path / "lake"
    assert _sync(env, lake, "--privacy", "pseudonymised", days=2) == 0
    refused = refusals(env, lake, capsys)
    monkeypatch.setenv(KEY_VARIABLE, OTHER_KEY)
    err = refused()
    assert KEY_VARIABLE in err
    assert "not the key" in err
    assert OTHER_KEY not in err
    assert KEY not in err
    assert "not the key" in refused("--privacy", "pseudonymised")
    monkeypatch.delenv(KEY_VARIABLE)
    assert KEY_VARIABLE in refused()
    monkeypatch.setenv(KEY_VARIABLE, "short")
    assert "at least 16" in refused()
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    assert "is pseudonymised" in refused("--privacy", "raw")
    # The lake's own key: the lake keeps its policy without --privacy.
    assert _sync(env, lake, days=2) == 0


def test_a_raw_lake_refuses_pseudonymised_rows(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    assert _sync(env, lake, days=2) == 0
    assert '"privacy": "raw"' in (lake / "_manifest.json").read_text()
    capsys.readouterr()
    before = _snapshot(lake)
    assert _sync(env, lake, "--refresh", "--privacy", "pseudonymised", days=2) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "is raw" in err
    assert _snapshot(lake) == before


def test_the_python_api_takes_the_policy_by_name(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    with pytest.raises(ConfigError, match=KEY_VARIABLE):
        sync(tmp_path / "lake", FIRST, FIRST, client=sim.client(), privacy="pseudonymised")
    with pytest.raises(ConfigError, match="raw or pseudonymised"):
        sync(tmp_path / "lake", FIRST, FIRST, client=sim.client(), privacy="hashed")
    assert not (tmp_path / "lake").exists()
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    with sim.client() as client:
        sync(
            tmp_path / "lake", FIRST, FIRST, client=client, progress=False, privacy="pseudonymised"
        )
    assert "phone_token" in read_lake(tmp_path / "lake").collect_schema()


def test_a_lost_manifest_keeps_the_policy_and_the_key_check(
    env: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = tmp_path / "lake"
    assert _sync(env, lake, "--privacy", "pseudonymised", days=2) == 0
    (lake / "_manifest.json").unlink()
    capsys.readouterr()
    # Rebuilt from the files' metadata: the lake is still pseudonymised, under its key.
    assert "phone_token" in read_lake(lake).collect_schema()
    monkeypatch.setenv(KEY_VARIABLE, OTHER_KEY)
    assert _sync(env, lake, "--refresh", days=2) == 2
    assert "not the key" in capsys.readouterr().err
    assert not (lake / "_manifest.json").exists()


def test_the_policy_never_shows_or_pickles_its_key() -> None:
    policy = PrivacyPolicy("pseudonymised", key=KEY)
    assert KEY not in repr(policy)
    assert KEY not in str(policy)
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(policy)
    assert policy == PrivacyPolicy("pseudonymised", key=KEY)
    assert policy != PrivacyPolicy("pseudonymised", key=OTHER_KEY)
    with pytest.raises(ConfigError, match="takes no pseudonym key"):
        PrivacyPolicy("raw", key=KEY)


@pytest.mark.parametrize(
    "key",
    ["0123456789abcdef", "khóa bí mật của đội dữ liệu", "k" * 64, "a much longer key " * 8],
)
def test_tokens_are_hmac_sha256_of_the_number_under_the_key(key: str) -> None:
    # Any key length (a key longer than SHA-256's block is hashed first), any text.
    numbers = pl.Series(["+84901888484", "0901888484", None, "+84901888484", "12345"])
    tokens = PrivacyPolicy("pseudonymised", key=key).tokens(numbers)
    expected = [
        None if number is None else hmac.new(key.encode(), number.encode(), "sha256").hexdigest()
        for number in numbers
    ]
    assert tokens.to_list() == expected
