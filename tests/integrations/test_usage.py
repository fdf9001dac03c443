"""The integrations record usage where their framework reports it (issue 19 item 4), on SQLite
(file and memory) and PostgreSQL, with the frameworks' real runners and scripted models:

- OpenAI Agents SDK: ``SessionkeeperSession.store_run_usage(result)``, ``get_session_usage``,
  ``get_turn_usage``, with ``AdvancedSQLiteSession``'s names and meanings (modelled on the
  SDK's own tests of those methods);
- Google ADK: each event's ``usage_metadata``;
- LangChain: each AI message's ``usage_metadata``.
"""

from __future__ import annotations

from typing import Any

import pytest
from adk_scripted import ScriptedLlm
from agents import Agent, Model, ModelProvider, ModelResponse, RunConfig, Runner
from agents.usage import Usage as SdkUsage
from google.adk.agents import LlmAgent
from google.adk.events import Event
from google.adk.models.llm_request import LlmRequest
from google.adk.runners import Runner as AdkRunner
from google.genai import types
from langchain_core.messages import AIMessage, HumanMessage
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from scripted import ScriptedModel, text_message

from sessionkeeper import Store, Usage
from sessionkeeper.integrations.adk import SessionkeeperSessionService
from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory
from sessionkeeper.integrations.openai_agents import SessionkeeperSession


def sdk_usage(requests: int, inp: int, out: int, cached: int = 0, reasoning: int = 0) -> SdkUsage:
    return SdkUsage(
        requests=requests,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out,
        input_tokens_details=InputTokensDetails(cached_tokens=cached, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=reasoning),
    )


class MeteredModel(ScriptedModel):
    """A scripted model that reports the usage queued with each reply."""

    def __init__(self, *turns: tuple[list[Any], SdkUsage]) -> None:
        super().__init__(*(t[0] for t in turns))
        self.usages = [t[1] for t in turns]

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kw: Any):
        return ModelResponse(output=self._next(input), usage=self.usages.pop(0), response_id=None)


class Provider(ModelProvider):
    def __init__(self, model: Model) -> None:
        self.model = model

    def get_model(self, model_name: str | None) -> Model:
        return self.model


# ── OpenAI Agents SDK ───────────────────────────────────────────────────────

RUNS = [
    sdk_usage(1, 50, 30, cached=10, reasoning=5),
    sdk_usage(2, 75, 45, cached=20, reasoning=15),
    sdk_usage(1, 400, 120),
]


async def test_three_agent_runs_give_exact_totals_and_cost(sk_store: Store) -> None:
    session = SessionkeeperSession("runs", store=sk_store)
    model = MeteredModel(*(([text_message(f"answer {i}")], u) for i, u in enumerate(RUNS)))
    # The agent names its model, as in production; the provider hands out the scripted one.
    agent = Agent(name="priced", model="gpt-4o")
    config = RunConfig(model_provider=Provider(model))
    for i in range(3):
        result = await Runner.run(agent, f"question {i}", session=session, run_config=config)
        await session.store_run_usage(result)
    assert await session.get_session_usage() == {
        "requests": 4,
        "input_tokens": 525,
        "output_tokens": 195,
        "total_tokens": 720,
        "total_turns": 3,
    }
    turns = await session.get_turn_usage()
    assert isinstance(turns, list)
    assert [t["user_turn_number"] for t in turns] == [1, 2, 3]
    assert turns[1] == {
        "user_turn_number": 2,
        "requests": 2,
        "input_tokens": 75,
        "output_tokens": 45,
        "total_tokens": 120,
        # The SDK's own details, as AdvancedSQLiteSession gives them back.
        "input_tokens_details": {
            "cache_write_tokens": 0,
            "cached_tokens": 20,
            "cache_write_tokens_details": None,
        },
        "output_tokens_details": {"reasoning_tokens": 15},
    }
    one = await session.get_turn_usage(1)
    assert isinstance(one, dict) and "user_turn_number" not in one
    assert one["input_tokens_details"]["cached_tokens"] == 10
    assert await session.get_turn_usage(9) == {}
    totals = await sk_store.get_usage("runs")
    assert (totals.requests, totals.input_tokens, totals.output_tokens) == (4, 525, 195)
    assert (totals.cached_tokens, totals.reasoning_tokens) == (30, 20)
    assert totals.cost_status == "known" and totals.by_model[0].model == "gpt-4o"


async def test_usage_of_a_turn_is_replaced_and_an_unnamed_model_costs_unknown(
    sk_store: Store,
) -> None:
    session = SessionkeeperSession("again", store=sk_store)
    model = MeteredModel(([text_message("a")], RUNS[0]), ([text_message("b")], RUNS[1]))
    agent = Agent(name="unnamed", model=model)  # a Model object: no model name to price
    first = await Runner.run(agent, "q", session=session)
    await session.store_run_usage(first)
    await session.store_run_usage(first)  # the same turn again: replaced, not added
    usage = await session.get_session_usage()
    assert usage is not None and (usage["requests"], usage["total_turns"]) == (1, 1)
    totals = await sk_store.get_usage("again")
    assert totals.cost_status == "unknown" and totals.to_dict()["cost_usd"] == "unknown"


async def test_no_turn_or_no_usage_records_nothing(sk_store: Store) -> None:
    session = SessionkeeperSession("empty", store=sk_store)
    assert await session.get_session_usage() is None
    assert await session.get_turn_usage() == []
    model = ScriptedModel([text_message("x")])
    result = await Runner.run(Agent(name="t", model=model), "hi", session=session)
    await session.clear_session()  # no user turn left: the usage has nowhere to go
    await session.store_run_usage(result)
    assert await session.get_session_usage() is None


# ── Google ADK ──────────────────────────────────────────────────────────────


class MeteredLlm(ScriptedLlm):
    """The scripted ADK model, reporting Gemini-style usage on each response."""

    async def generate_content_async(self, llm_request: LlmRequest, stream: bool = False):
        async for response in super().generate_content_async(llm_request, stream):
            response.usage_metadata = types.GenerateContentResponseUsageMetadata(
                prompt_token_count=100,
                candidates_token_count=20,
                thoughts_token_count=7,
                cached_content_token_count=40,
                total_token_count=127,
            )
            response.model_version = "gemini-2.5-flash"
            yield response


async def test_adk_events_record_their_usage_metadata(sk_store: Store) -> None:
    service = SessionkeeperSessionService(sk_store)
    await service.create_session(app_name="app", user_id="ada", session_id="g")
    model = MeteredLlm(replies=["one", "two", "three"])
    runner = AdkRunner(
        agent=LlmAgent(name="assistant", model=model), app_name="app", session_service=service
    )
    for text in ("a", "b", "c"):
        message = types.Content(role="user", parts=[types.Part(text=text)])
        async for _ in runner.run_async(user_id="ada", session_id="g", new_message=message):
            pass
    stored = await sk_store.get_messages("g")
    assert [m.usage for m in stored if m.role == "user"] == [None] * 3
    assert [m.usage for m in stored if m.role == "assistant"] == [
        Usage(100, 27, 40, 7, 1, "gemini-2.5-flash")
    ] * 3
    totals = await sk_store.get_usage("g")
    assert (totals.input_tokens, totals.output_tokens, totals.requests) == (300, 81, 3)
    assert totals.cost_status == "known"
    # The event still reads back whole, usage_metadata included.
    got = await service.get_session(app_name="app", user_id="ada", session_id="g")
    assert got is not None
    replies: list[Event] = [e for e in got.events if e.author == "assistant"]
    assert replies[0].usage_metadata is not None
    assert replies[0].usage_metadata.prompt_token_count == 100


# ── LangChain ───────────────────────────────────────────────────────────────


async def test_langchain_ai_messages_record_their_usage_metadata(sk_store: Store) -> None:
    history = SessionkeeperChatMessageHistory("lc", store=sk_store)
    reply = AIMessage(
        content="hello",
        usage_metadata={
            "input_tokens": 30,
            "output_tokens": 12,
            "total_tokens": 42,
            "input_token_details": {"cache_read": 8},
            "output_token_details": {"reasoning": 4},
        },
        response_metadata={"model_name": "claude-sonnet-4-5"},
    )
    plain = AIMessage(content="no usage")
    odd = AIMessage(
        content="odd", usage_metadata={"input_tokens": -5, "output_tokens": 3, "total_tokens": 3}
    )
    await history.aadd_messages([HumanMessage(content="hi"), reply, plain, odd])
    stored = await sk_store.get_messages("lc")
    assert [m.usage for m in stored] == [
        None,
        Usage(30, 12, 8, 4, 1, "claude-sonnet-4-5"),
        None,
        Usage(0, 3, 0, 0, 1, None),  # a count no provider sends is 0, the message is kept
    ]
    assert (await history.aget_messages())[1] == reply  # still the message it was
    totals = await sk_store.get_usage("lc")
    assert totals.cost_status == "partial" and totals.unknown_models == [None]


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic, on the odd values set
@pytest.mark.parametrize("value", [None, "x", {"input_tokens": 1.5}])
async def test_langchain_odd_usage_never_loses_the_message(sk_store: Store, value: Any) -> None:
    history = SessionkeeperChatMessageHistory("lc-odd", store=sk_store)
    message = AIMessage(content="kept")
    object.__setattr__(message, "usage_metadata", value)
    await history.aadd_messages([message])
    assert [m.content for m in await sk_store.get_messages("lc-odd")] == ["kept"]


# ── LangGraph (its messages are mirrored as the session's) ───────────────────


async def test_langgraph_mirrored_ai_messages_keep_their_usage(sk_store: Store) -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph

    from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver

    def chatbot(state: MessagesState) -> dict[str, Any]:
        n = len(state["messages"])
        reply = AIMessage(
            content=f"reply {n}",
            usage_metadata={"input_tokens": 10 * n, "output_tokens": 3, "total_tokens": 10 * n + 3},
            response_metadata={"model_name": "gpt-4o-mini"},
        )
        return {"messages": [reply]}

    graph = StateGraph(MessagesState)
    graph.add_node("chatbot", chatbot)
    graph.add_edge(START, "chatbot")
    graph.add_edge("chatbot", END)
    app = graph.compile(checkpointer=AsyncSessionkeeperSaver(sk_store))
    thread = {"configurable": {"thread_id": "lg"}}
    for text in ("a", "b"):
        await app.ainvoke({"messages": [HumanMessage(content=text)]}, thread)
    stored = await sk_store.get_messages("lg")
    assert [m.usage for m in stored] == [
        None,
        Usage(10, 3, model="gpt-4o-mini"),
        None,
        Usage(30, 3, model="gpt-4o-mini"),
    ]
    assert (await sk_store.get_usage("lg")).input_tokens == 40
