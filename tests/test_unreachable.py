"""A dead or wrong endpoint: one line naming the URL and the cause in words, exit 4, fast."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest

from esms_analytics.cli import main
from esms_analytics.simulator import Simulator

from .conftest import NOW

DAY = str(NOW.date() - timedelta(days=1))
WEEK_AGO = str(NOW.date() - timedelta(days=7))


@pytest.fixture
def credentials(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    return sim


def _closed_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return int(unused.getsockname()[1])


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["sync", "fetch"])
def test_nothing_listening_stops_after_the_first_window_with_one_line(
    credentials: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    port = _closed_port()
    url = f"http://127.0.0.1:{port}/MainService.svc/json"
    target = ["--lake", str(tmp_path / "lake")] if command == "sync" else []
    target += ["--output", str(tmp_path / "out.csv")] if command == "fetch" else []
    code, out, err = _run(
        capsys,
        command,
        *target,
        "--from",
        WEEK_AGO,
        "--to",
        DAY,
        "--base-url",
        url,
        "--max-attempts",
        "2",
        "--quiet",
    )
    assert code == 4
    assert err.count("\n") == 1, err  # one line, not one per window and again in a summary
    assert err.startswith("error: cannot reach ")
    assert url in err
    assert f"nothing listens on 127.0.0.1:{port}" in err
    assert "(2 attempts)" in err
    assert "windows:" not in out  # no summary pretending windows were tried
    assert not (tmp_path / "lake").exists()  # a failed first sync leaves nothing


def test_https_to_a_plain_http_server_is_named_and_not_retried(
    credentials: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = credentials.base_url.replace("http://", "https://")
    code, out, err = _run(
        capsys,
        "sync",
        "--lake",
        str(tmp_path / "lake"),
        "--from",
        WEEK_AGO,
        "--to",
        DAY,
        "--base-url",
        url,
        "--quiet",
    )
    assert code == 4, out + err
    assert err.count("\n") == 1, err
    host_port = url.split("/")[2]
    assert f"the server at {host_port} speaks plain HTTP, not HTTPS" in err
    assert "(1 attempt)" in err
    assert credentials.requests == []


def test_a_host_name_that_does_not_resolve_is_named(
    credentials: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No DNS server answers on loopback: the resolver's failure is the seam.
    def unknown(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    code, _, err = _run(
        capsys,
        "fetch",
        "--output",
        str(tmp_path / "out.json"),
        "--from",
        DAY,
        "--to",
        DAY,
        "--base-url",
        "https://esms.invalid/MainService.svc/json",
        "--max-attempts",
        "1",
        "--quiet",
    )
    assert code == 4
    assert err.count("\n") == 1, err
    assert "the host name esms.invalid does not resolve" in err


def test_a_503_is_not_unreachable_each_failed_window_is_printed_once(
    credentials: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials.faults.set_rate("http503", 1.0)
    code, out, err = _run(
        capsys,
        "sync",
        "--lake",
        str(tmp_path / "lake"),
        "--from",
        DAY,
        "--to",
        DAY,
        "--base-url",
        credentials.base_url,
        "--max-attempts",
        "1",
        "--sms-type",
        "2",
        "--sms-type",
        "8",
        "--quiet",
    )
    assert code == 1  # the service answered: the sync is incomplete, not unreachable
    assert "HTTP 503" in out
    assert (out + err).count("HTTP 503") == 2  # two windows, each named once
