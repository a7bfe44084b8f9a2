"""Config trees for tests: write files under a temp dir."""

from __future__ import annotations

from pathlib import Path


def write(root: Path, files: dict[str, str]) -> str:
    """Write each relative path's text under `root` (making directories); return `root`."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root)
