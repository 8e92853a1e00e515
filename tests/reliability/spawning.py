"""Run worker functions in spawned processes and collect one outcome from each.

The multi-process tests (locks, transactions) start N processes on one
entry point, release them together through a barrier, and read one outcome
per process from a queue; a process that hangs is killed, never left behind.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


def run_workers(
    target: Callable[..., None],
    args_of: Callable[[int, Any, Any], tuple[Any, ...]],
    count: int,
    timeout: float = 600,
) -> list[Any]:
    """Run ``target(*args_of(who, barrier, results))`` in ``count`` spawned processes.

    ``barrier`` is a ``count``-party barrier the workers wait on to start
    together; each worker puts exactly one outcome on ``results``. Returns
    the outcomes (in arrival order) once every process exited with code 0.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(count), ctx.Queue()
    processes = [
        ctx.Process(target=target, args=args_of(who, barrier, results)) for who in range(count)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=timeout) for _ in processes]
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0, f"worker exit code {process.exitcode}"
    finally:
        for process in processes:
            if process.is_alive():  # a deadlock: do not leave it behind
                process.kill()
                process.join(10)
    return outcomes
