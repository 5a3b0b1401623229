"""The demo's SECRET_KEY: DEMO_SECRET_KEY, else a random key made once and kept in the var
directory (``secret-key``, mode 0600), so no key is ever written in the source and sessions
survive restarts of `make up`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE_NAME = "secret-key"


def secret_key(var_dir: Path) -> str:
    """DEMO_SECRET_KEY, or the key kept in ``var_dir`` (made on first use)."""
    given = os.environ.get("DEMO_SECRET_KEY", "").strip()
    if given:
        return given
    path = var_dir / FILE_NAME
    if not path.exists():
        _create(path)
    return path.read_text().strip()


def _create(path: Path) -> None:
    # Written aside then linked into place: gunicorn's workers may start together, and a
    # reader must never see a half-written key, nor two processes keep different ones.
    path.parent.mkdir(parents=True, exist_ok=True)
    spare = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_urlsafe(50).encode())
    finally:
        os.close(fd)
    try:
        os.link(spare, path)
    except FileExistsError:
        pass  # another process was first: its key is the one
    finally:
        spare.unlink()
