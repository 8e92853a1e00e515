"""The change feed across real processes (spawned), on the backends that have one.

One process writes random operations over 100 keys while two watchers in
other processes, one through the sync API and one through the async API,
follow the store from revision 0: each receives every change exactly once
and in order (its list of changes equals the feed read back afterwards), and
replaying it gives the writer's final ``dump()``. A third watcher is killed
(SIGKILL) part-way and a new process resumes with ``since=`` the last
revision it reported: the two lists together are the whole feed, nothing
missed and nothing twice.

The default run writes 1,000 operations; ``make stress`` 5,000.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

import keyshelf

from .feed_workers import END, async_watcher, sync_watcher, writer
from .helpers import location

#: Backends with a change feed whose processes share one store.
FEED_BACKENDS = ("sqlite", "file", "redis", "postgres")


def _replay(events: list[tuple[Any, ...]]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for _revision, kind, key, value, _version in events:
        if kind == "set":
            state[key] = value
        else:
            state.pop(key, None)
    return state


def _get(results: Any, timeout: float = 600) -> tuple[Any, ...]:
    outcome: tuple[Any, ...] = results.get(timeout=timeout)
    assert outcome[-1] is None, f"{outcome[0]} failed:\n{outcome[-1]}"
    return outcome


def run_feed(backend: str, tmp_path: Path, ops: int) -> None:
    with location(backend, tmp_path) as (url, options):
        with keyshelf.open(url, history=100_000, **options) as kv:
            assert kv.revision() == 0
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(4), ctx.Queue()
        # Each watcher that is killed or resumed gets a queue of its own: a
        # process killed while its queue's feeder thread held the queue's lock
        # would leave that queue unusable.
        killed_out, resumed_out = ctx.Queue(), ctx.Queue()
        processes = [
            ctx.Process(target=writer, args=(url, options, ops, 7, barrier, results)),
            ctx.Process(target=sync_watcher, args=(url, options, 0, None, barrier, results)),
            ctx.Process(target=async_watcher, args=(url, options, 0, barrier, results)),
            ctx.Process(target=sync_watcher, args=(url, options, 0, ops // 3, barrier, killed_out)),
        ]
        for process in processes:
            process.start()
        try:
            # The third watcher reports what it saw, then is killed mid-follow.
            _, first_part, _ = _get(killed_out)
            processes[3].kill()
            processes[3].join(30)
            assert processes[3].exitcode is not None and processes[3].exitcode < 0
            outcomes = {outcome[0]: outcome for outcome in (_get(results) for _ in range(3))}
            resumed = ctx.Process(
                target=sync_watcher,
                args=(url, options, first_part[-1][0], None, None, resumed_out),
            )
            resumed.start()
            processes.append(resumed)
            _, second_part, _ = _get(resumed_out)
            for process in [*processes[:3], resumed]:
                process.join(60)
                assert process.exitcode == 0
        finally:
            for process in processes:
                if process.is_alive():
                    process.kill()
                    process.join(10)
        _, dump, last, _ = outcomes["writer"]
        with keyshelf.open(url, **options) as kv:
            reference = []
            with kv.watch(since=0) as watch:
                for event in watch:
                    reference.append(
                        (event.revision, event.type, event.key, event.value, event.version)
                    )
                    if event.key == END:
                        break
        assert reference[-1][0] == last
        revisions = [event[0] for event in reference]
        assert revisions == sorted(revisions)
        assert len(reference) > ops // 2  # most operations change something
        assert _replay(reference) == dump
        for name in ("sync", "async"):
            seen = outcomes[name][1]
            assert seen == reference, f"the {name} watcher's changes differ from the feed"
        # Resuming from the last revision the killed watcher reported: the tail,
        # exactly (a revision it had only partly seen would come again whole).
        assert first_part + second_part == reference


@pytest.mark.parametrize("backend", FEED_BACKENDS)
def test_two_watchers_in_other_processes_see_every_change_once(
    backend: str, tmp_path: Path
) -> None:
    run_feed(backend, tmp_path, ops=1000)


@pytest.mark.stress
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", FEED_BACKENDS)
def test_two_watchers_in_other_processes_see_every_change_once_soak(
    backend: str, tmp_path: Path
) -> None:
    run_feed(backend, tmp_path, ops=5000)
