"""Where the shipped files are: the checkout's ``collector/`` and ``compose/``, else the wheel's."""

from __future__ import annotations

from pathlib import Path

__all__ = ["AssetError", "find_assets"]

# A file each folder must hold, so that an unrelated folder of that name is never picked up.
_MARKERS = {"collector": "manifest.yaml", "compose": "prometheus/prometheus.yml"}


class AssetError(FileNotFoundError):
    """A shipped folder is missing; the message says where we looked and what to do."""


def find_assets(name: str) -> Path:
    """``collector`` or ``compose``: the checkout's top-level folder, else the wheel's copy.

    A checkout is recognised by ``pyproject.toml`` beside the folder.
    """
    marker = _MARKERS[name]
    package_dir = Path(__file__).resolve().parent.parent
    checkout = package_dir.parent
    candidates = [checkout / name, package_dir / "_assets" / name]
    if not (checkout / "pyproject.toml").is_file():
        candidates.pop(0)
    for candidate in candidates:
        if (candidate / marker).is_file():
            return candidate
    raise AssetError(
        f"cannot find the {name}/ folder (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); reinstall otel-tdd or run from a checkout"
    )
