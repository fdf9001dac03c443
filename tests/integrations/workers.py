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
