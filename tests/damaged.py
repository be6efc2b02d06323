"""A damaged-lake fixture: each way a lake is found broken, done to a real lake.

Each :class:`Damage` breaks one window (``VICTIM``) of a lake synced by the
test, through the raw access of :class:`tests.lakes.Lake` (the filesystem or
boto3, never the code under test), and says what every reader and writer
must then do. The table is issue 13's list of damaged lakes.
"""

from __future__ import annotations

import io
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import polars as pl

from .lakes import Lake

#: What read_lake (and every report over it) does on the damaged lake.
#: ok: every row as before; lost: the rows the damage destroyed are absent, the
#: rest as before; error: a LakeError naming the lake and what to run.
ReadOutcome = Literal["ok", "lost", "error"]


@dataclass(frozen=True)
class Damage:
    """One kind of damage and what each command must do about it."""

    name: str
    apply: Callable[[Lake, str], None]
    read: ReadOutcome
    #: Exit code of `lake info` (0 healthy, 5 damaged): footers and manifest only.
    info: int
    #: What a plain sync leaves for `lake check`: 0 repaired, 5 still damaged
    #: (a plain sync never re-reads a settled file).
    after_sync: int
    #: Objects a sync moves to _quarantine/ rather than lose (disk, s3).
    quarantined: tuple[str, ...] = ()
    on_s3: bool = True


def truncate(lake: Lake, key: str) -> None:
    lake.write(key, lake.read(key)[:100])


def zero_bytes(lake: Lake, key: str) -> None:
    lake.write(key, b"")


def random_bytes(lake: Lake, key: str) -> None:
    lake.write(key, random.Random(13).randbytes(len(lake.read(key))))


def garbage_pages(lake: Lake, key: str) -> None:
    """Keep the PAR1 marks and the footer, overwrite every data page with noise."""
    data = bytearray(lake.read(key))
    footer = int.from_bytes(data[-8:-4], "little")
    noise = random.Random(7)
    for index in range(4, len(data) - footer - 8):
        data[index] = noise.randrange(256)
    lake.write(key, bytes(data))


def _other_schema() -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame({"who": ["a", "b", "c"], "n": [1, 2, 3]}).write_parquet(buffer)
    return buffer.getvalue()


def wrong_schema_part_0(lake: Lake, key: str) -> None:
    lake.write(key, _other_schema())


def wrong_schema_extra_part(lake: Lake, key: str) -> None:
    lake.write(key.replace("part-0", "part-1"), _other_schema())


def copied_part(lake: Lake, key: str) -> None:
    lake.write(key.replace("part-0", "part-1"), lake.read(key))


def stray_file(lake: Lake, key: str) -> None:
    lake.write(key.replace("part-0.parquet", "notes.txt"), b"exported by hand\n")


def manifest_missing(lake: Lake, key: str) -> None:
    lake.delete("_manifest.json")


def manifest_truncated(lake: Lake, key: str) -> None:
    lake.write("_manifest.json", lake.read("_manifest.json")[:150])


def manifest_null_windows(lake: Lake, key: str) -> None:
    lake.write("_manifest.json", b'{"schema_version": "1", "windows": null}')


def manifest_string_booleans(lake: Lake, key: str) -> None:
    manifest = json.loads(lake.read("_manifest.json"))
    for entry in manifest["windows"].values():
        entry["settled"] = json.dumps(entry["settled"])  # "false": a string, true to bool()
    lake.write("_manifest.json", json.dumps(manifest).encode())


def manifest_directory(lake: Lake, key: str) -> None:
    assert lake.root is not None
    (lake.root / "_manifest.json").unlink()
    (lake.root / "_manifest.json").mkdir()
    (lake.root / "_manifest.json" / "windows.json").write_text("{}")


def partition_is_a_file(lake: Lake, key: str) -> None:
    folder = key.rsplit("/", 1)[0]
    if lake.root is not None:
        shutil.rmtree(lake.root / folder)
    else:
        lake.delete(key)
    lake.write(folder, b"a file where the partition's folder was\n")


def part_0_is_a_directory(lake: Lake, key: str) -> None:
    lake.delete(key)
    lake.write(f"{key}/data.bin", b"a folder where the data file was\n")


DAMAGES = [
    Damage("truncated", truncate, read="error", info=5, after_sync=5),
    Damage("zero-byte", zero_bytes, read="error", info=5, after_sync=5),
    Damage("random bytes", random_bytes, read="error", info=5, after_sync=5),
    # Footer whole, pages garbage: only a read of every page sees it.
    Damage("garbage pages", garbage_pages, read="error", info=0, after_sync=5),
    Damage("wrong schema as part-0", wrong_schema_part_0, read="error", info=5, after_sync=5),
    Damage(
        "wrong schema as an extra part",
        wrong_schema_extra_part,
        read="ok",
        info=5,
        after_sync=5,
        quarantined=("part-1.parquet",),
    ),
    Damage(
        "a copied part",
        copied_part,
        read="ok",
        info=5,
        after_sync=5,
        quarantined=("part-1.parquet",),
    ),
    Damage("a stray file", stray_file, read="ok", info=5, after_sync=5, quarantined=("notes.txt",)),
    Damage("manifest missing", manifest_missing, read="ok", info=5, after_sync=0),
    Damage(
        "manifest truncated",
        manifest_truncated,
        read="ok",
        info=5,
        after_sync=0,
        quarantined=("_manifest.json",),
    ),
    Damage(
        "manifest with null windows",
        manifest_null_windows,
        read="ok",
        info=5,
        after_sync=0,
        quarantined=("_manifest.json",),
    ),
    Damage(
        "manifest as a directory",
        manifest_directory,
        read="ok",
        info=5,
        after_sync=0,
        quarantined=("_manifest.json/windows.json",),
        on_s3=False,  # a bucket has no directories: `_manifest.json/x` is just another key
    ),
    Damage(
        "manifest with string booleans",
        manifest_string_booleans,
        read="ok",
        info=5,
        after_sync=0,
        quarantined=("_manifest.json",),
    ),
    Damage(
        "a partition directory replaced by a file",
        partition_is_a_file,
        read="lost",
        info=5,
        after_sync=0,
        quarantined=("date=",),
    ),
    Damage(
        "part-0.parquet as a directory",
        part_0_is_a_directory,
        read="lost",
        info=5,
        after_sync=0,
        quarantined=("part-0.parquet/data.bin",),
    ),
]
