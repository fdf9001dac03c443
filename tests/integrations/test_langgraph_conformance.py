"""langgraph-checkpoint-conformance against both savers, on every database, every capability.

The suite (LangGraph's own, from PyPI) drives a saver through its async methods only. The
async saver runs it as it is. The blocking saver runs it through ``Blocking``, which turns
each async call into the saver's blocking method on a worker thread, so the suite checks the
blocking API (``put``, ``get_tuple``, ``list`` …) as a graph run with ``invoke`` uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import CapabilityReport, ProgressCallbacks

from sessionkeeper import Store
from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver, SessionkeeperSaver

EVERY_CAPABILITY = {c.value for c in ALL_CAPABILITIES}


class Blocking(BaseCheckpointSaver[str]):
    """The blocking methods of ``saver`` behind the async names the suite calls."""

    def __init__(self, saver: SessionkeeperSaver) -> None:
        super().__init__(serde=saver.serde)
        self.saver = saver

    def get_next_version(self, current: str | None, channel: None) -> str:
        return self.saver.get_next_version(current, channel)

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.saver.get_tuple, config)

    async def alist(self, config: Any, **kwargs: Any) -> AsyncIterator[CheckpointTuple]:  # type: ignore[override]
        for item in await asyncio.to_thread(lambda: list(self.saver.list(config, **kwargs))):
            yield item

    async def aput(self, *args: Any) -> Any:
        return await asyncio.to_thread(self.saver.put, *args)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(self.saver.put_writes, *args, **kwargs)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.saver.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.saver.delete_for_runs, run_ids)

    async def acopy_thread(self, source: str, target: str) -> None:
        await asyncio.to_thread(self.saver.copy_thread, source, target)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.saver.prune, thread_ids, strategy=strategy)


def _check(report: CapabilityReport) -> None:
    report.print_report()
    failures = {c: r.failures for c, r in report.results.items() if r.failures}
    assert not failures, failures
    assert {c for c, r in report.results.items() if r.detected} == EVERY_CAPABILITY
    assert report.passed_all() and report.conformance_level() == "FULL"
    counts = {c: r.tests_passed for c, r in sorted(report.results.items())}
    print(report.checkpointer_name, counts, "total", sum(counts.values()))


@pytest.mark.parametrize("kind", ["async", "blocking"])
async def test_conformance_every_capability(sk_store: Store, kind: str) -> None:
    @checkpointer_test(name=f"{kind} saver on {sk_store.dialect}")
    async def saver() -> AsyncIterator[BaseCheckpointSaver[str]]:
        if kind == "async":
            yield AsyncSessionkeeperSaver(sk_store)
        else:
            yield Blocking(SessionkeeperSaver(sk_store))

    _check(await validate(saver, progress=ProgressCallbacks.quiet()))
