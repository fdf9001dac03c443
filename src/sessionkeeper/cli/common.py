"""What every CLI command shares: the database choice, running the async Store, the current session.

Startup speed matters (``sessionkeeper list`` is typed by hand): this module imports nothing
heavy. The Store and its driver, Settings (pydantic), tiktoken, httpx, FastAPI and Alembic are
imported inside the commands that need them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple, TypeVar

import typer

from sessionkeeper.cli import output
from sessionkeeper.cli.state import CurrentSession
from sessionkeeper.errors import Conflict, InvalidInput, NotFound
from sessionkeeper.paths import default_database_url

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.config import Settings
    from sessionkeeper.models import Session

T = TypeVar("T")

DATABASE_ENV = "SESSIONKEEPER_DATABASE_URL"
ENCODING_ENV = "SESSIONKEEPER_ENCODING"

JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print JSON (stable shapes) instead of tables.",
        callback=output.set_json,
    ),
]


UserOpt = Annotated[
    str | None,
    typer.Option("--user", "-u", metavar="USER", help="Only this user's sessions."),
]
NewUserOpt = Annotated[
    str | None,
    typer.Option(
        "--user", "-u", metavar="USER", help="The user of a session this creates (default: none)."
    ),
]
MetaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--meta",
        "-m",
        metavar="KEY=VALUE",
        help="Only sessions whose metadata has KEY equal to VALUE (repeatable: all must "
        "match). VALUE is read as JSON when it parses as JSON (1, 1.5, true, null; "
        "'\"1\"' is the string 1), else as a string: --meta team=red --meta priority=1.",
    ),
]


def parse_meta(pairs: list[str] | None) -> dict[str, object] | None:
    """``--meta KEY=VALUE`` options → a metadata filter (None when there are none). VALUE is
    JSON when it parses as JSON, else the text itself; the Store checks the rest."""
    if not pairs:
        return None
    import json

    found: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--meta {pair!r}: use KEY=VALUE, e.g. team=red", field="metadata")
        if key in found:
            raise InvalidInput(f"--meta gives the key {key!r} twice", field="metadata")
        try:
            found[key] = json.loads(text)
        except ValueError:
            found[key] = text
    return found


class _Globals:
    """Global options (``--db``), accepted before or after the command."""

    db: str | None = None


options = _Globals()


def set_db(value: str | None) -> str | None:
    """Callback of every ``--db`` option: the last one given wins."""
    if value is not None:
        options.db = value
    return value


def database_url() -> str:
    """``--db``, else ``$SESSIONKEEPER_DATABASE_URL``, else SQLite in the user data dir.

    Read without building ``Settings`` (pydantic-settings costs ~0.3 s of startup); the
    variable is the one ``Settings.database_url`` reads.
    """
    return options.db or os.environ.get(DATABASE_ENV) or default_database_url()


def database_configured() -> bool:
    """True when a database was chosen explicitly (``--db`` or the environment)."""
    return bool(options.db or os.environ.get(DATABASE_ENV))


def _url_origin() -> str:
    return "--db" if options.db else f"${DATABASE_ENV}"


def check_database(url: str | None = None, *, create: bool = False) -> str:
    """The database URL, checked before any store is opened on it.

    A URL that cannot be parsed is refused naming where it came from (``--db`` or the
    environment). The SQLite rule (README, "Database URLs"), the same for the default
    database in the user data dir as for ``--db`` and the environment, and the same as the
    library's: what stores something creates the database. The commands that store
    something (``create=True``: new, add, ask, chat, import, keys create, db upgrade,
    serve) open a missing SQLite file as ``Store.open`` does, creating it and its directory;
    every other command reads or changes what exists, so a missing file is "no database at
    PATH" and nothing is created (a typo must not leave an empty database behind). A URL
    with ``?mode=ro`` or ``?mode=rw`` never creates.
    """
    from sessionkeeper.store.url import masked, parse

    url = url or database_url()
    explicit = database_configured() and url == database_url()
    try:
        config = parse(url)
    except InvalidInput as exc:
        if not explicit:
            raise
        raise InvalidInput(
            f"{_url_origin()} {masked(url)!r}: {exc.message}", field="database_url"
        ) from None
    if config.dialect != "sqlite" or config.path is None:
        return url
    where = f"{_url_origin()}: " if explicit else ""
    path = config.path if config.path.is_absolute() else Path.cwd() / config.path
    if path.is_dir():
        raise InvalidInput(f"{where}{path} is a directory, not a SQLite database file")
    if path.exists():
        return url
    if create and config.sqlite_params.get("mode") not in ("ro", "rw"):
        nearest = next(parent for parent in path.parents if parent.exists())
        if not nearest.is_dir():
            raise InvalidInput(f"{where}cannot create {path}: {nearest} is not a directory")
        return url  # Store.open creates the file, and its directory if missing
    raise NotFound(
        f"{where}no database at {path}"
        + (
            "; check the path, or create it with `sessionkeeper new`"
            if explicit
            else " yet: `sessionkeeper new`, `add` or `ask` creates it"
        )
    )


def text_arg(text: str) -> str:
    """A message given on the command line; ``-`` reads it from stdin (long or multi-line):
    UTF-8, its bytes read as they are (a leading byte order mark is not content: dropped)."""
    if text != "-":
        return text
    import sys

    from sessionkeeper.inputs import decode_utf8

    return decode_utf8(sys.stdin.buffer.read(), "stdin")


def encoding() -> str:
    return os.environ.get(ENCODING_ENV) or "cl100k_base"


def settings(**overrides: object) -> Settings:
    """Full settings (model server, limits…), with ``--db`` applied; for ask and serve.

    A bad value (an option or a SESSIONKEEPER_* variable) is an InvalidInput naming it.
    """
    from pydantic import ValidationError

    from sessionkeeper.config import Settings

    if options.db:
        overrides.setdefault("database_url", options.db)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            where = (
                f"--{name.replace('_', '-')}"
                if name in overrides
                else f"SESSIONKEEPER_{name.upper()}"
            )
            problems.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
        raise InvalidInput("; ".join(problems), field="settings") from None


def run(
    work: Callable[[Store], Awaitable[T]], *, url: str | None = None, create: bool = False
) -> T:
    """Open the store, run ``work(store)`` on a fresh event loop, close the store.

    The URL is checked first (``check_database``): only commands that create stores pass
    ``create=True``.
    """

    import asyncio

    url = check_database(url, create=create)

    async def main() -> T:
        from sessionkeeper import Store

        store = await Store.open(url, encoding=encoding())
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def interactive() -> bool:
    """True when a person can answer a question (stdin is a terminal)."""
    import sys

    return sys.stdin.isatty()


def confirm(question: str, refusal: str) -> None:
    """Ask ``question`` (on stderr: stdout may be JSON); without a terminal, refuse with
    InvalidInput(``refusal``); a "no" exits with code 1."""
    if not interactive():
        raise InvalidInput(refusal)
    if not typer.confirm(question, err=True):
        raise typer.Exit(1)


def memory() -> CurrentSession:
    return CurrentSession()


def current_id(required: bool = True) -> str | None:
    """The remembered current session of this database."""
    sid = memory().get(database_url())
    if sid is None and required:
        check_database()  # a missing or bad database is the thing to report first
        raise NotFound(
            "no current session for this database: run `sessionkeeper new` or "
            "`sessionkeeper switch ID`"
        )
    return sid


def ended_message(session_id: str) -> str:
    return (
        f"session {session_id} has ended, so nothing more is written to it: "
        f"`sessionkeeper reopen {session_id}` makes it active again, `sessionkeeper new` "
        "starts another"
    )


async def writable(store: Store, session_id: str) -> Session:
    """The session, if messages may be written to it: NotFound if it does not exist,
    Conflict if it has ended (every CLI command that writes messages follows this rule)."""
    session = await store.get_session(session_id)
    if session.status == "ended":
        raise Conflict(ended_message(session_id), session_id=session_id)
    return session


class Target(NamedTuple):
    """A session named on the command line, or the remembered current one."""

    session_id: str
    remembered: bool


def target(session_id: str | None) -> Target:
    if session_id:
        return Target(session_id, False)
    sid = current_id()
    assert sid is not None
    return Target(sid, True)


def gone_message(session_id: str) -> str:
    return (
        f"the current session {session_id} no longer exists (deleted, or removed by the ghost "
        "or prune clean-up), so it is forgotten: `sessionkeeper add` or `ask` starts a new "
        "one, `sessionkeeper new` creates one, `sessionkeeper list` and `switch ID` pick "
        "another"
    )


def note_gone(gone: str, new: str, as_json: bool) -> None:
    """Say that the remembered current session was gone and ``new`` replaced it."""
    text = f"the current session {gone} no longer exists; started a new one: {new}"
    if as_json:
        output.err_console().print(f"note: {text}", markup=False)
    else:
        output.plain(f"Note: {text}")


@contextlib.contextmanager
def current_must_exist(chosen: Target) -> Iterator[None]:
    """Turn "session not found" for the remembered current session into what to do next
    (and forget it); a session named on the command line keeps the plain NotFound."""
    try:
        yield
    except NotFound as exc:
        if not chosen.remembered or chosen.session_id not in exc.message:
            raise
        forget(chosen.session_id)
        raise NotFound(gone_message(chosen.session_id), session_id=chosen.session_id) from None


def remember(session_id: str) -> None:
    memory().set(database_url(), session_id)


def forget(session_id: str) -> None:
    memory().clear(database_url(), session_id)


async def same_user(store: Store, session_id: str, user: str | None) -> None:
    """``--user`` names the user of a session the command creates: writing with it into an
    existing session of another user (or of none) is refused, not silently ignored."""
    if user is None:
        return
    found = (await store.get_session(session_id)).user_id
    if found != user:
        whose = "has no user" if found is None else f"is for user {found!r}"
        raise InvalidInput(
            f"--user {user!r} is the user of a new session, but session {session_id} {whose}",
            field="user_id",
        )
