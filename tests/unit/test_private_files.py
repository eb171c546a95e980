"""stack/private_files.py: 0600 files, 0700 dirs whatever the umask, no symlink followed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_tdd.stack.private_files import (
    UnsafePathError,
    copy_private,
    make_private_dir,
    open_private,
    read_private,
    write_private,
)


@pytest.fixture(autouse=True)
def _loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_files_are_0600_and_new_dirs_0700_under_umask_022(tmp_path: Path) -> None:
    target = tmp_path / "state" / "alertmanager" / "alertmanager.yml"
    write_private(target, "url: http://x/?token=s3cret\n")
    assert mode(target) == 0o600
    assert mode(tmp_path / "state") == mode(tmp_path / "state" / "alertmanager") == 0o700
    assert read_private(target) == "url: http://x/?token=s3cret\n"


def test_an_existing_world_readable_file_and_dir_become_private(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    directory.mkdir(mode=0o755)
    old = directory / "collector.log"
    old.write_text("old")
    old.chmod(0o644)
    write_private(old, "new")
    assert (mode(directory), mode(old), old.read_text()) == (0o700, 0o600, "new")


def test_a_symlinked_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "state" / "secrets" / "webhook_token"
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    for attempt in (
        lambda: write_private(link, "x"),
        lambda: open_private(link, os.O_RDWR | os.O_CREAT),
        lambda: read_private(link),
        lambda: copy_private(victim, link),
    ):
        with pytest.raises(UnsafePathError, match="is a symlink"):
            attempt()
    assert victim.read_text() == "precious"


def test_a_symlinked_directory_below_the_state_dir_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "alertmanager").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="alertmanager is a symlink"):
        write_private(root / "alertmanager" / "secrets" / "smtp_password", "x", root=root)
    assert list(elsewhere.iterdir()) == []
    with pytest.raises(UnsafePathError):
        make_private_dir(root / "alertmanager")


def test_a_state_dir_that_is_itself_a_link_is_the_users_choice(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    chosen = tmp_path / "chosen"
    chosen.symlink_to(real)
    write_private(chosen / "state.json", "{}", root=chosen)
    assert (real / "state.json").read_text() == "{}"
