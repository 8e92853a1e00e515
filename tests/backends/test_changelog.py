"""The memory feed's doorbell (_changelog.Doorbell): no wakeup is missed, none is paid for.

A writer wakes the condition only when a watcher is counted as waiting; a
watcher counts itself under the condition's lock before it waits. These
tests use a real condition that counts its ``notify_all`` calls.
"""

from __future__ import annotations

import threading

from keyshelf.backends._changelog import ChangeLog
from keyshelf.records import Record


class _CountingCondition(threading.Condition):
    def __init__(self, lock: threading.RLock) -> None:
        super().__init__(lock)
        self.notified = 0

    def notify_all(self) -> None:
        self.notified += 1
        super().notify_all()


def _record(i: int) -> Record:
    return Record("int", str(i).encode(), None, None, 0, i, 1)


def _log() -> tuple[threading.RLock, _CountingCondition, ChangeLog]:
    lock = threading.RLock()
    condition = _CountingCondition(lock)
    log = ChangeLog(condition)
    log.enable(1000, None)
    return lock, condition, log


def test_no_watcher_no_notify_and_a_waiting_watcher_is_woken() -> None:
    lock, condition, log = _log()
    with lock:
        log.record("", "a", None, _record(1))
        with log.group():
            log.record("", "b", None, _record(2))
            log.record("", "c", None, _record(3))
    assert condition.notified == 0  # nobody waited: no notify_all at all
    assert [c.revision for c in log.read(None, 0, 10)] == [1, 2, 2]

    woken: list[bool] = []

    def watch() -> None:
        with lock:
            woken.append(log.condition.wait(60))

    watcher = threading.Thread(target=watch)
    watcher.start()
    while True:  # until the watcher is counted: it then waits, or is about to
        with lock:
            if log.condition.waiting:
                break
    with lock:
        log.record("", "d", None, _record(4))
    watcher.join(60)
    assert woken == [True]  # notified, not timed out
    assert condition.notified == 1 and log.condition.waiting == 0


def test_a_watcher_following_a_writer_never_misses_a_wakeup() -> None:
    """A watcher waits for each next revision; every wait ends by a notify, never by timeout."""
    lock, condition, log = _log()
    writes = 3000
    timed_out: list[int] = []

    def watch() -> None:
        seen = 0
        while seen < writes:
            with lock:
                while log.revision <= seen:
                    if not log.condition.wait(60):
                        timed_out.append(seen)
                        return
                seen = log.revision

    watcher = threading.Thread(target=watch)
    watcher.start()
    for i in range(writes):
        with lock:
            log.record("", f"k{i % 10}", None, _record(i))
    watcher.join(120)
    assert not watcher.is_alive() and timed_out == []
    assert log.condition.waiting == 0
    assert 0 < condition.notified <= writes
