"""A scripted ADK model: answers from a list, records every request (no network)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types


class ScriptedLlm(BaseLlm):
    """Replies with ``replies`` in order (text, or a ``types.Part`` such as a function call)."""

    model: str = "scripted"
    replies: list[Any] = []
    requests: list[LlmRequest] = []

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(llm_request.model_copy(deep=True))
        reply = self.replies.pop(0)
        part = reply if isinstance(reply, types.Part) else types.Part(text=str(reply))
        yield LlmResponse(content=types.Content(role="model", parts=[part]))
