"""Errors carry their facts as attributes and chain the cause they translate."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from esms_analytics import (
    ApiError,
    CorruptPartitionError,
    DecodeError,
    EsmsClient,
    IncompleteWindowError,
    LakeError,
    TransportError,
    Window,
    decode_rows,
    read_lake,
    sync,
)
from esms_analytics.errors import LakeLockedError
from esms_analytics.lake import lake_lock, reading_lake
from esms_analytics.simulator import Simulator

from .conftest import NOW


def test_a_decode_error_names_field_value_and_row() -> None:
    row = {"SmsId": 1, "Phone": "0901888484", "SmsType": 2, "SendStatus": 5, "SendResult": 1}
    with pytest.raises(DecodeError) as caught:
        decode_rows([{**row, "ReferenceId": "ref-7", "SentTime": "yesterday"}])
    error = caught.value
    assert (error.field, error.value, error.reference_id, error.rows) == (
        "SentTime",
        "yesterday",
        "ref-7",
        1,
    )
    assert "SentTime='yesterday'" in str(error)
    assert "'ref-7'" in str(error)


def test_a_transport_error_names_the_request_and_attempts(
    sim: Simulator, client: EsmsClient
) -> None:
    day = NOW.date() - timedelta(days=1)
    sim.faults.queue(*["http500"] * 4)
    with pytest.raises(TransportError) as caught:
        client.get_page(Window.for_day(day), 2, page=3)
    error = caught.value
    assert (error.sms_type, error.window, error.page, error.attempts) == (2, str(day), 3, 4)
    assert "completed windows are kept" not in str(error)


def test_an_api_error_names_code_and_request(sim: Simulator, client: EsmsClient) -> None:
    day = NOW.date() - timedelta(days=1)
    sim.faults.queue("code:140")
    with pytest.raises(ApiError) as caught:
        client.get_page(Window.for_day(day), 8)
    error = caught.value
    assert (error.code, error.sms_type, error.window, error.page) == ("140", 8, str(day), 1)


def test_an_incomplete_window_error_carries_its_counts() -> None:
    error = IncompleteWindowError(
        sms_type=2, window="2026-11-19", passes=3, count_total=10, unique_rows=9
    )
    assert (error.passes, error.count_total, error.unique_rows) == (3, 10, 9)
    assert "SmsType=2 window 2026-11-19 changed on each of 3 passes" in str(error)


def test_lake_errors_carry_the_lake_and_chain_their_cause(sim: Simulator, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    day = NOW.date() - timedelta(days=5)
    with sim.client() as client:
        sync(lake, day, day, sms_types=[2], client=client, progress=False, now=NOW)
    part = lake / "sms" / "sms_type=2" / f"date={day}" / "part-0.parquet"
    part.write_bytes(b"garbage")
    scan = read_lake(lake)  # reads nothing yet: the scan is what meets the damage
    with pytest.raises(CorruptPartitionError) as caught, reading_lake(lake):
        scan.collect()
    error = caught.value
    assert (error.lake, error.partition, error.sms_type, error.day) == (
        str(lake),
        str(part),
        2,
        str(day),
    )
    assert isinstance(error.__cause__, OSError | pa.ArrowException)  # what the reader said
    assert isinstance(error.__context__, pl.exceptions.PolarsError)  # what the scan said

    elsewhere = Path("/proc/esms-lake")
    with pytest.raises(LakeError) as uncreatable:
        sync(elsewhere, day, day, sms_types=[2], client=EsmsClient("k", "s"), progress=False)
    assert uncreatable.value.lake == str(elsewhere)
    assert isinstance(uncreatable.value.__cause__, OSError)


def test_a_locked_lake_names_its_holder(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    with lake_lock(lake), pytest.raises(LakeLockedError) as caught, lake_lock(lake):
        pass
    assert caught.value.lake == str(lake)
    assert caught.value.holder.startswith("pid ")
    assert isinstance(caught.value.__cause__, BlockingIOError)
