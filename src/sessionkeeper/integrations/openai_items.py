"""OpenAI Agents SDK input items as store messages, without the SDK.

The mapping ``SessionkeeperSession`` uses (role, searchable text, chat-style tool-call
metadata, the item kept whole), written on plain dicts so that what needs no SDK (the importer
of the SDK's own session databases, ``transfer/read_openai.py``) can use it too. The SDK's
item types are only ever dicts here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from sessionkeeper.integrations._common import excerpt, keep_whole, read_whole

if TYPE_CHECKING:
    from sessionkeeper.models import Message

__all__ = [
    "call_key",
    "is_output",
    "item_role",
    "item_row",
    "item_text",
    "message_item",
    "message_type",
    "output_key",
    "tool_name",
]

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
# Output items whose type does not end in "_output".
_OUTPUT_TYPES = frozenset({"mcp_approval_response"})
# Fields that hold no searchable text (ids, opaque or binary payloads).
_OPAQUE = frozenset(
    {"id", "type", "status", "encrypted_content", "result", "image_url", "file_data", "file_id"}
)
_PART_LABELS = {"input_image": "[image]", "input_audio": "[audio]"}


def is_output(item: Mapping[str, Any]) -> bool:
    kind = item.get("type")
    return isinstance(kind, str) and (kind.endswith("_output") or kind in _OUTPUT_TYPES)


def item_role(item: Mapping[str, Any]) -> str:
    """The store role of an input item: user | system | assistant | tool."""
    role = item.get("role")
    if isinstance(role, str) and role in _ROLES:
        return _ROLES[role]
    return "tool" if is_output(item) else "assistant"


def _parts_text(parts: Iterable[Any]) -> str:
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, Mapping):
            for key in ("text", "refusal"):
                value = part.get(key)
                if isinstance(value, str):
                    pieces.append(value)
                    break
            else:
                kind = part.get("type")
                if kind == "input_file":
                    name = part.get("filename")
                    pieces.append(f"[file {name}]" if isinstance(name, str) else "[file]")
                elif isinstance(kind, str) and kind in _PART_LABELS:
                    pieces.append(_PART_LABELS[kind])
    return "\n".join(pieces)


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _parts_text(value)
    return ""


def _leaves(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if value:
            out.append(value)
    elif isinstance(value, Mapping):
        for key, child in value.items():
            if key not in _OPAQUE:
                _leaves(child, out)
    elif isinstance(value, list):
        for child in value:
            _leaves(child, out)


def item_text(item: Mapping[str, Any]) -> str:
    """The searchable text of an input item: what a reader (or the model) would read in it."""
    if "content" in item and item.get("type") in (None, "message"):
        return _value_text(item.get("content"))
    kind = item.get("type")
    if kind in ("function_call", "custom_tool_call"):
        arguments = item.get("arguments", item.get("input", ""))
        return f"{item.get('name', '')}({arguments if isinstance(arguments, str) else ''})"
    if kind == "reasoning":
        return "\n".join(
            text for key in ("summary", "content") if (text := _value_text(item.get(key)))
        )
    if is_output(item) and "output" in item:
        output = item.get("output")
        text = _value_text(output)
        if text or isinstance(output, str | list):
            return text
    leaves: list[str] = []
    _leaves(item, leaves)
    return "\n".join(leaves)


def call_key(item: Mapping[str, Any]) -> str | None:
    """What ties a call to its output: the call's ``call_id`` (an MCP approval request's id)."""
    call_id = item.get("call_id")
    if isinstance(call_id, str):
        return call_id
    if item.get("type") == "mcp_approval_request" and isinstance(item.get("id"), str):
        return cast(str, item["id"])
    return None


def output_key(item: Mapping[str, Any]) -> str | None:
    key = item.get("call_id", item.get("approval_request_id"))
    return key if isinstance(key, str) else None


def item_row(
    item: Mapping[str, Any],
    count: Callable[[str], int],
    more: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The store message for one input item: role, content, metadata (the item whole, with
    ``more`` beside it), and ``token_count`` only when the content is an excerpt (``count``
    of the whole text)."""
    if not isinstance(item, Mapping):
        raise TypeError(f"session items must be dicts (TResponseInputItem), got {type(item)!r}")
    role = item_role(item)
    text = item_text(item)
    content, clipped = excerpt(text)
    extra: dict[str, Any] = dict(more or {})
    if item.get("type") == "function_call" and isinstance(item.get("call_id"), str):
        function = {"name": item.get("name"), "arguments": item.get("arguments")}
        extra["tool_calls"] = [{"id": item["call_id"], "type": "function", "function": function}]
    elif role == "tool" and (key := output_key(item)) is not None:
        extra["tool_call_id"] = key
    if clipped:
        extra["excerpt"] = True
    row: dict[str, Any] = {
        "role": role,
        "content": content,
        "metadata": keep_whole("item", item, extra),
    }
    if clipped:
        row["token_count"] = count(text)
    return row


def message_item(message: Message) -> dict[str, Any]:
    """The input item a stored message holds; a message written by other means (the CLI, the
    REST API) reads as the message it is."""
    item = read_whole(message.metadata, "item")
    if isinstance(item, dict):
        return item
    tool_call_id = message.metadata.get("tool_call_id")
    if message.role == "tool" and isinstance(tool_call_id, str):
        output = {"type": "function_call_output", "call_id": tool_call_id}
        return {**output, "output": message.content}
    role = "assistant" if message.role == "tool" else message.role
    return {"role": role, "content": message.content}


# What AdvancedSQLiteSession records of each item (its message_structure table), agents 0.25:
# the item's kind, and the tool it calls.

_TYPE_NAMED_TOOLS = frozenset(
    {
        "computer_call",
        "file_search_call",
        "web_search_call",
        "code_interpreter_call",
        "shell_call",
        "apply_patch_call",
    }
)


def message_type(item: Mapping[str, Any]) -> str:
    """``user``, ``assistant``, else the item's ``type`` (``other`` without one)."""
    role = item.get("role")
    if role in ("user", "assistant"):
        return cast(str, role)
    kind = item.get("type")
    return str(kind) if kind else "other"


def tool_name(item: Mapping[str, Any]) -> str | None:
    """The tool an item calls or answers: an MCP call's ``server.name``, a built-in tool's
    type, tool search's ``tool_search``, else its ``namespace.name`` (the bare name when the
    namespace repeats it, the SDK's deferred top-level shape); None for other items."""
    kind = item.get("type")
    if kind in ("mcp_call", "mcp_approval_request") and "server_label" in item:
        server, name = item.get("server_label"), item.get("name")
        if name and server:
            return f"{server}.{name}"
        return str(server or name) if (server or name) else None
    if kind in ("tool_search_call", "tool_search_output"):
        return "tool_search"
    if kind in _TYPE_NAMED_TOOLS:
        return cast(str, kind)
    if "name" in item:
        name = item.get("name")
        if name is None:
            return None
        namespace = item.get("namespace")
        name, namespace = str(name), None if namespace is None else str(namespace)
        if namespace and name and namespace != name:
            return f"{namespace}.{name}"
        return name
    return None
