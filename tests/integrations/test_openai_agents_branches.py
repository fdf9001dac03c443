"""SessionkeeperSession's AdvancedSQLiteSession branch, turn and usage methods (issue 19),
on SQLite file, SQLite memory and PostgreSQL (``sk_store``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agents import Agent, Runner
from agents.run_context import RunContextWrapper
from agents.usage import Usage as SdkUsage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from scripted import ScriptedModel, function_call, text_message

from sessionkeeper import Store
from sessionkeeper.integrations.openai_agents import SessionkeeperSession, item_text
from sessionkeeper.integrations.openai_branches import (
    BRANCH_NAME,
    BRANCH_OF,
    branch_session_id,
    branch_title,
)
from sessionkeeper.models import MAX_TITLE_LENGTH

Items = list[Any]
TURNS: Items = [
    {"role": "user", "content": "First question"},
    {"role": "assistant", "content": "First answer"},
    {"role": "user", "content": "Second question about cats"},
    {"role": "assistant", "content": "Second answer"},
    {"role": "user", "content": "Third question"},
    {"role": "assistant", "content": "Third answer"},
]


class _Result:
    """What store_run_usage reads of a RunResult: its context's usage, its last agent."""

    def __init__(self, usage: SdkUsage) -> None:
        self.context_wrapper = RunContextWrapper(context=None, usage=usage)
        self.last_agent = Agent(name="t", model="gpt-4o")


def sdk_usage(requests: int, inp: int, out: int, reasoning: int = 0) -> SdkUsage:
    return SdkUsage(
        requests=requests,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out,
        input_tokens_details=InputTokensDetails.model_validate(
            {"cache_write_tokens": 3, "cached_tokens": 1}
        ),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=reasoning),
    )


async def test_a_branch_is_a_store_fork_cut_before_the_turn(sk_store: Store) -> None:
    session = SessionkeeperSession("conv", store=sk_store, session_metadata={"team": "a"})
    await session.add_items(TURNS)
    name = await session.create_branch_from_turn(2, "try again: nicer")
    assert name == "try again: nicer" and session._current_branch_id == name
    assert await session.get_items() == TURNS[:2]
    assert await session.get_items(branch_id="main") == TURNS
    forked = await sk_store.get_session(branch_session_id("conv", name))
    assert (forked.parent_session_id, forked.fork_seq) == ("conv", 2)
    assert forked.metadata == {"team": "a", BRANCH_OF: "conv", BRANCH_NAME: name}
    assert forked.title == "First question · try again: nicer"  # as lists and pages show it
    assert [s.session_id for s in await sk_store.list_branches("conv")] == [forked.session_id]

    # Isolation: items on the branch stay there.
    await session.add_items([{"role": "user", "content": "Branch question"}])
    assert await session.get_items(branch_id="main") == TURNS
    assert contents(await session.get_items()) == [
        "First question",
        "First answer",
        "Branch question",
    ]
    assert await session.pop_item() == {"role": "user", "content": "Branch question"}
    assert await session.get_items(branch_id="main") == TURNS

    # A branch of a branch: a fork of the branch; listed as the session's.
    await session.add_items([{"role": "user", "content": "B2"}])
    sub = await session.create_branch_from_turn(2, "sub")
    assert await session.get_items() == TURNS[:2]
    await session.add_items([{"role": "user", "content": "sub turn"}])
    listed = await session.list_branches()
    assert [
        (b["branch_id"], b["message_count"], b["user_turns"], b["is_current"]) for b in listed
    ] == [
        ("main", 6, 3, False),
        (name, 3, 2, False),
        (sub, 3, 2, True),
    ]
    assert all(isinstance(b["created_at"], str) for b in listed)
    sub_session = await sk_store.get_session(branch_session_id("conv", sub))
    assert sub_session.parent_session_id == forked.session_id


async def test_turns_content_search_and_structure(sk_store: Store) -> None:
    session = SessionkeeperSession("turns", store=sk_store)
    await session.add_items(
        [
            {"role": "user", "content": "Use a tool"},
            {"type": "function_call", "name": "lookup", "namespace": "crm", "arguments": "{}",
             "call_id": "c1"},
            {"type": "function_call_output", "call_id": "c1", "output": "found"},
            {"role": "assistant", "content": "Done"},
            {"role": "user", "content": [{"type": "input_text", "text": "Tell me about CATS"}]},
        ]
    )  # fmt: skip
    turns = await session.get_conversation_turns()
    assert [(t["turn"], t["can_branch"]) for t in turns] == [(1, True), (2, True)]
    assert turns[0]["content"] == "Use a tool"
    # A list of parts previews as its JSON (PostgreSQL's jsonb may order its keys).
    assert json.loads(turns[1]["content"]) == turns[1]["full_content"]
    assert turns[1]["full_content"] == [{"type": "input_text", "text": "Tell me about CATS"}]
    assert [t["turn"] for t in await session.find_turns_by_content("cats")] == [2]
    assert await session.find_turns_by_content("input_text") == []
    by_turn = await session.get_conversation_by_turns()
    assert by_turn[1] == [
        {"type": "user", "tool_name": None},
        {"type": "function_call", "tool_name": "crm.lookup"},
        {"type": "function_call_output", "tool_name": None},
        {"type": "assistant", "tool_name": None},
    ]
    assert await session.get_tool_usage() == [("crm.lookup", 1, 1)]
    name = await session.create_branch_from_content("cats", "from-content")
    assert name == "from-content"
    assert len(await session.get_items()) == 4
    with pytest.raises(ValueError, match="No user turns found containing 'dogs'"):
        await session.create_branch_from_content("dogs")


async def test_errors_change_nothing(sk_store: Store) -> None:
    session = SessionkeeperSession("errs", store=sk_store)
    await session.add_items(TURNS)
    for turn in (0, 4, -1, True, "1"):
        with pytest.raises(ValueError, match=r"does not contain a user message in branch 'main'"):
            await session.create_branch_from_turn(turn)  # type: ignore[arg-type]
    for blank in ("", "  "):
        with pytest.raises(ValueError, match="Branch name cannot be empty"):
            await session.create_branch_from_turn(1, blank)
    with pytest.raises(ValueError, match="Branch ID 'main' has already been used"):
        await session.create_branch_from_turn(1, "main")
    with pytest.raises(ValueError, match="Branch 'nope' does not exist"):
        await session.switch_to_branch("nope")
    with pytest.raises(ValueError, match="Branch 'nope' does not exist"):
        await session.delete_branch("nope")
    with pytest.raises(ValueError, match="Cannot delete the 'main' branch"):
        await session.delete_branch("main")
    with pytest.raises(ValueError, match="Branch ID cannot be empty"):
        await session.delete_branch(" ")
    assert [b["branch_id"] for b in await session.list_branches()] == ["main"]
    assert await sk_store.list_branches("errs") == []

    await session.create_branch_from_turn(3, "b")
    with pytest.raises(ValueError, match="Cannot delete current branch 'b'"):
        await session.delete_branch("b")
    assert session._current_branch_id == "b"
    await session.delete_branch("b", force=True)
    assert session._current_branch_id == "main"
    assert [b["branch_id"] for b in await session.list_branches()] == ["main"]
    with pytest.raises(ValueError, match="Branch ID 'b' has already been used"):
        await session.create_branch_from_turn(1, "b")  # names stay used after a delete
    await session.clear_session()
    await session.add_items(TURNS[:2])
    with pytest.raises(ValueError, match="Branch ID 'b' has already been used"):
        await session.create_branch_from_turn(1, "b")  # and after a clear


async def test_an_empty_branch_exists_once_it_holds_an_item(sk_store: Store) -> None:
    session = SessionkeeperSession("empty", store=sk_store)
    await session.add_items(TURNS[:2])
    name = await session.create_branch_from_turn(1)
    assert name.startswith("branch_from_turn_1_")
    assert await session.get_items() == []
    assert [b["branch_id"] for b in await session.list_branches()] == ["main"]
    await session.switch_to_branch("main")
    with pytest.raises(ValueError, match=f"Branch '{name}' does not exist"):
        await session.switch_to_branch(name)
    second = await session.create_branch_from_turn(1)
    assert second != name  # generated names never repeat


async def test_an_empty_branch_purged_as_a_ghost_is_made_again(sk_store: Store) -> None:
    """A branch from turn 1 is an empty store session, which the ghost purge removes. The
    object on it stays on it: its next item goes to the branch (made again from the same
    parent), never to main. Emptied by pops and purged, likewise."""
    session = SessionkeeperSession("ghostly", store=sk_store)
    await session.add_items(TURNS[:2])
    name = await session.create_branch_from_turn(1, "fresh")
    branch_id = branch_session_id("ghostly", name)
    assert await sk_store.delete_ghost_sessions(0) == 1
    assert not await sk_store.session_exists(branch_id)
    assert await session.get_items() == [] and session._current_branch_id == name
    assert await sk_store.session_exists(branch_id)  # the read made it again
    assert await sk_store.delete_ghost_sessions(0) == 1
    await session.add_items([{"role": "user", "content": "a fresh start"}])
    assert session._current_branch_id == name
    assert await session.get_items() == [{"role": "user", "content": "a fresh start"}]
    assert await session.get_items(branch_id="main") == TURNS[:2]
    made = await sk_store.get_session(branch_id)
    assert (made.parent_session_id, made.metadata[BRANCH_NAME]) == ("ghostly", name)

    # Switched to by another object, emptied by pops, purged: made again for it too.
    other = SessionkeeperSession("ghostly", store=sk_store)
    await other.switch_to_branch(name)
    assert await other.pop_item() is not None
    assert await sk_store.delete_ghost_sessions(0) == 1
    await other.add_items([{"role": "user", "content": "again"}])
    assert other._current_branch_id == name
    assert await other.get_items() == [{"role": "user", "content": "again"}]
    assert await other.get_items(branch_id="main") == TURNS[:2]


async def test_clear_removes_every_branch_and_returns_to_main(sk_store: Store) -> None:
    session = SessionkeeperSession("clr", store=sk_store)
    await session.add_items(TURNS)
    await session.create_branch_from_turn(2, "x")
    await session.add_items([{"role": "user", "content": "on x"}])
    await session.clear_session()
    assert session._current_branch_id == "main"
    assert await session.get_items() == [] and await session.list_branches() == []
    assert not await sk_store.session_exists(branch_session_id("clr", "x"))


async def test_the_current_branch_is_per_object_and_follows_deletes(sk_store: Store) -> None:
    """As in the SDK: a new object starts on main; a branch deleted (or cleared) by another
    object sends this one back to main at its next read or write."""
    one = SessionkeeperSession("two-objects", store=sk_store)
    await one.add_items(TURNS)
    await one.create_branch_from_turn(2, "x")
    await one.add_items([{"role": "user", "content": "on x"}])
    other = SessionkeeperSession("two-objects", store=sk_store)
    assert other._current_branch_id == "main"
    assert await other.get_items() == TURNS
    await other.switch_to_branch("x")
    assert len(await other.get_items()) == 3
    await one.delete_branch("x", force=True)
    assert await other.get_items() == TURNS
    assert other._current_branch_id == "main"
    await other.create_branch_from_turn(3, "y")
    await one.clear_session()
    await other.add_items([{"role": "user", "content": "after the clear"}])
    assert other._current_branch_id == "main"
    assert await one.get_items() == [{"role": "user", "content": "after the clear"}]


async def test_branches_deleted_at_once_all_stay_used(sk_store: Store) -> None:
    """Three objects delete three branches at the same moment: each name is recorded as
    used (a read-modify-write of the main session's metadata would keep one)."""
    names = ["a", "b", "c"]
    first = SessionkeeperSession("racing", store=sk_store)
    await first.add_items(TURNS)
    for name in names:
        await first.create_branch_from_turn(2, name)
        await first.add_items([{"role": "user", "content": f"on {name}"}])
    await first.switch_to_branch("main")
    objects = {name: SessionkeeperSession("racing", store=sk_store) for name in names}
    await asyncio.gather(*(o.delete_branch(n, force=True) for n, o in objects.items()))
    assert [b["branch_id"] for b in await first.list_branches()] == ["main"]
    for name in names:
        with pytest.raises(ValueError, match=f"Branch ID '{name}' has already been used"):
            await first.create_branch_from_turn(2, name)


async def test_usage_per_branch(sk_store: Store) -> None:
    session = SessionkeeperSession("usage", store=sk_store)
    await session.add_items(TURNS[:4])
    await session.store_run_usage(_Result(sdk_usage(1, 50, 30, reasoning=40)))  # type: ignore[arg-type]
    await session.create_branch_from_turn(2, "b")
    assert await session.get_session_usage("b") is None  # a new branch carries no usage
    await session.add_items([{"role": "user", "content": "branch q"}])
    await session.store_run_usage(_Result(sdk_usage(2, 100, 60)))  # type: ignore[arg-type]
    assert await session.get_session_usage("main") == {
        "requests": 1, "input_tokens": 50, "output_tokens": 30, "total_tokens": 80,
        "total_turns": 1,
    }  # fmt: skip
    assert await session.get_session_usage() == {
        "requests": 3, "input_tokens": 150, "output_tokens": 90, "total_tokens": 240,
        "total_turns": 2,
    }  # fmt: skip
    assert await session.get_session_usage("nope") is None
    main_turn = await session.get_turn_usage(2, branch_id="main")
    assert main_turn == {
        "requests": 1,
        "input_tokens": 50,
        "output_tokens": 30,
        "total_tokens": 80,
        "input_tokens_details": {
            "cache_write_tokens": 3,
            "cached_tokens": 1,
            "cache_write_tokens_details": None,
        },
        "output_tokens_details": {"reasoning_tokens": 40},  # more than output: kept as given
    }
    assert [t["user_turn_number"] for t in await session.get_turn_usage()] == [2]
    assert await session.get_turn_usage(1) == {}
    assert (await sk_store.get_usage("usage")).reasoning_tokens == 40


async def test_runner_on_a_branch(sk_store: Store) -> None:
    session = SessionkeeperSession("runner", store=sk_store)
    model = ScriptedModel(
        [text_message("Paris")],
        [text_message("Lyon")],
        [function_call("weather", '{"city": "Nice"}', "c1")],
        [text_message("Sunny")],
    )

    async def weather(city: str) -> str:
        return f"sunny in {city}"

    from agents import function_tool

    agent = Agent(name="t", model=model, tools=[function_tool(weather)])
    await Runner.run(agent, "Capital of France?", session=session)
    await Runner.run(agent, "Second city?", session=session)
    await session.create_branch_from_turn(2, "alt")
    result = await Runner.run(agent, "Weather in Nice?", session=session)
    assert result.final_output == "Sunny"
    await session.store_run_usage(result)
    texts = [item_text(i) for i in await session.get_items()]
    assert texts[:3] == ["Capital of France?", "Paris", "Weather in Nice?"]
    # The model saw the branch's history (turn 1 and the new question), not main's turn 2.
    assert [item_text(i) for i in model.inputs[2]] == texts[:3]
    assert await session.get_tool_usage() == [("weather", 1, 2)]
    assert await session.get_tool_usage("main") == []
    assert (await session.get_session_usage("alt") or {})["total_turns"] == 1
    assert len(await session.get_items(branch_id="main")) == 4


def contents(items: Items) -> list[Any]:
    return [item.get("content") if "content" in item else item.get("type") for item in items]


def test_a_branch_title_is_the_parents_and_the_name_within_the_limit() -> None:
    assert branch_title("Trip", "cheaper") == "Trip · cheaper"
    assert branch_title(None, "cheaper") == "cheaper"
    long = "x" * MAX_TITLE_LENGTH
    assert branch_title("Trip", long) == long  # the name alone when both do not fit
    assert branch_title("Trip", long + "y") is None  # then the parent's, as any fork
