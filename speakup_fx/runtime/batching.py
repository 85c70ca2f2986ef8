"""Model calls handed up to whoever steps them, so calls from many streams step as one batch.

A stage that runs a hosted model does its work in ``steps(block)``: a generator that yields each
model call ``(stream, model_block)``, is sent that stream's outputs (what ``stream.process`` would
return) and returns its output block. The engine chains its stages' ``steps`` the same way. Run
alone (``run_batched([steps])``, as ``SpeakUp`` does) every call steps its stream by itself; run side
by side (the model server, one task per slot) each round steps the pending calls of every model
in one ``ModelHost.process_batch``. Both paths run the same code, so they give the same audio up to
the batch's floating-point rounding. This module imports no torch: the classic engine runs without it.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from speakup_fx.runtime.host import ModelStream

T = TypeVar("T")

ModelCall = tuple["ModelStream", np.ndarray]
"""A stream and its block: float32 ``(channels, k * hop)`` at the model's input rate."""

Steps = Generator[ModelCall, np.ndarray, T]
"""A computation that yields model calls, is sent each call's outputs ``(outputs, channels, frames)``, returns a ``T``."""


def run_batched(tasks: Sequence[Steps[T]]) -> list[T]:
    """Run ``tasks`` side by side; returns what each returns, in order.

    Each round gathers the call every unfinished task is waiting on and steps the calls of each
    model in one ``process_batch``; a task that makes no call finishes in the first round and never
    waits for another. A task appears once, so a stream appears at most once per batch.
    """
    results: list[Any] = [None] * len(tasks)
    waiting: dict[int, ModelCall] = {}

    def advance(index: int, outputs: np.ndarray | None) -> None:
        try:
            waiting[index] = tasks[index].send(outputs)  # type: ignore[arg-type]
        except StopIteration as finished:
            waiting.pop(index, None)
            results[index] = finished.value

    for index in range(len(tasks)):
        advance(index, None)
    while waiting:
        batches: dict[tuple[int, int], list[int]] = {}
        for index, (stream, _) in waiting.items():
            batches.setdefault((id(stream.host), id(stream.model)), []).append(index)
        for indices in batches.values():
            calls = [waiting[index] for index in indices]
            for index, outputs in zip(indices, calls[0][0].host.process_batch(calls), strict=True):
                advance(index, outputs)
    return results
