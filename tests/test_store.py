"""The lake's storage layer on disk and on a real S3 server (moto on loopback)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import obstore
import pytest

from esms_analytics.errors import ConfigError, LakeError, LakeLockedError
from esms_analytics.store import (
    LOCK_NAME,
    CloudStore,
    DiskStore,
    LakeStore,
    ObjectInfo,
    open_store,
)

from .faultproxy import FaultProxy
from .s3 import S3Server

SHORT_LEASE = timedelta(seconds=1)


@pytest.fixture(params=["disk", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LakeStore:
    if request.param == "disk":
        built = open_store(tmp_path / "lake")
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        bucket = s3.new_bucket()
        built = open_store(f"s3://{bucket}/lake", storage_options=s3.storage_options())
    built.prepare(create=True)
    return built


def cloud(s3: S3Server, bucket: str, **options: Any) -> CloudStore:
    return CloudStore(f"s3://{bucket}/lake", storage_options=s3.storage_options(), **options)


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.05)


def test_a_write_replaces_the_object_whole_or_not_at_all(store: LakeStore) -> None:
    key = "sms/sms_type=2/date=2026-11-20/part-0.parquet"
    store.write(key, b"old bytes")

    def interrupted_write() -> None:
        with store.writer(key) as file:
            file.write(b"half of the new")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        interrupted_write()
    assert store.read(key) == b"old bytes"
    assert [info.key for info in store.list_files("")] == [key]
    store.write(key, b"new bytes, longer")
    assert store.read(key) == b"new bytes, longer"
    assert store.head(key) == ObjectInfo(key, len(b"new bytes, longer"))


def test_listing_prunes_by_prefix_and_starting_key(store: LakeStore) -> None:
    for sms_type, day in [(2, "01"), (2, "02"), (2, "03"), (8, "02"), (24, "01")]:
        store.write(f"sms/sms_type={sms_type}/date=2026-11-{day}/part-0.parquet", b"x" * sms_type)
    store.write("_manifest.json", b"{}")
    assert store.list_dirs("sms/") == ["sms_type=2", "sms_type=24", "sms_type=8"]
    assert store.list_dirs("sms/sms_type=2/") == [f"date=2026-11-0{n}" for n in (1, 2, 3)]
    assert store.list_dirs("sms/sms_type=5/") == []
    later = store.list_files("sms/sms_type=2/", start_after="sms/sms_type=2/date=2026-11-02")
    assert [info.key for info in later] == [
        "sms/sms_type=2/date=2026-11-02/part-0.parquet",
        "sms/sms_type=2/date=2026-11-03/part-0.parquet",
    ]
    assert store.list_files("sms/sms_type=24/")[0].size == 24
    assert store.read_range("_manifest.json", 1, 2) == b"}"
    assert store.read("sms/sms_type=9/date=2026-11-01/part-0.parquet") is None
    store.delete("_manifest.json")
    store.delete("_manifest.json")  # already gone: no error
    assert store.head("_manifest.json") is None


def test_a_second_lock_is_refused_and_names_the_holder(store: LakeStore) -> None:
    same = open_store(store.location, storage_options=store.storage_options)
    with (
        store.lock(),
        pytest.raises(LakeLockedError, match=r"another sync .*pid \d+ on host "),
        same.lock(),
    ):
        pass
    with same.lock():  # released: the next one gets it
        pass


def test_an_object_store_lock_is_an_object_with_owner_and_lease(
    s3_server: S3Server, s3_bucket: str
) -> None:
    store = cloud(s3_server, s3_bucket, lease=SHORT_LEASE)
    with store.lock():
        body = json.loads(s3_server.keys(s3_bucket)[f"lake/{LOCK_NAME}"])
        first_expiry = datetime.fromisoformat(body["expires"])
        assert body["pid"] > 0
        assert body["host"]
        # The holder renews its lease while it runs: a rival is refused long after
        # the first lease would have run out.
        wait_for(lambda: datetime.now(UTC) > first_expiry + SHORT_LEASE)
        with (
            pytest.raises(LakeLockedError, match="lease until"),
            cloud(s3_server, s3_bucket).lock(),
        ):
            pass
    assert f"lake/{LOCK_NAME}" not in s3_server.keys(s3_bucket)


def test_the_lock_of_a_killed_holder_is_taken_over_when_its_lease_ends(
    s3_server: S3Server, s3_bucket: str
) -> None:
    script = (
        "import sys, time; from datetime import timedelta; from esms_analytics.store import CloudStore\n"
        "store = CloudStore(sys.argv[1], storage_options=dict(a.split('=', 1) for a in sys.argv[2:]),"
        " lease=timedelta(seconds=1))\n"
        "with store.lock():\n print('held', flush=True); time.sleep(60)"
    )
    options = [f"{key}={value}" for key, value in s3_server.storage_options().items()]
    holder = subprocess.Popen(
        [sys.executable, "-c", script, f"s3://{s3_bucket}/lake", *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    with (
        pytest.raises(LakeLockedError, match=f"pid {holder.pid}"),
        cloud(s3_server, s3_bucket).lock(),
    ):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    lock = json.loads(s3_server.keys(s3_bucket)[f"lake/{LOCK_NAME}"])
    wait_for(lambda: datetime.now(UTC) > datetime.fromisoformat(lock["expires"]))
    store = cloud(s3_server, s3_bucket)
    with store.lock():
        taken = json.loads(s3_server.keys(s3_bucket)[f"lake/{LOCK_NAME}"])
        assert taken["pid"] != holder.pid
        store.write("_manifest.json", b"{}")


def expired_lock(s3: S3Server, bucket: str) -> None:
    body = {
        "host": "gone",
        "pid": 1,
        "started": "2026-11-20T00:00:00+00:00",
        "expires": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "token": "dead",
    }
    s3.client().put_object(Bucket=bucket, Key=f"lake/{LOCK_NAME}", Body=json.dumps(body))  # type: ignore[attr-defined]


def test_of_two_takers_of_an_expired_lock_exactly_one_wins(
    s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expired_lock(s3_server, s3_bucket)
    real_put = obstore.put
    # Both takers have read the expired lock before either writes: the race at its worst.
    both_read = threading.Barrier(2, timeout=20)

    def put_after_both_read(*args: Any, **kwargs: Any) -> Any:
        if isinstance(kwargs.get("mode"), dict) and threading.current_thread().name.startswith(
            "taker"
        ):
            both_read.wait()
        return real_put(*args, **kwargs)

    monkeypatch.setattr(obstore, "put", put_after_both_read)
    outcomes: dict[str, str] = {}
    release = threading.Event()

    def take(name: str) -> None:
        try:
            with cloud(s3_server, s3_bucket).lock():
                outcomes[name] = "won"
                release.wait(20)
        except LakeLockedError as exc:
            outcomes[name] = str(exc)

    threads = [
        threading.Thread(target=take, args=(f"taker-{n}",), name=f"taker-{n}") for n in (1, 2)
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(outcomes) == 2)
    release.set()
    for thread in threads:
        thread.join()
    assert sorted(outcome == "won" for outcome in outcomes.values()) == [False, True]
    loser = next(outcome for outcome in outcomes.values() if outcome != "won")
    assert "took over an expired lock first" in loser


def test_a_holder_that_lost_its_lock_writes_nothing_more(
    s3_server: S3Server, s3_bucket: str
) -> None:
    store = cloud(s3_server, s3_bucket, lease=timedelta(seconds=0.4))
    with store.lock():
        store.write("a", b"1")
        expired_lock(s3_server, s3_bucket)  # someone else's lock now
        wait_for(lambda: store._lock_state is not None and store._lock_state.lost is not None)
        with pytest.raises(LakeLockedError, match=r"took this sync.s lock over"):
            store.write("b", b"2")
    assert set(s3_server.keys(s3_bucket)) == {"lake/a", f"lake/{LOCK_NAME}"}


def test_a_missing_bucket_is_one_clear_line(s3_server: S3Server) -> None:
    store = open_store("s3://no-such-bucket-here/lake", storage_options=s3_server.storage_options())
    with pytest.raises(LakeError) as caught:
        store.prepare(create=True)
    message = str(caught.value)
    assert "s3://no-such-bucket-here/lake" in message
    assert "bucket does not exist" in message
    assert "\n" not in message


def test_refused_credentials_are_one_clear_line_without_the_secret(
    s3_server: S3Server, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-SECRET-value-4242"
    options = s3_server.storage_options(aws_secret_access_key=secret)
    store = open_store(f"s3://{s3_bucket}/lake", storage_options=options)
    caplog.set_level(logging.DEBUG)
    with s3_server.enforcing_credentials():
        open_store(f"s3://{s3_bucket}/lake", storage_options=s3_server.storage_options()).prepare(
            create=True
        )  # the right keys pass the same checks
        with pytest.raises(LakeError) as caught:
            store.prepare(create=True)
    message = str(caught.value)
    assert "refused the credentials" in message
    assert f"s3://{s3_bucket}/lake" in message
    for text in (message, repr(store), caplog.text, repr(caught.value.__cause__)):
        assert secret not in text
        assert s3_server.secret_key not in text


def test_the_store_is_named_without_its_options(s3_server: S3Server, s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}/lake/", storage_options=s3_server.storage_options())
    assert repr(store) == f"CloudStore('s3://{s3_bucket}/lake')"
    assert store.uri("sms/x.parquet") == f"s3://{s3_bucket}/lake/sms/x.parquet"
    assert s3_server.secret_key not in repr(vars(store).get("location"))


def test_locations_that_cannot_work_are_refused(tmp_path: Path, s3_server: S3Server) -> None:
    assert isinstance(open_store(f"file://{tmp_path}"), DiskStore)
    with pytest.raises(ConfigError, match="ftp://"):
        open_store("ftp://host/lake")
    with pytest.raises(ConfigError, match="object-store lakes"):
        open_store(tmp_path, storage_options={"aws_region": "us-east-1"})
    with pytest.raises(ConfigError, match="bogus_option"):
        open_store("s3://bucket/lake", storage_options={"bogus_option": "1"})


#: obstore's retries, shortened so a test of a store that stays down ends quickly.
QUICK_RETRY: Any = {
    "max_retries": 2,
    "backoff": {"init_backoff": timedelta(milliseconds=10), "max_backoff": timedelta(seconds=0.1)},
    "retry_timeout": timedelta(seconds=20),
}


def through(proxy: FaultProxy, s3: S3Server, bucket: str) -> CloudStore:
    options = s3.storage_options(endpoint=proxy.endpoint, timeout="1s")
    return CloudStore(f"s3://{bucket}/lake", storage_options=options, retry=QUICK_RETRY)


def test_drops_slowdowns_and_stalls_are_retried_and_nothing_is_half_written(
    s3_server: S3Server, s3_bucket: str
) -> None:
    payloads = {
        f"sms/sms_type=2/date=2026-11-0{n}/part-0.parquet": os.urandom(3000 + n) for n in range(5)
    }
    with FaultProxy(s3_server.port) as proxy:
        store = through(proxy, s3_server, s3_bucket)
        proxy.plan(["503", "drop", "stall", "pass", "503"], methods=["PUT"])
        for key, data in payloads.items():
            store.write(key, data)
        proxy.plan(["drop", "503", "stall"], methods=["GET"])
        for key, data in payloads.items():
            assert store.read(key) == data
    assert not proxy.schedule
    assert proxy.injected == {"503": 3, "drop": 2, "stall": 2}
    # Every fault cost exactly one more request, and each object went up whole.
    assert proxy.seen["PUT"] == len(payloads) + 4
    assert proxy.seen["GET"] == len(payloads) + 3
    assert s3_server.keys(s3_bucket) == {f"lake/{key}": data for key, data in payloads.items()}


def test_a_store_that_stays_down_ends_in_one_clear_line(
    s3_server: S3Server, s3_bucket: str
) -> None:
    with FaultProxy(s3_server.port) as proxy:
        store = through(proxy, s3_server, s3_bucket)
        store.write("_manifest.json", b"{}")
        proxy.plan(["503"] * 100)
        with pytest.raises(LakeError) as caught:
            store.write("_manifest.json", b"{newer}")
    message = str(caught.value)
    assert "SlowDown 503" in message
    assert "did not answer after 3 attempts" in message
    assert store.retries == 2
    assert proxy.injected["503"] == 3 * (1 + QUICK_RETRY["max_retries"])
    assert s3_server.keys(s3_bucket) == {"lake/_manifest.json": b"{}"}


def test_a_local_lake_needs_no_cloud_library(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['obstore'] = None  # as if it were not installed\n"
        "from esms_analytics.errors import ConfigError\n"
        "from esms_analytics.store import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "store.prepare(create=True)\n"
        "with store.lock():\n"
        "    store.write('sms/x', b'1')\n"
        "print(store.read('sms/x'))\n"
        "try:\n"
        "    open_store('s3://bucket/lake')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "b'1'",
        "the lake s3://bucket/lake is in an object store, which needs obstore: "
        "pip install 'esms-analytics[cloud]'",
    ]


def test_keys_from_the_aws_shared_files_are_used(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    options = {
        key: value
        for key, value in s3_server.storage_options().items()
        if key not in ("aws_access_key_id", "aws_secret_access_key")
    }
    store = open_store(f"s3://{s3_bucket}/lake", storage_options=options)
    with s3_server.enforcing_credentials():
        store.write("_manifest.json", b"{}")  # signed with the keys from the file
        credentials.write_text(
            "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = x\n"
        )
        with pytest.raises(LakeError, match="refused the credentials"):
            open_store(f"s3://{s3_bucket}/lake", storage_options=options).prepare(create=True)
    assert s3_server.keys(s3_bucket) == {"lake/_manifest.json": b"{}"}


LOCK_HOLDER = """
import sys, time
from esms_analytics.store import open_store
store = open_store(sys.argv[1])
with store.lock():
    print("held", flush=True)
    time.sleep(60)
"""


def test_deleting_the_lock_file_does_not_let_a_second_writer_in(tmp_path: Path) -> None:
    store = open_store(tmp_path / "lake")
    store.prepare(create=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, store.location], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        note = tmp_path / "lake" / LOCK_NAME
        assert f"pid {holder.pid}" in note.read_text()
        # A clean-up script, a user, a failed first sync: the path goes, the lock stays.
        note.unlink()
        with pytest.raises(LakeLockedError, match="holder unknown"), store.lock():
            pass
        note.write_text("a file put back by hand")
        with pytest.raises(LakeLockedError), store.lock():
            pass
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    with store.lock():  # the kernel dropped the dead holder's lock
        assert f"pid {os.getpid()}" in (tmp_path / "lake" / LOCK_NAME).read_text()
    assert not (tmp_path / "lake" / LOCK_NAME).exists()  # the note goes with the lock


def test_a_move_takes_files_and_directories_aside(store: LakeStore) -> None:
    store.write("sms/sms_type=2/date=2026-11-20/part-1.parquet", b"copied")
    store.move(
        "sms/sms_type=2/date=2026-11-20/part-1.parquet",
        "_quarantine/now/sms/sms_type=2/date=2026-11-20/part-1.parquet",
    )
    assert [info.key for info in store.list_files("")] == [
        "_quarantine/now/sms/sms_type=2/date=2026-11-20/part-1.parquet"
    ]
    assert store.read("_quarantine/now/sms/sms_type=2/date=2026-11-20/part-1.parquet") == b"copied"
    store.delete_many(["_quarantine/now/sms/sms_type=2/date=2026-11-20/part-1.parquet", "gone"])
    assert store.list_files("") == []
    if isinstance(store, DiskStore):
        (store.root / "a" / "part-0.parquet").mkdir(parents=True)
        assert store.head("a/part-0.parquet") is None  # a directory is no object
        store.write("a/part-0.parquet", b"data")  # an empty directory in the way goes
        assert store.read("a/part-0.parquet") == b"data"
        store.delete("a/part-0.parquet")
        (store.root / "a" / "part-0.parquet" / "empty").mkdir(parents=True)
        store.delete("a/part-0.parquet")  # so does one standing where a file is deleted
        assert not (store.root / "a" / "part-0.parquet").exists()
        (store.root / "a" / "part-0.parquet").mkdir()
        (store.root / "a" / "part-0.parquet" / "kept").write_bytes(b"someone's file")
        with pytest.raises(LakeError, match="holding files"):
            store.delete("a/part-0.parquet")
        assert (store.root / "a" / "part-0.parquet" / "kept").read_bytes() == b"someone's file"
