"""``ask`` and ``chat``: the commands that talk to the model, one turn or a conversation.

They follow simonw/llm's ``llm prompt`` and ``llm chat``: ``-m/--model`` picks the model,
``--system`` sets a system prompt, ``-c/--continue`` continues the most recently active
session (newest message, whoever wrote it; a session without messages counts from its
creation). With neither ``-c`` nor a session named
they continue the *current* session (this CLI's memory, ``state.py``), and start one when
there is none.

Choices, each as llm makes it:

- A system prompt is part of the conversation: llm logs it with the response and sends it
  again on every continuation. Here it is stored in the session as a system message, just
  before the user message, unless the newest system message the model would see already
  says exactly that (so ``ask --system X`` twice stores it once).
- A failed model call stores nothing: llm logs a response only once it is complete. Here a
  call that failed before any text arrived takes its user message (and system prompt) back,
  atomically and only while it is still the newest message, so the next ``ask`` never sends
  two user messages in a row; a reply cut off midway is kept, marked partial, because the
  user has seen it.
- Nothing refuses a repeated message: the chat page's guard against a double click (the
  same content within 5 s) is off here, where a person may well answer "yes" twice.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from sessionkeeper.cli import common
from sessionkeeper.cli import output as out
from sessionkeeper.cli.common import JsonOpt, NewUserOpt
from sessionkeeper.errors import InvalidInput, SessionkeeperError, Unavailable

if TYPE_CHECKING:
    from sessionkeeper import Store
    from sessionkeeper.chat.llm import LLMClient
    from sessionkeeper.chat.turn import ChatTurn
    from sessionkeeper.config import Settings

app = typer.Typer()

ECHO_MODEL = "echo"
INTERRUPTED = "interrupted (Ctrl-C) before the reply was complete"
LEAVE_WORDS = ("exit", "quit")

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model name on the configured server (default $SESSIONKEEPER_LLM_MODEL); "
        "'echo' is the offline echo model.",
    ),
]
SystemOpt = Annotated[
    str | None,
    typer.Option(
        "--system",
        help="System prompt, stored in the session before your message (unless the model "
        "already sees the same one).",
    ),
]
ContinueOpt = Annotated[
    bool,
    typer.Option(
        "--continue",
        "-c",
        help="Continue the most recently active session, and make it current.",
    ),
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option(help="Context budget (default SESSIONKEEPER_MAX_CONTEXT_TOKENS)."),
]


def model_client(cfg: Settings, model: str | None) -> LLMClient:
    """The model to talk to: ``-m``, else the configured one; the echo model offline."""
    from sessionkeeper.chat.llm import EchoClient, make_client
    from sessionkeeper.store import validate

    if model is not None:
        validate.model(model)
        if model == ECHO_MODEL:
            return EchoClient()
        if not cfg.llm_base_url or not cfg.llm_base_url.strip():
            raise InvalidInput(
                f"model {model!r}: no model server is configured; set "
                "SESSIONKEEPER_LLM_BASE_URL (any OpenAI-compatible server), or use "
                f"-m {ECHO_MODEL} for the offline echo model",
                field="model",
            )
    return make_client(
        cfg.llm_base_url, model or cfg.llm_model, cfg.llm_api_key, cfg.llm_timeout_seconds
    )


class Conversation:
    """One session talked to turn after turn (``ask`` runs one turn, ``chat`` many).

    ``session_id`` is None until a turn creates the session; ``system`` is sent with each
    turn until one is answered (then it is in the session).
    """

    def __init__(
        self,
        store: Store,
        llm: LLMClient,
        cfg: Settings,
        *,
        session_id: str | None,
        system: str | None,
        max_tokens: int | None,
        stream_to: TextIO | None,
        on_created: Callable[[str], None] | None = None,
        user_id: str | None = None,
    ) -> None:
        self.store = store
        self.user_id = user_id  # the user of a session a turn creates
        self.llm = llm
        self.cfg = cfg
        self.session_id = session_id
        self.system = system
        self.max_tokens = max_tokens
        self.stream_to = stream_to  # where reply text goes as it arrives (None: nowhere)
        self.on_created = on_created  # called when a turn creates the session, before the reply
        self.created: str | None = None  # the session a turn created, while it exists
        self.last: ChatTurn | None = None

    async def turn(self, content: str) -> dict[str, Any]:
        """Send ``content``, stream the reply, return what ``ask --json`` prints.

        A model failure raises Unavailable saying what became of the message.
        """
        from sessionkeeper.chat.turn import ChatRequest, prepare_turn

        self.last = None
        turn = await prepare_turn(
            self.store,
            self.llm,
            ChatRequest(
                content,
                session_id=self.session_id,
                user_id=self.user_id,
                system=self.system,
                max_context_tokens=self.max_tokens,
            ),
            default_max_tokens=self.cfg.max_context_tokens,
            refuse_duplicates=False,
            withdraw_unanswered=True,
            interrupted=INTERRUPTED,
            compact_after=self.cfg.compact_after_tokens,
        )
        self.last = turn
        if turn.created and self.on_created is not None:
            self.on_created(turn.session.session_id)
        result: dict[str, Any] = {}
        failure: str | None = None
        try:
            async for event in turn.events():
                if event.name == "delta" and self.stream_to is not None:
                    self.stream_to.write(event.data["text"])
                    self.stream_to.flush()
                elif event.name == "done":
                    result = event.data
                elif event.name == "error":
                    failure = event.data["detail"]
        finally:
            if not turn.withdrawn:
                self.system = None  # stored, or already in effect
                if turn.created:
                    self.session_id = self.created = turn.session.session_id
        if failure is not None:
            if self.stream_to is not None and turn.reply is not None:
                self.stream_to.write("\n")
            raise Unavailable(f"{failure} ({self.fate(turn)})", session_id=turn.session.session_id)
        return {
            "session_id": turn.session.session_id,
            "created": turn.created,
            "system": turn.system_message.to_dict() if turn.system_message else None,
            "user": turn.user_message.to_dict(),
            "assistant": result["message"],
            "model": result["model"],
            "echo": result["echo"],
            "window": result["window"],
        }

    @staticmethod
    def fate(turn: ChatTurn) -> str:
        """What became of a turn that did not finish, in words for the user."""
        if turn.reply is not None:
            return "the reply so far is stored, marked partial"
        if turn.withdrawn:
            return "your message was not kept: send it again"
        return "your message stays in the session"


async def most_recent(store: Store) -> str | None:
    """The session with the newest message (or the newest session without any)."""
    page = await store.list_sessions(
        sort="last_message_at", order="desc", limit=1, with_total=False
    )
    return page.items[0].session_id if page.items else None


def one_choice(session: str | None, continue_: bool, new: bool = False) -> None:
    """A session id, --continue and --new each say which session: one at most."""
    given = {"a session id": session is not None, "--continue": continue_, "--new": new}
    chosen = [name for name, yes in given.items() if yes]
    if len(chosen) > 1:
        raise InvalidInput(f"{' and '.join(chosen)} cannot be used together")


async def choose_session(
    store: Store,
    session: str | None,
    continue_: bool,
    *,
    new: bool = False,
    user: str | None = None,
) -> tuple[str | None, str | None]:
    """(the session to talk in — None: a new one, made by the first message — and the
    remembered current session found gone, if any)."""
    one_choice(session, continue_, new)
    gone: str | None = None
    if session is not None:
        sid: str | None = session
    elif continue_:
        sid = await most_recent(store)  # none yet: the first message starts one, as llm -c
    elif new:
        sid = None
    else:
        sid = common.current_id(required=False)
        if sid is not None and not await store.session_exists(sid):
            gone, sid = sid, None  # deleted or purged: start anew, as after `delete`
    if sid is not None:
        await common.writable(store, sid)
        await common.same_user(store, sid, user)
    return sid, gone


@app.command()
def ask(
    text: Annotated[str, typer.Argument(help="Your message ('-' reads stdin).")],
    session: Annotated[
        str | None,
        typer.Option("--session", "-s", help="Session id (default: the current session)."),
    ] = None,
    model: ModelOpt = None,
    system: SystemOpt = None,
    continue_: ContinueOpt = False,
    max_tokens: MaxTokensOpt = None,
    user: NewUserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the model in the current session; both turns are stored.

    The model is -m, else SESSIONKEEPER_LLM_MODEL on the server SESSIONKEEPER_LLM_BASE_URL
    (any OpenAI-compatible server, key SESSIONKEEPER_LLM_API_KEY); without a server, the
    offline echo model answers. With no current session (or one that no longer exists), a
    new one is started and becomes current; -c continues the most recent session instead.
    The reply is printed as it arrives. A model failure before any text takes your message
    back (exit 6); a reply cut off midway is kept, marked partial. A session that has ended
    is refused (exit 4). Note: -s is --session here, --system has no short form.
    """
    from sessionkeeper.chat.turn import ChatRequest, check_request

    content = common.text_arg(text)
    check_request(ChatRequest(content, system=system))  # before a database is made
    from sessionkeeper.store import validate

    validate.optional_label(user, "user_id")
    one_choice(session, continue_)
    cfg = common.settings()
    llm = model_client(cfg, model)
    url = common.check_database(create=True)

    async def work(store: Store) -> dict[str, Any]:
        sid, gone = await choose_session(store, session, continue_, user=user)

        def created(new: str) -> None:
            if gone is not None:
                common.note_gone(gone, new, as_json)

        talk = Conversation(
            store,
            llm,
            cfg,
            session_id=sid,
            system=system,
            max_tokens=max_tokens,
            stream_to=None if as_json else sys.stdout,
            on_created=created,
            user_id=user,
        )
        try:
            return await talk.turn(content)
        finally:
            await llm.aclose()
            keep = talk.created or (sid if continue_ else None)
            if keep is not None:
                common.remember(keep)

    result = common.run(work, url=url, create=True)
    if as_json:
        out.emit_json(result)
    else:
        sys.stdout.write("\n")


@app.command()
def chat(
    session_id: Annotated[
        str | None,
        typer.Argument(help="Session to chat in (default: the current session)."),
    ] = None,
    model: ModelOpt = None,
    system: SystemOpt = None,
    continue_: ContinueOpt = False,
    new: Annotated[
        bool, typer.Option("--new", help="Start a new session (made by your first message).")
    ] = False,
    max_tokens: MaxTokensOpt = None,
    user: NewUserOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Chat with the model, turn after turn, in one session (an interactive prompt).

    Type a message and press Enter: the reply is printed as it arrives and both turns are
    stored, as `ask` does. The session is the one named, else -c's, else the current one
    (a new one with --new or when there is none); it becomes the current session. Arrow
    keys edit the line and recall earlier ones (readline). Ctrl-D, 'exit' or 'quit' leaves;
    Ctrl-C stops a reply (the text so far is kept, marked partial) or clears the line. A
    failed model call is reported, takes your message back, and the chat goes on. Reads
    lines from a pipe too (`printf 'hi\\n' | sessionkeeper chat`).
    """
    from sessionkeeper.chat.turn import ChatRequest, check_request
    from sessionkeeper.store import validate

    if system is not None:
        check_request(ChatRequest("-", system=system))  # before a database is made
    validate.optional_label(user, "user_id")
    one_choice(session_id, continue_, new)
    cfg = common.settings()
    llm = model_client(cfg, model)
    url = common.check_database(create=True)
    tty = sys.stdin.isatty()
    if tty:
        import readline  # noqa: F401  (line editing and history for input())

    from sessionkeeper import Store

    with asyncio.Runner() as runner:
        store = runner.run(Store.open(url, encoding=common.encoding()))
        try:
            sid, gone = runner.run(choose_session(store, session_id, continue_, new=new, user=user))
            talk = Conversation(
                store,
                llm,
                cfg,
                session_id=sid,
                system=system,
                max_tokens=max_tokens,
                stream_to=None if as_json else sys.stdout,
                user_id=user,
            )
            if sid is not None:
                common.remember(sid)
            if gone is not None:
                common.forget(gone)
            _greet(talk, gone, tty)
            _repl(runner, talk, as_json, tty)
        finally:
            runner.run(llm.aclose())
            runner.run(store.close())


def _greet(talk: Conversation, gone: str | None, tty: bool) -> None:
    """Say where the chat goes and how to leave (on stderr: stdout carries the replies)."""
    where = (
        f"session {talk.session_id}"
        if talk.session_id is not None
        else "a new session (made by your first message)"
    )
    model = talk.llm.model + (
        " (offline echo: no model server configured)" if talk.llm.is_echo else ""
    )
    leave = "Ctrl-D or 'exit' leaves" if tty else "the end of input or 'exit' leaves"
    gone_note = f" (the current session {gone} no longer exists)" if gone is not None else ""
    out.err_console().print(
        f"Chatting in {where}{gone_note}, model {model}; {leave}.", markup=False
    )


def _repl(runner: asyncio.Runner, talk: Conversation, as_json: bool, tty: bool) -> None:
    prompt = "> " if tty else ""
    remembered = talk.session_id
    while True:
        try:
            line = input(prompt)
        except EOFError:
            if tty:
                sys.stdout.write("\n")
            return
        except KeyboardInterrupt:
            sys.stdout.write("\n")  # a fresh prompt, as Python's own REPL does
            continue
        if not line.strip():
            continue
        if line.strip() in LEAVE_WORDS:
            return
        try:
            result = runner.run(_interruptible(talk.turn(line)))
        except _Interrupted:
            sys.stdout.write("\n")
            turn = talk.last
            fate = talk.fate(turn) if turn is not None else "nothing was sent"
            out.err_console().print(f"interrupted: {fate}", markup=False)
            continue
        except SessionkeeperError as exc:  # reported; the chat goes on
            out.report_error(exc)
            continue
        finally:
            if talk.created is not None and talk.created != remembered:
                common.remember(talk.created)  # the session the first turn made
                remembered = talk.created
        if as_json:
            out.emit_json(result)
        else:
            sys.stdout.write("\n")
            sys.stdout.flush()


class _Interrupted(Exception):
    """Ctrl-C during a turn (the turn was cancelled; the chat goes on)."""


async def _interruptible(work: Any) -> Any:
    """Run ``work``; Ctrl-C cancels it and raises _Interrupted instead of ending the chat.

    asyncio.Runner's own Ctrl-C handling cancels only once per runner; this handler is
    installed for each turn, so every Ctrl-C stops just the reply being written.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await work
    except asyncio.CancelledError:
        if not interrupted:
            raise
        task.uncancel()
        raise _Interrupted from None
    finally:
        loop.remove_signal_handler(signal.SIGINT)
