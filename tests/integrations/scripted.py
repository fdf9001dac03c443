"""Scripted stand-ins for the frameworks' models: canned replies, every input recorded.

No network: the OpenAI Agents SDK ``Model`` interface is implemented directly (``get_response``
for ``Runner.run``/``run_sync``, ``stream_response`` for ``run_streamed``).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator
from typing import Any

from agents import Model, ModelResponse, Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

_ids = itertools.count(1)


def text_message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{next(_ids)}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def function_call(name: str, arguments: str, call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=f"fc_{next(_ids)}",
        type="function_call",
        name=name,
        arguments=arguments,
        call_id=call_id,
        status="completed",
    )


class ScriptedModel(Model):
    """Replies with the queued outputs in order; ``inputs`` holds each call's input items."""

    def __init__(self, *turns: list[Any]) -> None:
        self.turns = list(turns)
        self.inputs: list[list[Any]] = []

    def queue(self, *outputs: Any) -> None:
        self.turns.append(list(outputs))

    def _next(self, input: Any) -> list[Any]:
        self.inputs.append(copy.deepcopy(input if isinstance(input, list) else [input]))
        if not self.turns:
            raise AssertionError("the scripted model was called more often than scripted")
        return self.turns.pop(0)

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any):
        return ModelResponse(output=self._next(input), usage=Usage(), response_id=None)

    async def stream_response(
        self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        output = self._next(input)
        response = Response.model_construct(
            id=f"resp_{next(_ids)}",
            created_at=0.0,
            model="scripted",
            object="response",
            output=output,
            parallel_tool_calls=False,
            tool_choice="auto",
            tools=[],
        )
        yield ResponseCompletedEvent(
            type="response.completed", response=response, sequence_number=0
        )
