"""Filesystem store over an OpenClaw-style agents directory (the seed ``session_manager`` skill).

Layout::

    <root>/<agent>/sessions/sessions.json              index: session key → entry dict
    <root>/<agent>/sessions/<sessionId>.jsonl          transcript
    <root>/<agent>/sessions/<sessionId>.jsonl.deleted.<ISO time, ':' → '-'>   archived transcript

Every method returns plain dicts in the seed's JSON shapes. Nothing is ever unlinked except
archives older than the retention (``orphans``): deleting a session removes its index keys and
*renames* its transcript.

Concurrency: OpenClaw's gateway rewrites ``sessions.json`` all the time, so every change here goes
through :class:`~sessionkeeper.openclaw.locking.IndexLock` (the gateway's ``sessions.json.lock``
protocol, explained in :mod:`sessionkeeper.openclaw.locking`): take the lock of one agent's index,
re-read the index, remove keys, write it atomically, archive transcripts, release. Decisions taken
from an unlocked read (which sessions are stale, which transcripts are orphans) are re-checked
under the lock, so a session touched meanwhile is kept. Key order and unknown fields survive.

Counting: ``list_sessions`` and ``get_session_stats`` count index entries (keys), as the seed did;
``prune_sessions`` counts distinct session ids, the unit it deletes (a session is stale when its
newest key is; an entry without a readable ``updatedAt`` counts as stale, as in the seed).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessionkeeper import inputs
from sessionkeeper.errors import Conflict, Forbidden, InvalidInput, NotFound
from sessionkeeper.openclaw.config import MainSessionRule, normalize_main_key, read_rule
from sessionkeeper.openclaw.locking import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_STALE_AFTER,
    DEFAULT_TIMEOUT,
    IndexLock,
    LockWait,
    atomic_write_json,
)
from sessionkeeper.wording import plural

__all__ = ["ROOT_VARIABLES", "OpenClawStore", "default_root", "session_type_for_key"]

ROOT_VARIABLES = ("OPENCLAW_WORKSPACE", "ARIA_WORKSPACE")

INDEX_NAME = "sessions.json"
TRANSCRIPT_SUFFIX = ".jsonl"
ARCHIVE_MARK = ".jsonl.deleted."
ARCHIVE_RETENTION_DAYS = 7.0
_ARCHIVE_TS_RE = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})(\.\d+)?")

Entry = dict[str, Any]
Index = dict[str, Any]
AgentError = dict[str, str]  # {"agent": name, "error": message}


def default_root() -> Path:
    """The agents root: ``$OPENCLAW_WORKSPACE`` or ``$ARIA_WORKSPACE`` (its ``agents/`` subdir
    when it has one, else the dir itself), else ``~/.openclaw/agents``."""
    for var in ROOT_VARIABLES:
        value = os.environ.get(var)
        if value:
            base = Path(value).expanduser()
            return base / "agents" if (base / "agents").is_dir() else base
    return Path.home() / ".openclaw" / "agents"


def session_type_for_key(key: str) -> str:
    """``cron`` / ``subagent`` / ``run`` / ``direct`` from an OpenClaw session key."""
    for kind in ("cron", "subagent", "run"):
        if f":{kind}:" in key:
            return kind
    return "direct"


def _check_name(value: object, what: str) -> str:
    """Refuse anything that could leave the sessions directory when used as a file name."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string", value=repr(value))
    if value in (".", "..") or any(c in value for c in "/\\\x00") or os.path.isabs(value):
        raise InvalidInput(f"{what} {value!r} is not a plain file name", value=value)
    return value


def _is_safe(value: object) -> bool:
    try:
        _check_name(value, "id")
    except InvalidInput:
        return False
    return True


def _updated_ms(entry: Entry) -> float | None:
    """``updatedAt`` as epoch milliseconds (ints per OpenClaw; ISO strings tolerated)."""
    value = entry.get("updatedAt")
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp() * 1000
    return None


def _iso_from_ms(ms: float | None) -> str | None:
    if ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds" if ms % 1000 == 0 else "milliseconds")


def _archive_stamp(now: datetime) -> str:
    """OpenClaw's ``new Date().toISOString().replace(/:/g, '-')``: 2026-02-15T18-00-00.123Z."""
    return now.strftime("%Y-%m-%dT%H-%M-%S.") + f"{now.microsecond // 1000:03d}Z"


def _archive_time(name: str) -> float | None:
    """Epoch seconds encoded in an archive name, or None if it carries no readable stamp."""
    match = _ARCHIVE_TS_RE.search(name.partition(ARCHIVE_MARK)[2])
    if not match:
        return None
    day, hh, mm, ss, frac = match.groups()
    try:
        moment = datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss}{frac or ''}+00:00")
    except ValueError:
        return None
    return moment.timestamp()


class OpenClawStore:
    """Read, delete (archive), prune and repair an OpenClaw agents directory."""

    def __init__(
        self,
        root: Path | str,
        *,
        protected_ids: set[str] | None = None,
        main_key: str | None = None,
        on_deleted: Callable[[str], bool] | None = None,
        lock_timeout: float = DEFAULT_TIMEOUT,
        stale_lock_seconds: float = DEFAULT_STALE_AFTER,
        lock_poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_lock_wait: LockWait | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root).expanduser()
        if protected_ids is None:
            env_id = os.environ.get("ARIA_SESSION_ID", "").strip()
            protected_ids = {env_id} if env_id else set()
        self.protected_ids = set(protected_ids)
        # OpenClaw's session.mainKey: given, or read from its config when first needed
        # (openclaw/config.py), so that listing never depends on the config.
        self._rule = None if main_key is None else MainSessionRule(normalize_main_key(main_key))
        self.on_deleted = on_deleted
        self.lock_timeout = lock_timeout
        self.stale_lock_seconds = stale_lock_seconds
        self.lock_poll_interval = lock_poll_interval
        self.on_lock_wait = on_lock_wait
        self.clock = clock

    # -- paths and reading ------------------------------------------------------------------
    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def _inside(self, path: Path) -> bool:
        """True when ``path``, every symlink followed, is the root or under it."""
        root = self._real_root()
        real = os.path.realpath(path)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def _scan_agents(self) -> tuple[list[str], list[AgentError]]:
        """(usable agent names, problems): an agent whose ``sessions/`` leads out of the root
        through a symlink is never followed."""
        if not self.root.is_dir():
            return [], []
        names: list[str] = []
        problems: list[AgentError] = []
        for p in sorted(self.root.iterdir(), key=lambda p: p.name):
            if not _is_safe(p.name) or not (p / "sessions").is_dir():
                continue
            if not self._inside(p / "sessions"):
                problems.append(
                    _problem(p.name, f"{p / 'sessions'} leads out of {self.root}: not followed")
                )
                continue
            names.append(p.name)
        return names, problems

    def agents(self) -> list[str]:
        """Agent directory names that have a ``sessions/`` directory inside the root, sorted."""
        return self._scan_agents()[0]

    def _dir(self, agent: str) -> Path:
        directory = self.root / _check_name(agent, "agent") / "sessions"
        if directory.exists() and not self._inside(directory):
            raise InvalidInput(
                f"{directory} leads out of {self.root} (to {os.path.realpath(directory)}): "
                "refusing to follow it",
                agent=agent,
            )
        return directory

    def _index_path(self, agent: str) -> Path:
        return self._dir(agent) / INDEX_NAME

    def _index_target(self, agent: str) -> Path:
        """The file a rewrite of the index replaces: the index itself, or the target of a
        symlinked index when that target is inside the root (else refused)."""
        path = self._index_path(agent)
        if not path.is_symlink():
            return path
        if not self._inside(path):
            raise InvalidInput(
                f"{path} is a symlink to {os.path.realpath(path)}, outside {self.root}: "
                f"refusing to follow it (agent {agent!r} left unchanged)",
                agent=agent,
                path=str(path),
            )
        return Path(os.path.realpath(path))

    def _read_index(self, agent: str) -> Index:
        """The agent's index; an agent without one has none ({}). Refused (InvalidInput,
        nothing changed for this agent): an empty or invalid file, a symlink out of the root,
        a symlink to nothing, anything but a regular file."""
        path = self._index_path(agent)
        target = self._index_target(agent)
        if path.is_symlink() and not target.exists():
            raise InvalidInput(
                f"{path} is a symlink to {target}, which does not exist: agent {agent!r} "
                "left unchanged",
                agent=agent,
                path=str(path),
            )
        where = f"agent {agent!r} left unchanged"
        try:
            raw = inputs.read_regular(target)
        except FileNotFoundError:
            return {}
        except inputs.NotRegular as exc:  # a FIFO would block us; never opened
            raise InvalidInput(f"{exc.message}: {where}", agent=agent, path=str(path)) from None
        except OSError as exc:  # unreadable…
            raise InvalidInput(
                f"{path} cannot be read ({exc.strerror or exc}): {where}",
                agent=agent,
                path=str(path),
            ) from exc
        if not raw.strip():
            raise InvalidInput(
                f"{path} is empty ({len(raw)} bytes), not an index: {where} (OpenClaw writes "
                "{} for an agent without sessions; restore the file, or remove it)",
                agent=agent,
                path=str(path),
            )
        try:
            data = inputs.loads(raw, str(path))  # not UTF-8, not JSON, nested too deeply
        except InvalidInput as exc:
            raise InvalidInput(f"{exc.message}: {where}", agent=agent, path=str(path)) from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{path} is not a JSON object: {where}", agent=agent, path=str(path))
        return data

    def _write_index(self, agent: str, index: Index) -> None:
        try:
            atomic_write_json(self._index_target(agent), index)
        except RecursionError:  # read at the edge of the parser's depth; nothing replaced
            raise InvalidInput(
                f"{self._index_path(agent)} is nested too deeply to be written back: "
                f"agent {agent!r} left unchanged",
                agent=agent,
            ) from None

    def _indexes(self, problems: list[AgentError]) -> Iterator[tuple[str, Index]]:
        """``(agent, index)`` of every agent whose index can be read; the others are added to
        ``problems`` and skipped (one broken agent never stops the rest)."""
        names, found = self._scan_agents()
        problems += found
        for agent in names:
            try:
                index = self._read_index(agent)
            except InvalidInput as exc:
                problems.append(_problem(agent, exc.message))
                continue
            yield agent, index

    def _lock(self, agent: str) -> IndexLock:
        return IndexLock(
            self._index_path(agent),
            timeout=self.lock_timeout,
            stale_after=self.stale_lock_seconds,
            poll_interval=self.lock_poll_interval,
            on_wait=self.on_lock_wait,
        )

    @staticmethod
    def _entries(index: Index) -> Iterator[tuple[str, Entry, str]]:
        for key, entry in index.items():
            if isinstance(entry, dict) and isinstance(entry.get("sessionId"), str):
                yield key, entry, entry["sessionId"]

    def iter_entries(
        self, agent: str | None = None, *, problems: list[AgentError] | None = None
    ) -> Iterator[tuple[str, str, Entry]]:
        """Yield ``(agent, key, entry)`` for every index entry that has a string ``sessionId``.

        With ``problems``, agents whose index cannot be read are listed there and skipped;
        without, the first one raises InvalidInput. A named ``agent`` always raises.
        """
        if agent is not None:
            indexes: Iterator[tuple[str, Index]] = iter([(agent, self._read_index(agent))])
        elif problems is not None:
            indexes = self._indexes(problems)
        else:
            indexes = ((name, self._read_index(name)) for name in self._strict_agents())
        for name, index in indexes:
            for key, entry, _sid in self._entries(index):
                yield name, key, entry

    def _strict_agents(self) -> list[str]:
        names, problems = self._scan_agents()
        if problems:
            raise InvalidInput(problems[0]["error"], agent=problems[0]["agent"])
        return names

    def read_transcript(self, agent: str, session_id: str) -> list[dict[str, Any]]:
        """Parse ``<agent>/sessions/<session_id>.jsonl`` (blank lines skipped)."""
        path = self._dir(agent) / (_check_name(session_id, "session id") + TRANSCRIPT_SUFFIX)
        if path.is_symlink() and not self._inside(path):
            raise InvalidInput(
                f"{path} is a symlink to {os.path.realpath(path)}, outside {self.root}: "
                "not followed",
                path=str(path),
            )
        try:
            raw = inputs.read_regular(path)  # a FIFO is refused, never opened (it would block)
        except FileNotFoundError as exc:
            raise NotFound(f"No transcript {path}", path=str(path)) from exc
        except OSError as exc:
            raise InvalidInput(
                f"{path} cannot be read ({exc.strerror or exc})", path=str(path)
            ) from exc
        text = inputs.decode_utf8(raw, str(path))
        records: list[dict[str, Any]] = []
        # Split on "\n" only: OpenClaw (Node's JSON.stringify) writes U+2028, U+0085… raw
        # inside strings, and str.splitlines() would break a record there.
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if not line.strip():
                continue
            try:
                record = inputs.loads(line, f"{path}: line {number}")
            except InvalidInput as exc:
                raise InvalidInput(exc.message, path=str(path), line=number) from None
            if not isinstance(record, dict):
                raise InvalidInput(
                    f"{path}: line {number} is not a JSON object", path=str(path), line=number
                )
            records.append(record)
        return records

    @property
    def main_rule(self) -> MainSessionRule:
        """How OpenClaw names each agent's main session (InvalidInput: unreadable config)."""
        if self._rule is None:
            self._rule = read_rule(self.root)
        return self._rule

    def _is_main(self, agent: str, key: str) -> bool:
        return self.main_rule.is_main(agent, key)

    def _protected_in(self, agent: str, index: Index) -> set[str]:
        """``protected_ids`` plus the sessions the agent's main session keys name."""
        ids = set(self.protected_ids)
        for key, _entry, sid in self._entries(index):
            if self._is_main(agent, key):
                ids.add(sid)
        return ids

    def protected(self, problems: list[AgentError] | None = None) -> set[str]:
        """Session ids that are never deleted: ``protected_ids`` plus each agent's main
        session (in every agent whose index can be read; see ``problems``)."""
        ids = set(self.protected_ids)
        for agent, index in self._indexes([] if problems is None else problems):
            ids |= self._protected_in(agent, index)
        return ids

    # -- listing and stats ------------------------------------------------------------------
    def list_sessions(self, agent: str | None = None) -> dict[str, Any]:
        """All index entries (one row per key), newest first, in the seed's shape.

        Agents whose index cannot be read are skipped and listed under ``agent_errors``
        (present only then); a named ``agent`` with a bad index raises InvalidInput.
        """
        if agent is not None and not self._dir(agent).is_dir():
            raise NotFound(f"No agent {agent!r} under {self.root}", agent=agent)
        problems: list[AgentError] = []
        rows: list[tuple[float, dict[str, Any]]] = []
        for name, key, entry in self.iter_entries(agent, problems=problems):
            ms = _updated_ms(entry)
            rows.append(
                (
                    ms if ms is not None else float("-inf"),
                    {
                        "id": entry["sessionId"],
                        "sessionId": entry["sessionId"],
                        "key": key,
                        "agentId": name,
                        "session_type": session_type_for_key(key),
                        "label": entry.get("label"),
                        "updatedAt": _iso_from_ms(ms),
                        "contextTokens": entry.get("contextTokens"),
                        "model": entry.get("model"),
                    },
                )
            )
        rows.sort(key=lambda r: (-r[0], r[1]["agentId"], r[1]["key"]))
        sessions = [row for _, row in rows]
        return _with_problems({"session_count": len(sessions), "sessions": sessions}, problems)

    def _is_stale(self, ms: float | None, minutes: float, now: float) -> bool:
        return ms is None or (now * 1000 - ms) > minutes * 60_000

    def get_session_stats(self, stale_minutes: float = 60) -> dict[str, Any]:
        """Counts of index entries: total, stale (older than ``stale_minutes``), per agent."""
        stale_minutes = _check_minutes(stale_minutes, "stale_minutes")
        now = self.clock()
        by_agent: dict[str, int] = {}
        total = stale = 0
        problems: list[AgentError] = []
        for agent, index in self._indexes(problems):
            by_agent[agent] = 0
            for _key, entry, _sid in self._entries(index):
                by_agent[agent] += 1
                total += 1
                stale += self._is_stale(_updated_ms(entry), stale_minutes, now)
        return _with_problems(
            {
                "total_sessions": total,
                "stale_sessions": stale,
                "active_sessions": total - stale,
                "by_agent": by_agent,
                "stale_threshold_minutes": stale_minutes,
            },
            problems,
        )

    # -- deleting ---------------------------------------------------------------------------
    def _archive(self, transcript: Path) -> bool:
        """Rename a transcript to ``<name>.deleted.<stamp>``; False if there is none.

        A symlinked transcript is renamed as a link: its target is never touched.
        """
        if not (transcript.is_file() or transcript.is_symlink()):
            return False
        stamp = _archive_stamp(datetime.fromtimestamp(self.clock(), UTC))
        target = transcript.with_name(f"{transcript.name}.deleted.{stamp}")
        n = 0
        while target.exists() or target.is_symlink():
            n += 1
            target = transcript.with_name(f"{transcript.name}.deleted.{stamp}-{n}")
        try:
            os.rename(transcript, target)
        except FileNotFoundError:
            return False
        return True

    def _purge_agent(
        self, agent: str, ids: set[str], keep: Callable[[Entry], bool] | None = None
    ) -> dict[str, tuple[list[str], bool]]:
        """Under the agent's lock: drop every key of ``ids`` and archive their transcripts.

        Protected sessions are never touched; if ``keep(entry)`` is true for any key of a
        session (re-read under the lock), that session is left alone in this agent.
        Returns ``{session_id: (removed keys, transcript archived)}`` for what was done.
        An index that cannot be read (InvalidInput) leaves the agent untouched.
        """
        directory = self._dir(agent)
        ids = {sid for sid in ids if _is_safe(sid)}
        snapshot = self._read_index(agent)
        if not any(sid in ids for _k, _e, sid in self._entries(snapshot)) and not any(
            (directory / (sid + TRANSCRIPT_SUFFIX)).is_file() for sid in ids
        ):
            return {}  # nothing to do here: no lock, no write
        self._index_target(agent)  # a symlink out of the root: refused before the lock
        done: dict[str, tuple[list[str], bool]] = {}
        with self._lock(agent):
            index = self._read_index(agent)
            targets = ids - self._protected_in(agent, index)
            if keep is not None:
                targets -= {sid for _k, e, sid in self._entries(index) if keep(e)}
            removed: dict[str, list[str]] = {}
            for key, _entry, sid in list(self._entries(index)):
                if sid in targets and not self._is_main(agent, key):
                    del index[key]
                    removed.setdefault(sid, []).append(key)
            if removed:
                self._write_index(agent, index)
            still_referenced = {sid for _k, _e, sid in self._entries(index)}
            for sid in sorted(targets):
                archived = sid not in still_referenced and self._archive(
                    directory / (sid + TRANSCRIPT_SUFFIX)
                )
                if sid in removed or archived:
                    done[sid] = (removed.get(sid, []), archived)
        return done

    def _mark_ended(self, session_id: str) -> tuple[bool, str | None]:
        if self.on_deleted is None:
            return False, None
        try:
            return bool(self.on_deleted(session_id)), None
        except Exception as exc:  # the callback is best effort, the fs delete already happened
            return False, f"{type(exc).__name__}: {exc}"

    def delete_session(self, session_id: str) -> dict[str, Any]:
        """Remove every key of ``session_id`` (all agents), archive its transcript, mark ended.

        Agents whose index cannot be read are left alone and listed under ``agent_errors``;
        if the session was found in none of the others, that is an InvalidInput (it may be
        in one of those agents), not a NotFound.
        """
        sid = _check_name(session_id, "session id")
        problems: list[AgentError] = []
        if sid in self.protected(problems):
            raise Forbidden(f"Session {sid} is protected (current or main session)", id=sid)
        removed_keys: list[str] = []
        archived = False
        problems = []
        names, found = self._scan_agents()
        problems += found
        for agent in names:
            try:
                keys, arch = self._purge_agent(agent, {sid}).get(sid, ([], False))
            except InvalidInput as exc:
                problems.append(_problem(agent, exc.message))
                continue
            removed_keys += keys
            archived = archived or arch
        if not removed_keys and not archived:
            if problems:
                raise InvalidInput(
                    f"Session {sid} not found in the readable agents under {self.root}; "
                    + "; ".join(f"{p['agent']}: {p['error']}" for p in problems),
                    id=sid,
                    agent_errors=problems,
                )
            raise NotFound(f"Session {sid} not found under {self.root}", id=sid)
        pg_ok, pg_error = self._mark_ended(sid)
        db = "DB marked ended" if pg_ok else "DB not updated"
        if pg_error:
            db += f" (callback failed: {pg_error})"
        transcript = "archived" if archived else "missing"
        return _with_problems(
            {
                "deleted": sid,
                "removed_keys": removed_keys,
                "transcript_archived": archived,
                "pg_status_updated": pg_ok,
                "message": (
                    f"Session {sid} removed ({plural(len(removed_keys), 'key')}, "
                    f"transcript={transcript}), {db}"
                ),
            },
            problems,
        )

    def cleanup_after_delegation(self, session_id: str) -> dict[str, Any]:
        """Delete a sub-agent's session once its delegation is done (same as delete_session)."""
        return self.delete_session(session_id)

    def prune_sessions(self, max_age_minutes: float = 60, dry_run: bool = False) -> dict[str, Any]:
        """Delete (archive) every session whose newest key is older than ``max_age_minutes``.

        Agents whose index cannot be read are left alone (``agent_errors``); a session also
        keyed there is still pruned from the readable agents.
        """
        max_age_minutes = _check_minutes(max_age_minutes, "max_age_minutes")
        now = self.clock()
        newest: dict[str, float] = {}  # session id → newest updatedAt of its keys (-inf: none)
        where: dict[str, set[str]] = {}
        problems: list[AgentError] = []
        protected = set(self.protected_ids)
        for agent, index in self._indexes(problems):
            protected |= self._protected_in(agent, index)
            for _key, entry, sid in self._entries(index):
                ms = _updated_ms(entry)
                newest[sid] = max(
                    newest.get(sid, float("-inf")), float("-inf") if ms is None else ms
                )
                where.setdefault(sid, set()).add(agent)
        errors: list[dict[str, str]] = []
        candidates: list[str] = []
        for sid, ms in sorted(newest.items(), key=lambda kv: (-kv[1], kv[0])):
            if sid in protected or not self._is_stale(ms, max_age_minutes, now):
                continue
            if not _is_safe(sid):
                errors.append({"id": sid, "error": "unsafe session id left untouched"})
                continue
            candidates.append(sid)
        deleted: list[str] = []
        if not dry_run:

            def fresh(entry: Entry) -> bool:
                return not self._is_stale(_updated_ms(entry), max_age_minutes, self.clock())

            done: set[str] = set()
            for agent in sorted({a for sid in candidates for a in where[sid]}):
                mine = {sid for sid in candidates if agent in where[sid]}
                try:
                    done |= set(self._purge_agent(agent, mine, keep=fresh))
                except (Conflict, InvalidInput, OSError) as exc:
                    errors += [{"id": sid, "error": str(exc)} for sid in sorted(mine)]
            for sid in candidates:
                if sid in done:
                    deleted.append(sid)
                    _ok, pg_error = self._mark_ended(sid)
                    if pg_error:
                        errors.append({"id": sid, "error": f"DB update failed: {pg_error}"})
        pruned = len(candidates) if dry_run else len(deleted)
        return _with_problems(
            {
                "total_sessions": len(newest),
                "pruned_count": pruned,
                "kept_count": len(newest) - pruned,
                "dry_run": dry_run,
                "deleted_ids": list(candidates) if dry_run else deleted,
                "errors": errors,
                "threshold_minutes": max_age_minutes,
            },
            problems,
        )

    # -- repair -----------------------------------------------------------------------------
    def _orphan_scan(self, agent: str, index: Index) -> tuple[list[str], list[Path]]:
        directory = self._dir(agent)
        protected = self._protected_in(agent, index)
        missing = [
            key
            for key, _entry, sid in self._entries(index)
            if _is_safe(sid)
            and sid not in protected
            and not self._is_main(agent, key)
            # a FIFO or a directory there is not "missing": not ours to judge, key kept
            and not (directory / (sid + TRANSCRIPT_SUFFIX)).exists()
        ]
        referenced = {sid for _k, _e, sid in self._entries(index)}
        orphans = sorted(
            p
            for p in directory.glob("*" + TRANSCRIPT_SUFFIX)
            if p.is_file() and p.name[: -len(TRANSCRIPT_SUFFIX)] not in referenced
        )
        return missing, orphans

    def orphans(
        self, dry_run: bool = False, *, archive_retention_days: float = ARCHIVE_RETENTION_DAYS
    ) -> dict[str, Any]:
        """Drop keys whose transcript is gone, archive unreferenced transcripts, and remove
        archives older than ``archive_retention_days`` (by their name's stamp, else mtime).
        Paths are reported relative to the root (``agent/sessions/file``).

        An agent whose index cannot be read (empty, invalid, a symlink out of the root) is
        not touched at all — with no index every transcript would look unreferenced — and is
        listed under ``agent_errors``; the other agents are repaired.
        """
        missing_all: list[str] = []
        orphan_all: list[str] = []
        expired_all: list[str] = []
        problems: list[AgentError] = []
        now = self.clock()
        for agent, snapshot in self._indexes(problems):
            directory = self._dir(agent)
            missing, orphans = self._orphan_scan(agent, snapshot)
            if not dry_run and (missing or orphans):
                try:
                    self._index_target(agent)
                    with self._lock(agent):
                        index = self._read_index(agent)
                        missing, orphans = self._orphan_scan(agent, index)
                        for key in missing:
                            del index[key]
                        if missing:
                            self._write_index(agent, index)
                        orphans = [p for p in orphans if self._archive(p)]
                except InvalidInput as exc:  # changed under us into something unreadable
                    problems.append(_problem(agent, exc.message))
                    continue
            missing_all += missing
            orphan_all += [p.relative_to(self.root).as_posix() for p in orphans]
            for path in sorted(directory.glob("*" + ARCHIVE_MARK + "*")):
                if not path.is_file():
                    continue
                stamp = _archive_time(path.name)
                when = stamp if stamp is not None else path.stat().st_mtime
                if now - when <= archive_retention_days * 86_400:
                    continue
                if not dry_run:
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        continue
                expired_all.append(path.relative_to(self.root).as_posix())
        return _with_problems(
            {
                "missing_transcripts": missing_all,
                "orphan_transcripts": orphan_all,
                "expired_archives": expired_all,
                "dry_run": dry_run,
            },
            problems,
        )


def _problem(agent: str, error: str) -> AgentError:
    return {"agent": agent, "error": error}


def _with_problems(result: dict[str, Any], problems: list[AgentError]) -> dict[str, Any]:
    """The seed's shape, plus ``agent_errors`` only when some agent was skipped."""
    if problems:
        result["agent_errors"] = problems
    return result


def _check_minutes(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidInput(f"{name} must be a number >= 0, got {value!r}", field=name)
    return value
