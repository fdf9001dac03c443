"""SessionkeeperMessageHistory: Pydantic AI runs whose history lives in the store.

Offline, with Pydantic AI's own TestModel and FunctionModel: a two-turn run whose second turn
reads the first from the store, every message identical after the round trip; every part kind
through ``ModelMessagesTypeAdapter`` exactly (as Pydantic AI's own JSON round trip gives it
back); a save is one transaction; the session is an ordinary store session.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import (
    BinaryContent,
    DocumentUrl,
    FilePart,
    ImageUrl,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    RetryInfo,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RequestUsage

from sessionkeeper import Store, open_store
from sessionkeeper.errors import TooLarge
from sessionkeeper.integrations.pydantic_ai import SESSION_TYPE, SessionkeeperMessageHistory

T = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def weather_agent(model: object) -> Agent[None, str]:
    agent = Agent(model, instructions="Be brief.")  # type: ignore[call-overload]

    @agent.tool_plain
    def forecast(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}, 21.5 °C"

    return agent  # type: ignore[no-any-return]


def same_json(a: list[ModelMessage], b: list[ModelMessage]) -> bool:
    return ModelMessagesTypeAdapter.dump_json(a) == ModelMessagesTypeAdapter.dump_json(b)


async def test_two_turns_with_history_loaded_from_the_store(file_db_url: str) -> None:
    agent = weather_agent(TestModel(custom_output_text="Sunny."))

    async with SessionkeeperMessageHistory.from_url("trip-1", file_db_url) as history:
        first = await agent.run("Weather in Paris?", message_history=await history.load())
        await history.save(first.new_messages())

    # a new history (and store): turn 2 can only get turn 1 from the database
    async with SessionkeeperMessageHistory.from_url("trip-1", file_db_url) as history:
        loaded = await history.load()
        assert loaded == first.all_messages()  # identical, message by message
        second = await agent.run("And tomorrow?", message_history=loaded)
        assert second.all_messages()[: len(loaded)] == loaded
        await history.save(second.new_messages())
        everything = await history.load()
        assert everything == second.all_messages()
        assert same_json(everything, second.all_messages())
        store = await history.get_store()
        info = await store.get_session("trip-1")
        assert info.session_type == SESSION_TYPE
        assert info.title == "Weather in Paris?"
        assert info.message_count == len(everything)
        roles = [m.role for m in await store.get_messages("trip-1")]
        # the prompt, the tool call, its return, the answer; then (TestModel calls tools only
        # on a run's first turn with none in the history) the prompt and the answer
        assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant"]


async def test_the_model_sees_the_stored_first_turn(sk_store: Store) -> None:
    seen: list[list[str]] = []

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(
            [
                p.content
                for m in messages
                for p in m.parts
                if isinstance(p, UserPromptPart | TextPart) and isinstance(p.content, str)
            ]
        )
        return ModelResponse(parts=[TextPart(f"Answer {len(seen)}")], model_name="function:reply:")

    agent = Agent(FunctionModel(reply))
    history = SessionkeeperMessageHistory("chat-1", store=sk_store, agent_id="helper")
    for question in ["My name is Ada.", "What is my name?"]:
        result = await agent.run(question, message_history=await history.load())
        await history.save(result.new_messages())
    assert seen[1] == ["My name is Ada.", "Answer 1", "What is my name?"]
    messages = await sk_store.get_messages("chat-1")
    assert [(m.role, m.content, m.model) for m in messages] == [
        ("user", "My name is Ada.", None),
        ("assistant", "Answer 1", "function:reply:"),
        ("user", "What is my name?", None),
        ("assistant", "Answer 2", "function:reply:"),
    ]
    hits = await sk_store.search_messages("name", session_id="chat-1")
    assert {h.seq for h in hits} == {1, 3}
    assert (await sk_store.get_session("chat-1")).agent_id == "helper"


def every_part() -> list[ModelMessage]:
    return [
        ModelRequest(
            parts=[
                SystemPromptPart("Be terse.", timestamp=T),
                UserPromptPart(
                    [
                        "Look at these",
                        ImageUrl("https://example.com/a.png"),
                        BinaryContent(b"\x89PNG\x00\xff", media_type="image/png"),
                        DocumentUrl("https://example.com/d.pdf"),
                    ],
                    timestamp=T,
                ),
            ],
            instructions="Answer well.",
            timestamp=T,
        ),
        ModelResponse(
            parts=[
                ThinkingPart("maybe 1e-07 of it", signature="c2ln", provider_name="anthropic"),
                TextPart("Calling tools."),
                ToolCallPart("forecast", {"city": "Paris", "x": 1.5e-7, "z": -0.0}, "c1"),
                ToolCallPart("other", '{"a": 1}', tool_call_id="c2"),
                FilePart(BinaryContent(b"\x00\x01\x02", media_type="image/jpeg")),
            ],
            usage=RequestUsage(input_tokens=10, output_tokens=5, details={"reasoning": 3}),
            model_name="gpt-x",
            timestamp=T,
            provider_name="openai",
            provider_details={"f": 1e16, "n": -0.0, "big": 2**70},
            provider_response_id="r1",
            finish_reason="tool_call",
            duration=timedelta(seconds=1.25),
        ),
        ModelRequest(
            parts=[
                ToolReturnPart("forecast", {"temp": 21.5, "sky": "clear"}, "c1", timestamp=T),
                ToolReturnPart(
                    "other",
                    [{"type": "missing", "loc": ("a",), "msg": "Field required", "input": {}}],
                    "c2",
                    outcome="retried",
                    retry=RetryInfo("validation_error"),
                    timestamp=T,
                ),
                RetryFeedbackPart(
                    "Please answer in French.", retry=RetryInfo("model_retry"), timestamp=T
                ),
            ],
            timestamp=T,
        ),
        ModelResponse(parts=[TextPart("Il fait beau. ✓ \u00e9\U0001f600")], timestamp=T),
    ]


async def test_every_part_kind_round_trips_exactly(sk_store: Store) -> None:
    messages = every_part()
    history = SessionkeeperMessageHistory("parts", store=sk_store)
    await history.save(messages)
    loaded = await history.load()
    # Exactly what Pydantic AI's own JSON round trip gives (it fills in media types and
    # makes image bytes a BinaryImage), and a fixed point of it.
    own = ModelMessagesTypeAdapter.validate_json(ModelMessagesTypeAdapter.dump_json(messages))
    assert loaded == own
    assert same_json(loaded, own)
    assert loaded[3] == messages[3]  # no media to fill in: equal to what was saved
    assert loaded[1].parts[2].args == {"city": "Paris", "x": 1.5e-7, "z": -0.0}  # type: ignore[union-attr]
    assert str(loaded[1].provider_details["n"]) == "-0.0"  # type: ignore[index]
    assert loaded[0].parts[1].content[2].data == b"\x89PNG\x00\xff"  # type: ignore[index,union-attr]
    # saved again and loaded, nothing changes
    again = SessionkeeperMessageHistory("parts-2", store=sk_store)
    await again.save(loaded)
    assert await again.load() == loaded

    stored = await sk_store.get_messages("parts")
    assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[0].content.splitlines() == [
        "Be terse.",
        "Look at these",
        "[file image/png]",
        "[file image/png]",
        "[file application/pdf]",
    ]
    assert (
        'forecast({"city":"Paris"' in stored[1].content and "[file image/jpeg]" in stored[1].content
    )
    assert stored[1].model == "gpt-x"
    assert stored[2].content.startswith('forecast → {"temp":21.5,"sky":"clear"}')
    assert "Please answer in French." in stored[2].content


async def test_a_save_is_one_transaction(sk_store: Store) -> None:
    history = SessionkeeperMessageHistory("tx", store=sk_store)
    ok = ModelRequest(parts=[UserPromptPart("Hello", timestamp=T)])
    await history.save([ok])
    huge = ModelRequest(
        parts=[UserPromptPart([BinaryContent(b"x" * 900_000, media_type="image/png")])]
    )
    with pytest.raises(TooLarge):
        await history.save([ok, huge])
    with pytest.raises(TypeError):
        await history.save([ok, {"kind": "request"}])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        await history.save("Hello")  # type: ignore[arg-type]
    assert await history.load() == [ok]
    await history.save([])
    assert (await sk_store.get_session("tx")).message_count == 1


async def test_messages_written_by_other_means_read_as_plain_messages(sk_store: Store) -> None:
    await sk_store.create_session(session_id="cli")
    await sk_store.add_message("cli", "system", "Be kind.")
    await sk_store.add_message("cli", "user", "Hi")
    await sk_store.add_message("cli", "assistant", "Hello!", model="m1")
    loaded = await SessionkeeperMessageHistory("cli", store=sk_store).load()
    assert [type(m).__name__ for m in loaded] == ["ModelRequest", "ModelRequest", "ModelResponse"]
    assert isinstance(loaded[0].parts[0], SystemPromptPart)
    assert loaded[1].parts[0].content == "Hi"  # type: ignore[union-attr]
    assert loaded[2].parts[0].content == "Hello!" and loaded[2].model_name == "m1"  # type: ignore[union-attr]
    # and a model can continue it
    result = await Agent(TestModel(custom_output_text="Sure.")).run("More?", message_history=loaded)
    assert result.output == "Sure."


async def test_missing_session_loads_empty_and_clear_keeps_it(sk_store: Store) -> None:
    history = SessionkeeperMessageHistory("new", store=sk_store, user_id="u-1", title="T")
    assert await history.load() == []
    await history.save([ModelRequest(parts=[UserPromptPart("Hi", timestamp=T)])])
    info = await sk_store.get_session("new")
    assert (info.user_id, info.title) == ("u-1", "T")
    await history.clear()
    assert await history.load() == []
    assert (await sk_store.get_session("new")).message_count == 0


def test_run_sync_with_the_blocking_forms(file_db_url: str) -> None:
    agent = weather_agent(TestModel(custom_output_text="Sunny."))
    history = SessionkeeperMessageHistory.from_url("sync-1", file_db_url)
    try:
        history.clear_sync()
        for question in ["Paris?", "Rome?"]:
            result = agent.run_sync(question, message_history=history.load_sync())
            history.save_sync(result.new_messages())
        assert history.load_sync() == result.all_messages()
    finally:
        history.close_sync()


def test_missing_framework_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['pydantic_ai'] = None\n"
        "try:\n"
        "    import sessionkeeper.integrations.pydantic_ai\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert "pip install 'sessionkeeper[pydantic-ai]'" in out.stdout


def test_readme_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("### Pydantic AI", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(code)
    for _ in range(2):  # a second run starts the demo afresh
        out = subprocess.run(
            [sys.executable, "example.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        lines = out.stdout.splitlines()
        assert "turn 2 saw 4 earlier messages" in lines
        assert "pydantic-ai 'What is the weather in Paris?' 6" in lines
        assert "identical after the round trip: True" in lines


async def test_store_given_is_not_closed(db_url: str) -> None:
    store = await open_store(db_url)
    async with SessionkeeperMessageHistory("x", store=store) as history:
        await history.save([ModelRequest(parts=[UserPromptPart("Hi", timestamp=T)])])
    assert (await store.get_session("x")).message_count == 1
    await store.close()


async def test_responses_record_their_usage(sk_store: Store) -> None:
    """Each ModelResponse's usage is stored on its message: the session's totals are the
    run's, and the message still round-trips exactly."""
    agent = weather_agent(TestModel(custom_output_text="Sunny."))
    history = SessionkeeperMessageHistory("usage-1", store=sk_store)
    result = await agent.run("Weather in Paris?", message_history=await history.load())
    await history.save(result.new_messages())
    run = result.usage
    totals = await sk_store.get_usage("usage-1")
    responses = [m for m in result.new_messages() if isinstance(m, ModelResponse)]
    assert totals.messages == len(responses) == totals.requests
    assert (totals.input_tokens, totals.output_tokens) == (run.input_tokens, run.output_tokens)
    assert {u.model for u in totals.by_model} == {responses[0].model_name}
    assert await history.load() == result.all_messages()
