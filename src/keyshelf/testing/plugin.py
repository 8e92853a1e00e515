"""The conformance suite's fixtures, as a pytest plugin.

Every fixture here is built on one fixture the user provides,
``keyshelf_backend``: a fresh, empty store as ``(url, options)``, a URL or a
:class:`~keyshelf.testing.BackendCase`, cleaned up after the test.

* ``api``: ``"sync"`` and ``"async"``; every test runs through both APIs.
* ``backend_name``: the backend's label (:attr:`BackendCase.label`).
* ``clock``: a :class:`~keyshelf.testing.FakeClock`, or a
  :class:`~keyshelf.testing.RealClock` for a backend that expires keys by a
  server's clock.
* ``opener``: an :class:`~keyshelf.testing.Opener` on the backend through
  ``api``; closes what it opened.
* ``kv``: a store opened by ``opener``.

:mod:`keyshelf.testing.conformance` re-exports them, so a test module that
star-imports the suite needs no plugin. A project that wants them in every
module loads this plugin from its top ``conftest.py``
(``pytest_plugins = ["keyshelf.testing.plugin"]``) and may override any of
them, for instance ``backend_name`` with parameters and a
``keyshelf_backend`` that depends on it, to run the suite on several
backends.

Loading the plugin also registers two hypothesis profiles and loads one:
``suite`` (the default: a fixed sequence of examples, no per-example
deadline, so the suite gives the same answer on every run and under any
load) and ``explore`` (new random examples), chosen by the environment
variable ``KEYSHELF_HYPOTHESIS``. ``--hypothesis-profile`` still wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from . import FakeClock, Opener, RealClock, as_case

__all__ = ["api", "backend_name", "clock", "keyshelf_backend", "kv", "opener"]


def load_hypothesis_profile() -> None:
    """Register the ``suite`` and ``explore`` profiles; load ``$KEYSHELF_HYPOTHESIS``.

    A loaded 2-core machine made a 200 ms per-example deadline fail at
    random, so neither profile has one. A profile chosen before (by
    ``--hypothesis-profile`` or the project's own conftest) is kept, except
    the ``ci`` profile that hypothesis loads by itself when ``$CI`` is set.
    """
    settings.register_profile(
        "suite",
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile(
        "explore",
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    current = getattr(settings, "get_current_profile_name", lambda: "default")()
    # Hypothesis loads its own "ci" profile by itself when $CI is set; that
    # is not a choice the user made, so the suite's profile replaces it too.
    if current in ("default", "ci"):
        settings.load_profile(os.environ.get("KEYSHELF_HYPOTHESIS", "suite"))


load_hypothesis_profile()


@pytest.fixture
def keyshelf_backend() -> Any:
    """Override this: a fresh, empty store as ``(url, options)`` or a BackendCase."""
    pytest.fail(
        "keyshelf.testing: define a fixture named keyshelf_backend that yields "
        "(url, options) for a fresh, empty store (see docs/backends.md)",
        pytrace=False,
    )


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> str:
    """The API a test runs through: ``"sync"`` or ``"async"``."""
    return str(request.param)


@pytest.fixture
def backend_name(keyshelf_backend: Any) -> str:
    """The label of the backend under test."""
    return as_case(keyshelf_backend).label


@pytest.fixture
def clock(keyshelf_backend: Any) -> Any:
    """A FakeClock, or a RealClock for a backend that expires keys by a server's clock."""
    case = as_case(keyshelf_backend)
    if case.server_clock:
        return RealClock(self_purging=case.self_purging)
    return FakeClock(self_purging=case.self_purging)


@pytest.fixture
def opener(keyshelf_backend: Any, api: str, clock: Any) -> Iterator[Opener]:
    """Opens stores on the backend through ``api``; closes them after the test."""
    case = as_case(keyshelf_backend)
    opened = Opener(case.url, case.options, api, clock, shared=case.shared)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def kv(opener: Opener) -> Any:
    """A fresh, empty store on the backend through ``api``."""
    return opener()
