"""Functions run in child processes (spawned: they must be importable by name)."""

from __future__ import annotations

import asyncio


def append_items(url: str, session_id: str, writer: int, count: int) -> None:
    from sessionkeeper.integrations.openai_agents import SessionkeeperSession

    async def main() -> None:
        async with SessionkeeperSession.from_url(session_id, url) as session:
            for i in range(count):
                await session.add_items([{"role": "user", "content": f"w{writer} #{i}"}])

    asyncio.run(main())


def append_messages(url: str, session_id: str, writer: int, count: int) -> None:
    from langchain_core.messages import HumanMessage

    from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory

    history = SessionkeeperChatMessageHistory.from_url(session_id, url)
    try:
        for i in range(count):
            history.add_messages([HumanMessage(content=f"w{writer} #{i}")])
    finally:
        history.close()


def append_adk_events(url: str, session_id: str, writer: int, count: int) -> None:
    """``get_session`` then ``append_event``, ``count`` times, never retrying."""
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions
    from google.adk.sessions.base_session_service import GetSessionConfig
    from google.genai import types

    from sessionkeeper.integrations.adk import SessionkeeperSessionService

    async def main() -> None:
        async with SessionkeeperSessionService.from_url(url) as service:
            for i in range(count):
                session = await service.get_session(
                    app_name="app",
                    user_id="u",
                    session_id=session_id,
                    config=GetSessionConfig(num_recent_events=3),
                )
                assert session is not None
                event = Event(
                    invocation_id=f"w{writer}",
                    author="user",
                    content=types.Content(role="user", parts=[types.Part(text=f"w{writer} #{i}")]),
                    actions=EventActions(state_delta={f"w{writer}": i, "user:last": writer}),
                )
                await service.append_event(session, event)

    asyncio.run(main())
