"""Database URLs: the one place connection settings come from.

A store is opened from a URL plus explicit keyword arguments, nothing else. Accepted forms:

- ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite://`` or
  ``sqlite:///:memory:`` (in-memory, one connection). Query parameters ``mode`` (``ro``,
  ``rw``, ``rwc``) and ``cache`` (``shared``, ``private``) are passed to SQLite as a URI.
- ``postgresql://user:password@host:port/database?…`` (also ``postgres://``), or with
  several hosts ``postgresql://user@h1:p1,h2:p2/database?target_session_attrs=read-write``
  (libpq's multi-host form: each connection goes to the first host that is the primary,
  so a replica follows a failover). Query parameters: ``sslmode`` (disable … verify-full),
  ``target_session_attrs`` (any, primary, standby, read-write, read-only, prefer-standby),
  ``connect_timeout`` (seconds), ``options`` (libpq form, e.g. ``-c search_path=tenant``),
  ``read_from=standby`` (reads go to a standby of these hosts, see below), ``read_wait``
  (seconds, see below), and any other parameter is a server setting for every connection
  (``search_path=tenant``, ``application_name=x``).
- Standby reads (PostgreSQL): a read URL (keyword ``read_url=`` or ``SESSIONKEEPER_READ_URL``),
  or ``read_from=standby`` (the same hosts with ``target_session_attrs=prefer-standby``),
  sends listings, searches, gets and windows to a standby. Writes never go there. A read
  that follows a write of the same store waits up to ``read_wait`` seconds (default 0.5)
  for the standby to replay it, else reads from the primary (``postgres_reads.py``).
- The SQLAlchemy async forms ``sqlite+aiosqlite://`` and ``postgresql+asyncpg://`` are
  read as the plain ones, so URLs written for earlier versions keep working.

Parsing uses the standard library only: opening a store must not import SQLAlchemy.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from sessionkeeper.errors import InvalidInput

DEFAULT_TIMEOUT_S = 10.0
TIMEOUT_ENV = "SESSIONKEEPER_DB_TIMEOUT"
READ_URL_ENV = "SESSIONKEEPER_READ_URL"
DEFAULT_READ_WAIT_S = 0.5
READ_FROM = ("primary", "standby")
MAX_TIMEOUT_S = 3600.0

_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}
_PG_SCHEMES = {"postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg"}
_SQLITE_PARAMS = {"mode": {"ro", "rw", "rwc", "memory"}, "cache": {"shared", "private"}}
_PG_CLIENT_PARAMS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "target_session_attrs"}


@dataclass(slots=True)
class DatabaseConfig:
    """Everything a backend needs to connect, derived from one URL (+ keyword arguments)."""

    dialect: str  # "sqlite" | "postgresql"
    url: str  # as given, for messages (see ``masked``)
    timeout: float = DEFAULT_TIMEOUT_S
    # SQLite
    path: Path | None = None  # None: in memory
    sqlite_params: dict[str, str] = field(default_factory=dict)
    # PostgreSQL: a libpq DSN without the server settings, which go separately
    dsn: str = ""
    server_settings: dict[str, str] = field(default_factory=dict)
    connect_timeout: float | None = None
    connect_kwargs: dict[str, Any] = field(default_factory=dict)
    # PostgreSQL standby reads: the DSN reads go to ("": reads stay on ``dsn``) and how long
    # a read waits for that standby to replay this store's last write
    read_dsn: str = ""
    read_wait: float = DEFAULT_READ_WAIT_S

    @property
    def memory(self) -> bool:
        return self.dialect == "sqlite" and self.path is None

    def sqlite_uri(self) -> str:
        """The ``file:`` URI sqlite3 opens (``uri=True``)."""
        assert self.path is not None
        query = f"?{urlencode(self.sqlite_params)}" if self.sqlite_params else ""
        return f"file:{quote(str(self.path))}{query}"


def timeout_from_env(environ: dict[str, str] | None = None) -> float:
    import os

    raw = (environ if environ is not None else os.environ).get(TIMEOUT_ENV)
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= MAX_TIMEOUT_S:
        raise InvalidInput(f"{TIMEOUT_ENV} must be between 0 and 3600 seconds, got {raw!r}")
    return value


def parse(url: str, *, timeout: float | None = None, **kwargs: Any) -> DatabaseConfig:
    """A ``DatabaseConfig`` from a URL and explicit keyword arguments.

    PostgreSQL keyword arguments go to the driver's connect (``server_settings`` merges with
    the URL's; ``connect_args={...}``, the SQLAlchemy spelling, is accepted too).
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidInput(f"not a database URL: {url!r} (use sqlite:///path or postgresql://…)")
    if timeout is None:
        timeout = timeout_from_env()
    elif (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_S
    ):
        raise InvalidInput(
            f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, "
            f"got {timeout!r}",
            field="timeout",
        )
    scheme = url.split("://", 1)[0].lower()
    read_url = kwargs.pop("read_url", None)
    if read_url is None:
        import os

        read_url = os.environ.get(READ_URL_ENV) or None
    if scheme in _SQLITE_SCHEMES:
        if kwargs:
            raise InvalidInput(f"unknown SQLite options: {', '.join(sorted(kwargs))}")
        if read_url:
            raise InvalidInput(
                f"a read URL (read_url=, {READ_URL_ENV}) needs PostgreSQL: SQLite has no standbys",
                field="read_url",
            )
        return _parse_sqlite(url, float(timeout))
    if scheme in _PG_SCHEMES:
        cfg = _parse_postgres(url, float(timeout), kwargs)
        if read_url is not None:
            if not isinstance(read_url, str) or read_url.split("://", 1)[0].lower() not in (
                _PG_SCHEMES
            ):
                raise InvalidInput(
                    f"the read URL must be a postgresql:// URL, got {masked(str(read_url))!r}",
                    field="read_url",
                )
            cfg.read_dsn = _parse_postgres(read_url, float(timeout), {}).dsn
        return cfg
    raise InvalidInput(
        f"unsupported database {scheme!r}: use sqlite:///path or postgresql://user@host/db"
    )


def _parse_sqlite(url: str, timeout: float) -> DatabaseConfig:
    rest = url.split("://", 1)[1]
    path_part, _, query = rest.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    for key, value in params.items():
        allowed = _SQLITE_PARAMS.get(key)
        if allowed is None:
            raise InvalidInput(f"unknown SQLite URL parameter {key!r} (known: mode, cache)")
        if value not in allowed:
            raise InvalidInput(
                f"SQLite URL parameter {key}={value!r}: use one of {sorted(allowed)}"
            )
    if path_part in ("", "/", "/:memory:") or params.get("mode") == "memory":
        return DatabaseConfig("sqlite", url, timeout, None, {})
    if not path_part.startswith("/"):
        raise InvalidInput(
            f"not a SQLite URL: {url!r} (use sqlite:///relative.db or sqlite:////abs)"
        )
    # sqlite:///rel.db → "rel.db"; sqlite:////abs.db → "/abs.db" (SQLAlchemy's reading).
    path = Path(unquote(path_part[1:])).expanduser()
    return DatabaseConfig("sqlite", url, timeout, path, params)


def _options_settings(options: str) -> dict[str, str]:
    """libpq ``options`` (``-c a=b -c c=d`` or ``--a=b``) → server settings."""
    settings: dict[str, str] = {}
    words = shlex.split(options)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-c" and i + 1 < len(words):
            word, i = words[i + 1], i + 1
        elif word.startswith("-c") or word.startswith("--"):
            word = word[2:]
        else:
            raise InvalidInput(f"cannot read options={options!r}: use '-c name=value'")
        name, sep, value = word.partition("=")
        if not sep:
            raise InvalidInput(f"cannot read options={options!r}: use '-c name=value'")
        settings[name.replace("-", "_")] = value
        i += 1
    return settings


def _parse_postgres(url: str, timeout: float, kwargs: dict[str, Any]) -> DatabaseConfig:
    parts = urlsplit(url)
    settings: dict[str, str] = {}
    client: list[tuple[str, str]] = []
    connect_timeout: float | None = None
    read_from = "primary"
    read_wait = DEFAULT_READ_WAIT_S
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _PG_CLIENT_PARAMS:
            client.append((key, value))
        elif key == "read_from":
            if value not in READ_FROM:
                raise InvalidInput(
                    f"read_from must be one of {', '.join(READ_FROM)}, got {value!r}",
                    field="read_from",
                )
            read_from = value
        elif key == "read_wait":
            try:
                read_wait = float(value)
            except ValueError:
                read_wait = -1.0
            if not 0 <= read_wait <= MAX_TIMEOUT_S:
                raise InvalidInput(
                    f"read_wait must be seconds from 0 to {MAX_TIMEOUT_S:g}, got {value!r}",
                    field="read_wait",
                )
        elif key == "connect_timeout":
            try:
                connect_timeout = float(value)
            except ValueError:
                raise InvalidInput(f"connect_timeout must be seconds, got {value!r}") from None
        elif key == "options":
            settings.update(_options_settings(value))
        else:
            settings[key] = value
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(client), ""))
    read_dsn = ""
    if read_from == "standby":  # the same hosts, a standby first (the primary if none is up)
        attrs = [(k, v) for k, v in client if k != "target_session_attrs"]
        attrs.append(("target_session_attrs", "prefer-standby"))
        read_dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(attrs), ""))
    connect_kwargs = dict(kwargs)
    connect_args = connect_kwargs.pop("connect_args", None) or {}
    connect_kwargs = {**connect_args, **connect_kwargs}
    extra = connect_kwargs.pop("server_settings", None) or {}
    settings.update({str(k): str(v) for k, v in extra.items()})
    if "timeout" in connect_kwargs:
        connect_timeout = float(connect_kwargs.pop("timeout"))
    return DatabaseConfig(
        "postgresql",
        url,
        timeout,
        dsn=dsn,
        server_settings=settings,
        connect_timeout=connect_timeout,
        connect_kwargs=connect_kwargs,
        read_dsn=read_dsn,
        read_wait=read_wait,
    )


def masked(url: str) -> str:
    """A database URL fit to print or log: the password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    # host[:port] as written: a multi-host URL (h1:p1,h2:p2) has no single port to parse
    netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def from_engine(engine: Any, *, timeout: float | None = None) -> DatabaseConfig:  # noqa: ASYNC109
    """The settings of a SQLAlchemy ``AsyncEngine``'s connections, as a ``DatabaseConfig``.

    The URL gives the database; on PostgreSQL one connection through the engine tells the
    server settings its connections were opened with (``search_path`` from ``connect_args``,
    say), so the store's own connections match the caller's exactly.
    """
    url = engine.url
    rendered = url.render_as_string(hide_password=False)
    if url.get_backend_name() != "postgresql":
        return parse(rendered, timeout=timeout)
    async with engine.connect() as conn:
        rows = (
            await conn.exec_driver_sql(
                "SELECT name, setting FROM pg_settings WHERE source = 'client' "
                "AND name NOT IN ('client_encoding', 'DateStyle', 'TimeZone')"
            )
        ).all()
        ssl = (
            await conn.exec_driver_sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ).scalar()
    config = parse(rendered, timeout=timeout)
    config.server_settings = {str(n): str(v) for n, v in rows} | config.server_settings
    if ssl and "sslmode" not in config.dsn:
        config.connect_kwargs.setdefault("ssl", "require")
    return config
