"""Files the local stack writes: private (0600 files, 0700 directories), never through a symlink.

A symlink where we are about to write or lock is refused with a clear error, so a
planted link cannot make ``up`` or ``down`` overwrite a file elsewhere
(docs/local-stack.md, "Files in the state directory").
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "UnsafePathError",
    "copy_private",
    "exclusive_lock",
    "make_private_dir",
    "open_private",
    "read_private",
    "write_private",
]

FILE_MODE = 0o600
DIR_MODE = 0o700


class UnsafePathError(OSError):
    """A path in the state directory is a symlink (or not what it should be): refused."""


def _refuse(path: Path, what: str) -> UnsafePathError:
    return UnsafePathError(
        errno.ELOOP,
        f"{path} is {what}; otel-tdd stack does not follow links in its state directory. "
        "Remove it (or choose another --dir) and retry",
    )


def make_private_dir(path: Path, root: Path | None = None) -> Path:
    """``mkdir -p`` with mode 0700 for each directory made; refuses a symlinked directory.

    With ``root`` (the state directory), no directory below ``root`` down to
    ``path`` may be a symlink. The leaf, if ours, is set to 0700 even when it
    existed (an older version made it 0755).
    """
    below: tuple[str, ...] = ()
    top = path
    if root is not None and path != root and path.is_relative_to(root):
        below, top = path.relative_to(root).parts, root
    _make_dirs(top)  # the state directory itself (the user's choice, link or not)
    current = top
    for part in below:  # each level checked before anything is made inside it
        current = current / part
        if not os.path.lexists(current):
            _make_dirs(current)
        _check_dir(current)
    if path == root:  # followed if it is a link: the user chose it
        info = os.stat(path)
        if not stat.S_ISDIR(info.st_mode):
            raise _refuse(path, "not a directory")
    else:
        info = _check_dir(path)
    if stat.S_IMODE(info.st_mode) != DIR_MODE and info.st_uid == os.getuid():
        os.chmod(path, DIR_MODE)
    return path


def _make_dirs(path: Path) -> None:
    """``mkdir -p``, each directory made with mode 0700."""
    missing: list[Path] = []
    current = path
    while not os.path.lexists(current) and current.parent != current:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, DIR_MODE)


def _check_dir(path: Path) -> os.stat_result:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(path, "a symlink")
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(path, "not a directory")
    return info


def open_private(
    path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC, root: Path | None = None
) -> int:
    """``os.open`` with ``O_NOFOLLOW`` and mode 0600 (also on a file that existed)."""
    make_private_dir(path.parent, root)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _refuse(path, "a symlink") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, "not a regular file")
        if stat.S_IMODE(info.st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, data: str | bytes, root: Path | None = None) -> None:
    """Write ``data`` to ``path`` (0600, not through a symlink)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with os.fdopen(open_private(path, root=root), "wb") as fh:
        fh.write(payload)


def read_private(path: Path) -> str:
    """Read a file we wrote; a symlink there is refused (FileNotFoundError when missing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _refuse(path, "a symlink") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        return fh.read().decode("utf-8")


def copy_private(source: Path, target: Path, root: Path | None = None) -> None:
    """Copy ``source`` (ours to read: the shipped configs) to ``target`` as a private file."""
    with source.open("rb") as src, os.fdopen(open_private(target, root=root), "wb") as dst:
        shutil.copyfileobj(src, dst)


@contextlib.contextmanager
def exclusive_lock(path: Path, root: Path | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (made private, never truncated nor followed)."""
    fd = open_private(path, os.O_RDWR | os.O_CREAT, root=root)
    with os.fdopen(fd, "r+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
