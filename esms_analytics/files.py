"""Files and folders on local disk: their owner's and their group's, whatever the umask.

Everything the package writes on this machine (the lake's files, the
manifest, the quarantine, reports, plots, exports, the run summary) holds or
names personal data, so other users cannot read it: files are
:data:`FILE_MODE` (0640) and the folders the package creates
:data:`FOLDER_MODE` (0750). Those are set exactly, not left to the umask that
``open`` and ``mkdir`` apply: a umask of 0 still gives 0640, and a stricter
one (077) does not take the group's read away (the group is how a team shares
a lake). A folder that already exists (the lake the user made, their home, the
working directory) keeps its own mode. What ``mkstemp`` makes (a sync's
spill, a temporary file until it is renamed into place) is 0600, stricter still.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from pathlib import Path
from typing import Final

#: Owner reads and writes, group reads, others nothing.
FILE_MODE: Final = 0o640
#: Owner enters and writes, group enters and reads, others nothing.
FOLDER_MODE: Final = 0o750


def make_folders(path: Path) -> None:
    """Create ``path`` and its missing parents, each :data:`FOLDER_MODE`; existing ones untouched.

    Raises ``FileExistsError`` (an ``OSError``) when a file stands where a folder goes.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> make_folders(root / "reports" / "2026")
    >>> oct((root / "reports").stat().st_mode & 0o777), oct(root.stat().st_mode & 0o777)
    ('0o750', '0o700')
    """
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # another writer made it at the same moment: theirs, 0750 as well
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode went through the umask


def open_file(path: Path) -> io.BufferedWriter:
    """Open ``path`` to write it from the start, its mode exactly :data:`FILE_MODE`.

    A new file is never more open than that: the umask can only narrow the
    mode given to ``open``, and the descriptor gets the exact mode before a
    byte is written. An existing file is truncated and given the mode too.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
        return os.fdopen(descriptor, "wb")
    except BaseException:
        os.close(descriptor)
        raise


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` (:data:`FILE_MODE`) atomically: a temporary file beside it, renamed.

    A reader sees the old file or the new one, never half of one; on a failure
    (an ``OSError``) the temporary file is removed and ``path`` is as it was.
    """
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def settle_tree(folder: Path) -> None:
    """Give every file under ``folder`` :data:`FILE_MODE` and every folder :data:`FOLDER_MODE`.

    For a folder of the package's own that a library fills with the umask's
    modes (a Delta or Iceberg table), once it has written. Links are left alone.
    """
    for directory, _, names in os.walk(folder):
        _settle(Path(directory), FOLDER_MODE)
        for name in names:
            _settle(Path(directory, name), FILE_MODE)


def _settle(path: Path, wanted: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        status = path.lstat()
        if not stat.S_ISLNK(status.st_mode) and stat.S_IMODE(status.st_mode) != wanted:
            os.chmod(path, wanted)
