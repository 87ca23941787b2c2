"""Typed readers for the environment variables that configure the site.

Each reader returns a Python value or raises ``ConfigError`` with one line that names the
variable, says what it expected and repeats what it got, so a bad deployment fails at start-up
instead of half-working.
"""

from __future__ import annotations

import ipaddress
import os
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

DEFAULT_OLLAMA_PORT = 11434


class ConfigError(ImproperlyConfigured):
    """A configuration value from the environment is unusable."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        super().__init__(f"{name}: {problem}")


def _raw(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value with surrounding blanks removed; unset and empty both mean 'not set'."""
    value = environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_str(name: str, default: str, *, environ: Mapping[str, str] = os.environ) -> str:
    value = _raw(environ, name)
    return default if value is None else value


def env_optional_str(name: str, *, environ: Mapping[str, str] = os.environ) -> str | None:
    return _raw(environ, name)


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] = os.environ) -> bool:
    value = _raw(environ, name)
    if value is None:
        return default
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(name, f"expected 1/0, true/false, yes/no or on/off, got {value!r}")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> int:
    value = _raw(environ, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(name, f"expected a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {number}")
    return number


def env_choice(
    name: str, default: str, choices: Iterable[str], *, environ: Mapping[str, str] = os.environ
) -> str:
    """One of a fixed set of words, compared without regard to case."""
    allowed = {choice.upper(): choice for choice in choices}
    value = _raw(environ, name)
    if value is None:
        return default
    if value.upper() not in allowed:
        raise ConfigError(name, f"expected one of {', '.join(allowed.values())}, got {value!r}")
    return allowed[value.upper()]


def env_time_zone(name: str, default: str, *, environ: Mapping[str, str] = os.environ) -> str:
    value = _raw(environ, name)
    if value is None:
        return default
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            name, f"expected a time zone name like Europe/Berlin, got {value!r}"
        ) from None
    return value


def env_list(
    name: str, default: list[str], *, environ: Mapping[str, str] = os.environ
) -> list[str]:
    """A comma-separated list; blanks around items and empty items are dropped."""
    value = _raw(environ, name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path, *, environ: Mapping[str, str] = os.environ) -> Path:
    value = _raw(environ, name)
    path = default if value is None else Path(value).expanduser()
    return path.resolve()


_HOST_PATTERN = re.compile(r"^(\.?[a-z0-9-]+(\.[a-z0-9-]+)*\.?|\*|\[[0-9a-f:.]+\])$", re.I)


def env_allowed_hosts(
    name: str, default: list[str], *, environ: Mapping[str, str] = os.environ
) -> list[str]:
    """Host names as Django's ALLOWED_HOSTS wants them: no scheme, no port, no path."""
    hosts = env_list(name, default, environ=environ)
    for host in hosts:
        if not _HOST_PATTERN.match(host) and not _is_ip(host):
            raise ConfigError(
                name,
                f"expected host names separated by commas (like chat.example.com), got {host!r}",
            )
    return hosts


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def env_origins(name: str, *, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Origins as CSRF_TRUSTED_ORIGINS wants them: scheme and host, e.g. https://chat.example.com."""
    origins = env_list(name, [], environ=environ)
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
            raise ConfigError(
                name,
                "expected origins with a scheme separated by commas "
                f"(like https://chat.example.com), got {origin!r}",
            )
    return origins


def env_database(
    name: str, default_url: str, *, environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    value = _raw(environ, name)
    url = default_url if value is None else value
    scheme = urlsplit(url).scheme
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ConfigError(
            name,
            "expected sqlite:///path/to/db.sqlite3 or postgres://user:password@host:port/name, "
            f"got {url!r}",
        )
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url))
    except (ValueError, KeyError) as exc:
        raise ConfigError(name, f"cannot read {url!r}: {exc}") from None
    if not config.get("NAME"):
        raise ConfigError(name, f"the URL names no database: {url!r}")
    return config


def env_redis_url(name: str, *, environ: Mapping[str, str] = os.environ) -> str | None:
    value = _raw(environ, name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(
            name, f"expected redis://host:port/db, rediss://… or unix:///path, got {value!r}"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(name, f"the URL names no host: {value!r}")
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        raise ConfigError(name, f"the port is not a number from 0 to 65535: {value!r}") from None
    return value


def parse_ollama_host(value: str | None) -> str:
    """Turn an OLLAMA_HOST value into a base URL, by the rules of the official Python client.

    No scheme means http and port 11434; an explicit http:// without a port means 80 and
    https:// means 443; ``:5678`` is a port on 127.0.0.1; a bare IPv6 address gets brackets; a
    path is kept without its trailing slash. Raises ValueError for what cannot be a host.
    """
    host = (value or "").strip() or f"127.0.0.1:{DEFAULT_OLLAMA_PORT}"
    scheme, _, hostport = host.partition("://")
    if not hostport:
        scheme, hostport = "http", host
    elif scheme not in {"http", "https"}:
        raise ValueError(f"the scheme must be http or https, got {scheme!r}")
    default_port = {"http": 80, "https": 443}[scheme] if "://" in host else DEFAULT_OLLAMA_PORT

    hostport, slash, path = hostport.partition("/")
    path = (slash + path).rstrip("/")

    if hostport.startswith("["):
        address, bracket, rest = hostport[1:].partition("]")
        if not bracket:
            raise ValueError(f"an IPv6 address is missing its closing bracket: {value!r}")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected text after the IPv6 address: {value!r}")
        hostname = f"[{address}]"
    elif hostport.count(":") > 1:
        # A bare IPv6 address: the whole thing is the address, with no port.
        hostname, port_text = f"[{hostport}]", ""
    else:
        hostname, _, port_text = hostport.partition(":")
        hostname = hostname or "127.0.0.1"

    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"the port must be a number from 1 to 65535, got {port_text!r}")
        port = int(port_text)
    else:
        port = default_port
    if not re.fullmatch(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.%a-z0-9]+\]", hostname):
        raise ValueError(f"not a host name or address: {hostname!r}")
    return f"{scheme}://{hostname}:{port}{path}"


def env_ollama_host(name: str, *, environ: Mapping[str, str] = os.environ) -> str:
    try:
        return parse_ollama_host(_raw(environ, name))
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None
