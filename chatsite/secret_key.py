"""The secret key kept in the data directory when none is given in the environment."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key


def load_or_create_secret_key(path: Path) -> str:
    """Read the key at ``path``; on first run, write a new random one readable by its owner only.

    The key is written to a private temporary file and then linked into place, so a worker
    starting at the same moment sees either no file or the whole key, never a half-written one.
    """
    if not path.exists():
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret_key-")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(get_random_secret_key() + "\n")
            os.link(temporary, path)
        except FileExistsError:
            pass  # another worker won the race; its key is the one to use
        finally:
            os.unlink(temporary)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ImproperlyConfigured(
            f"{path} is empty: delete it to have a new key made, or set DJANGO_SECRET_KEY"
        )
    return key
