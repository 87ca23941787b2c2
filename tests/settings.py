"""The site's own settings, pointed at a throw-away data directory, plus what makes tests fast."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Never touch a developer's real data directory or database.
_data_dir = Path(tempfile.mkdtemp(prefix="chat-test-data-"))
atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)
os.environ["DATA_DIR"] = str(_data_dir)
os.environ["STATIC_ROOT"] = str(_data_dir / "static")
(_data_dir / "static").mkdir()

from chatsite.settings import *  # noqa: E402, F403
from chatsite.settings import DATABASES, STORAGES  # noqa: E402

# In-process requests render templates without a collectstatic run; the browser tests serve
# the collected, hashed files through the real settings (tests/live_server.py).
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# A file, not memory, so the daphne process of the browser tests shares the test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(_data_dir / "test.sqlite3")}

# Fast hashing for the many users tests create; the browser tests hash with the real hasher.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
