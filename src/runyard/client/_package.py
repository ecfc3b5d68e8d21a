"""A worker package as the ZIP that ``POST /workers/{workerId}/versions`` takes."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

#: Never part of a package: caches, virtualenvs and version control.
SKIPPED = frozenset({"__pycache__", ".git", ".hg", ".venv", "venv", ".mypy_cache", ".pytest_cache"})


def _kept(file: Path) -> bool:
    """Compiled files, local secrets (``.env``…) and links (whose target may lie outside the
    package) are not uploaded."""
    name = file.name
    return not (name.endswith((".pyc", ".pyo")) or name.startswith(".env") or file.is_symlink())


def archive(path: str | os.PathLike[str]) -> bytes:
    """A ``.zip`` file as it is, or a directory zipped with its files at the archive's root."""
    root = Path(path)
    if root.is_file():
        if not zipfile.is_zipfile(root):
            raise ValueError(f"{root} is neither a directory nor a ZIP file")
        try:
            with zipfile.ZipFile(root) as zf:
                broken = zf.testzip()
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{root}: {exc}") from None
        if broken is not None:
            raise ValueError(f"{root}: {broken} is damaged (bad CRC)")
        return root.read_bytes()
    if not (root / "main.py").is_file():
        raise ValueError(f"{root} is not a worker package: it has no main.py")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIPPED and not Path(dirpath, d).is_symlink()
            )
            for name in sorted(filenames):
                file = Path(dirpath) / name
                if _kept(file):
                    zf.write(file, file.relative_to(root).as_posix())
    return buffer.getvalue()


def slug_of(path: str | os.PathLike[str]) -> str:
    """The slug a package names itself in ``worker.json``, else its directory's name (a ZIP's
    file name without ``.zip``). In a ZIP, ``worker.json`` is read where the server reads it:
    at the root, or in the one directory holding every entry."""
    root = Path(path)
    if root.is_file():
        text = _zipped_manifest(root)
    else:
        manifest = root / "worker.json"
        text = manifest.read_bytes() if manifest.is_file() else None
    if text is not None:
        try:
            meta = json.loads(text)
        except ValueError as exc:  # a JSON error, or bytes that are not UTF-8
            raise ValueError(f"{path}: worker.json is not valid JSON: {exc}") from None
        slug = meta.get("slug") if isinstance(meta, dict) else None
        if isinstance(slug, str) and slug:
            return slug
    return root.stem if root.is_file() else root.resolve().name


def _zipped_manifest(path: Path) -> bytes | None:
    if not zipfile.is_zipfile(path):
        return None  # ``archive`` says what is wrong with it
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.strip("/")]
            tops = {n.split("/", 1)[0] for n in names}
            prefix = f"{tops.pop()}/" if len(tops) == 1 and any("/" in n for n in names) else ""
            manifest = prefix + "worker.json"
            return zf.read(manifest) if manifest in names else None
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: {exc}") from None
