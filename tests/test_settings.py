"""Settings come from the environment; bad values stop start-up with one clear line."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ollama._client import _parse_host

from chatsite.env import (
    ConfigError,
    env_allowed_hosts,
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_list,
    env_ollama_host,
    env_origins,
    env_redis_url,
    env_time_zone,
    parse_ollama_host,
)
from chatsite.secret_key import load_or_create_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_env_bool_reads_the_usual_words(text: str, expected: bool) -> None:
    assert env_bool("DJANGO_DEBUG", not expected, environ={"DJANGO_DEBUG": text}) is expected


@pytest.mark.parametrize("environ", [{}, {"DJANGO_DEBUG": ""}, {"DJANGO_DEBUG": "  "}])
def test_env_bool_falls_back_to_the_default_when_unset_or_empty(environ: dict[str, str]) -> None:
    assert env_bool("DJANGO_DEBUG", True, environ=environ) is True
    assert env_bool("DJANGO_DEBUG", False, environ=environ) is False


def test_env_bool_rejects_a_word_it_does_not_know_and_names_the_variable() -> None:
    with pytest.raises(ConfigError) as error:
        env_bool("DJANGO_DEBUG", False, environ={"DJANGO_DEBUG": "maybe"})
    assert str(error.value) == (
        "DJANGO_DEBUG: expected 1/0, true/false, yes/no or on/off, got 'maybe'"
    )


def test_env_int_reads_numbers_and_checks_bounds() -> None:
    assert env_int("N", 5, environ={"N": "12"}) == 12
    assert env_int("N", 5, environ={}) == 5
    with pytest.raises(ConfigError, match="^N: expected a whole number, got '1.5'$"):
        env_int("N", 5, environ={"N": "1.5"})
    with pytest.raises(ConfigError, match="^N: must be at least 0, got -1$"):
        env_int("N", 5, minimum=0, environ={"N": "-1"})
    with pytest.raises(ConfigError, match="^N: must be at most 10, got 11$"):
        env_int("N", 5, maximum=10, environ={"N": "11"})


def test_env_list_splits_on_commas_and_drops_blanks() -> None:
    assert env_list("L", ["x"], environ={"L": " a, b ,,c "}) == ["a", "b", "c"]
    assert env_list("L", ["x"], environ={}) == ["x"]


def test_allowed_hosts_take_names_addresses_and_wildcards() -> None:
    hosts = "chat.example.com,.example.org,10.0.0.5,[::1],localhost,*"
    assert env_allowed_hosts("H", [], environ={"H": hosts}) == hosts.split(",")


@pytest.mark.parametrize("bad", ["https://chat.example.com", "chat.example.com:8000", "a/b"])
def test_allowed_hosts_reject_urls_ports_and_paths(bad: str) -> None:
    with pytest.raises(ConfigError, match="^DJANGO_ALLOWED_HOSTS: expected host names"):
        env_allowed_hosts("DJANGO_ALLOWED_HOSTS", [], environ={"DJANGO_ALLOWED_HOSTS": bad})


def test_trusted_origins_need_a_scheme() -> None:
    good = "https://chat.example.com,http://10.0.0.5:8000"
    assert env_origins("O", environ={"O": good}) == good.split(",")
    with pytest.raises(ConfigError, match="^O: expected origins with a scheme"):
        env_origins("O", environ={"O": "chat.example.com"})


def test_database_url_reads_sqlite_and_postgres() -> None:
    sqlite = env_database("DATABASE_URL", "sqlite:////tmp/x.sqlite3", environ={})
    assert sqlite["ENGINE"] == "django.db.backends.sqlite3"
    assert sqlite["NAME"] == "/tmp/x.sqlite3"
    postgres = env_database(
        "DATABASE_URL", "", environ={"DATABASE_URL": "postgres://chat:s%40cret@db:5433/chat"}
    )
    assert postgres["ENGINE"] == "django.db.backends.postgresql"
    assert (postgres["USER"], postgres["PASSWORD"], postgres["HOST"], postgres["PORT"]) == (
        "chat",
        "s@cret",
        "db",
        5433,
    )


@pytest.mark.parametrize(
    "bad", ["not a url", "mysql://u:p@h/db", "postgres://u:p@h:notaport/db", "postgres://h"]
)
def test_a_malformed_database_url_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="^DATABASE_URL: "):
        env_database("DATABASE_URL", "", environ={"DATABASE_URL": bad})


def test_redis_url_is_optional_and_checked() -> None:
    assert env_redis_url("REDIS_URL", environ={}) is None
    assert env_redis_url("REDIS_URL", environ={"REDIS_URL": "redis://127.0.0.1:6379/1"}) == (
        "redis://127.0.0.1:6379/1"
    )
    for bad in ["127.0.0.1:6379", "redis://", "redis://h:port/0"]:
        with pytest.raises(ConfigError, match="^REDIS_URL: "):
            env_redis_url("REDIS_URL", environ={"REDIS_URL": bad})


def test_choice_and_time_zone_are_checked() -> None:
    assert env_choice("LOG_LEVEL", "INFO", ["DEBUG", "INFO"], environ={"LOG_LEVEL": "debug"}) == (
        "DEBUG"
    )
    with pytest.raises(ConfigError, match="^LOG_LEVEL: expected one of DEBUG, INFO, got 'loud'$"):
        env_choice("LOG_LEVEL", "INFO", ["DEBUG", "INFO"], environ={"LOG_LEVEL": "loud"})
    assert env_time_zone("TIME_ZONE", "UTC", environ={"TIME_ZONE": "Europe/Berlin"}) == (
        "Europe/Berlin"
    )
    with pytest.raises(ConfigError, match="^TIME_ZONE: "):
        env_time_zone("TIME_ZONE", "UTC", environ={"TIME_ZONE": "Mars/Olympus"})


# The cases the official client documents for its own parser, which is our oracle.
OLLAMA_HOSTS = [
    None,
    "",
    "1.2.3.4",
    ":56789",
    "1.2.3.4:56789",
    "http://1.2.3.4",
    "https://1.2.3.4",
    "https://1.2.3.4:56789",
    "example.com",
    "example.com:56789",
    "http://example.com",
    "https://example.com",
    "https://example.com:56789",
    "example.com/",
    "example.com:56789/",
    "example.com/path",
    "example.com:56789/path",
    "https://example.com:56789/path",
    "example.com:56789/path/",
    "[0001:002:003:0004::1]",
    "[0001:002:003:0004::1]:56789",
    "http://[0001:002:003:0004::1]",
    "https://[0001:002:003:0004::1]",
    "https://[0001:002:003:0004::1]:56789",
    "[0001:002:003:0004::1]/",
    "[0001:002:003:0004::1]:56789/",
    "[0001:002:003:0004::1]/path",
    "[0001:002:003:0004::1]:56789/path",
    "https://[0001:002:003:0004::1]:56789/path",
    "[0001:002:003:0004::1]:56789/path/",
]


@pytest.mark.parametrize("host", OLLAMA_HOSTS)
def test_ollama_host_is_parsed_as_the_official_client_does(host: str | None) -> None:
    assert parse_ollama_host(host) == _parse_host(host)


def test_a_bare_ipv6_ollama_host_gets_brackets() -> None:
    assert parse_ollama_host("::1") == "http://[::1]:11434"


@pytest.mark.parametrize("bad", ["ftp://host", "host:99999", "host:abc", "[::1", "bad host"])
def test_an_unusable_ollama_host_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="^OLLAMA_HOST: "):
        env_ollama_host("OLLAMA_HOST", environ={"OLLAMA_HOST": bad})


def test_a_new_secret_key_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    key = load_or_create_secret_key(path)
    assert len(key) >= 50
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret_key(path) == key
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_an_empty_secret_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    path.write_text("\n")
    with pytest.raises(Exception, match="is empty"):
        load_or_create_secret_key(path)


# --- The real settings module, loaded in a fresh process with a given environment. ---


def run_python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("REDIS_URL", None)
    clean.pop("OLLAMA_HOST", None)
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        cwd=BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def load_settings(env: dict[str, str]) -> dict[str, object]:
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'DEBUG': s.DEBUG, 'DATABASES': s.DATABASES, 'CHANNEL_LAYERS': s.CHANNEL_LAYERS,"
        "'SECRET_KEY': s.SECRET_KEY, 'ALLOWED_HOSTS': s.ALLOWED_HOSTS,"
        "'OLLAMA_BASE_URL': s.OLLAMA_BASE_URL, 'SECURE_SSL_REDIRECT': s.SECURE_SSL_REDIRECT,"
        "'MEDIA_ROOT': str(s.MEDIA_ROOT)}, default=str))"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_the_defaults_run_on_one_machine_with_nothing_installed(tmp_path: Path) -> None:
    loaded = load_settings({"DATA_DIR": str(tmp_path)})

    assert loaded["DEBUG"] is False
    database = loaded["DATABASES"]["default"]  # type: ignore[index]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(tmp_path / "db.sqlite3")
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    assert database["OPTIONS"]["timeout"] > 0
    # In memory, in the one process: channels' layer with a cheaper sweep.
    assert loaded["CHANNEL_LAYERS"]["default"]["BACKEND"] == (  # type: ignore[index]
        "conversations.channel_layer.LocalChannelLayer"
    )
    assert loaded["OLLAMA_BASE_URL"] == "http://127.0.0.1:11434"
    assert loaded["MEDIA_ROOT"] == str(tmp_path / "media")
    key_file = tmp_path / "secret_key"
    assert loaded["SECRET_KEY"] == key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The same key on the next start, so sessions survive a restart.
    assert load_settings({"DATA_DIR": str(tmp_path)})["SECRET_KEY"] == loaded["SECRET_KEY"]


def test_the_environment_moves_the_site_to_postgres_and_redis(tmp_path: Path) -> None:
    loaded = load_settings(
        {
            "DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://chat@127.0.0.1:5432/chat",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "DJANGO_SECRET_KEY": "k" * 50,
            "DJANGO_ALLOWED_HOSTS": "chat.example.com",
            "OLLAMA_HOST": "gpu-box:11434",
            "DJANGO_HTTPS": "1",
        }
    )
    assert loaded["DATABASES"]["default"]["ENGINE"] == "django.db.backends.postgresql"  # type: ignore[index]
    assert loaded["CHANNEL_LAYERS"]["default"]["BACKEND"] == (  # type: ignore[index]
        "channels_redis.core.RedisChannelLayer"
    )
    assert loaded["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"] == [  # type: ignore[index]
        "redis://127.0.0.1:6379/0"
    ]
    assert loaded["SECRET_KEY"] == "k" * 50
    assert not (tmp_path / "secret_key").exists()
    assert loaded["ALLOWED_HOSTS"] == ["chat.example.com"]
    assert loaded["OLLAMA_BASE_URL"] == "http://gpu-box:11434"
    assert loaded["SECURE_SSL_REDIRECT"] is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("DATABASE_URL", "postgres//missing-colon"),
        ("REDIS_URL", "localhost:6379"),
        ("OLLAMA_HOST", "ftp://ollama"),
        ("DJANGO_ALLOWED_HOSTS", "https://chat.example.com"),
        ("CSRF_TRUSTED_ORIGINS", "chat.example.com"),
        ("DJANGO_HSTS_SECONDS", "a year"),
    ],
)
def test_a_bad_value_stops_start_up_with_one_line_naming_it(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = run_python("", {"DATA_DIR": str(tmp_path), variable: value}, "manage.py", "check")

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Configuration error: {variable}: ")


def test_daphne_refuses_to_start_on_a_bad_value_with_the_same_line(tmp_path: Path) -> None:
    result = run_python(
        "",
        {"DATA_DIR": str(tmp_path), "DJANGO_DEBUG": "maybe"},
        "-m",
        "daphne",
        "chatsite.asgi:application",
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Configuration error: DJANGO_DEBUG: expected 1/0, true/false, yes/no or on/off, got 'maybe'"
    ]


def deploy_check_warnings(tmp_path: Path, extra: dict[str, str]) -> set[str]:
    env = {
        "DATA_DIR": str(tmp_path),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48)[:50],
        **extra,
    }
    result = run_python("", env, "manage.py", "check", "--deploy", "--fail-level", "CRITICAL")
    assert result.returncode == 0, result.stderr
    return set(__import__("re").findall(r"\(([a-z_]+\.[EW]\d{3})\)", result.stderr))


def test_check_deploy_is_clean_with_https_on(tmp_path: Path) -> None:
    assert deploy_check_warnings(tmp_path, {"DJANGO_HTTPS": "1"}) <= {
        "security.W005",
        "security.W021",
    }


def test_check_deploy_reports_only_what_the_deployment_guide_explains(tmp_path: Path) -> None:
    guide = (BASE_DIR / "docs" / "deployment.md").read_text()
    for extra in ({}, {"DJANGO_HTTPS": "1"}):
        for warning in deploy_check_warnings(tmp_path, extra):
            assert warning in guide, f"{warning} is not explained in docs/deployment.md"
    # Plain HTTP on an intranet gives the cookie and redirect warnings, which the guide covers.
    assert {"security.W008", "security.W012", "security.W016"} <= deploy_check_warnings(
        tmp_path, {}
    )
