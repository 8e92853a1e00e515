"""The conformance kit (keyshelf.testing) as a third party uses it, and entry-point backends.

A backend's author writes one test module: the star import of
``keyshelf.testing.conformance`` and a ``keyshelf_backend`` fixture. These
tests run such modules in a separate pytest (pytester): the whole suite is
collected on both APIs, a broken backend fails it, a missing fixture is named.
keyshelf's own run uses the same modules (each ``tests/conformance/test_*.py``
runs one); the example backend runs them all in test_example_backend.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

import keyshelf
from keyshelf import registry
from keyshelf.testing import BackendCase, as_case, conformance

from .test_example_backend import load_example

TESTS = Path(__file__).parent

THIRD_PARTY = """
import pytest
from keyshelf.testing import BackendCase
from keyshelf.testing.conformance import *  # noqa: F403


@pytest.fixture
def keyshelf_backend():
    yield BackendCase("memory://", shared=False)
"""

BROKEN = """
import pytest
import keyshelf
from keyshelf.backends.memory import MemoryBackend
from keyshelf.testing.conformance import *  # noqa: F403


class Broken(MemoryBackend):
    def delete(self, ns, keys, now):
        super().delete(ns, keys, now)
        return list(keys)  # claims every key given was there


keyshelf.register("broken", lambda url, options, asynchronous: Broken())


@pytest.fixture
def keyshelf_backend():
    yield "broken://", {}
"""


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory with the settings keyshelf's own run has."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def kit_tests() -> set[str]:
    return {name for name in conformance.__all__ if name.startswith("test_")}


def test_one_fixture_collects_every_kit_test_on_both_apis(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine=THIRD_PARTY)
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    ids = [line for line in result.outlines if "::" in line]
    names = {re.sub(r"\[.*", "", line.split("::")[1]) for line in ids}
    assert names == kit_tests()
    assert len(kit_tests()) > 100
    # Every test on a store runs through both APIs.
    sync = {line for line in ids if re.search(r"\bsync\b", line)}
    assert sync
    assert {re.sub(r"\bsync\b", "async", line) for line in sync} <= set(ids)


def test_the_kit_fails_a_backend_that_breaks_the_contract(pytester: pytest.Pytester) -> None:
    # delete() must report only the keys that were live: the kit notices.
    pytester.makepyfile(test_broken=BROKEN)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-k", "delete and sync")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.outlines[-5:]


def test_a_missing_keyshelf_backend_fixture_is_named(pytester: pytest.Pytester) -> None:
    # The plugin route: fixtures from a conftest, one module of the suite.
    pytester.makeconftest('pytest_plugins = ["keyshelf.testing.plugin"]')
    pytester.makepyfile(test_core_only="from keyshelf.testing.conformance.test_core import *\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-x", "-k", "sync")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*define a fixture named keyshelf_backend*"])


def test_keyshelfs_run_uses_the_suites_hypothesis_profile() -> None:
    # Loaded by the plugin (tests/conftest.py loads it): fixed examples, no deadline.
    assert settings.get_current_profile_name() == os.environ.get("KEYSHELF_HYPOTHESIS", "suite")
    assert settings.default is not None
    assert settings.default.deadline is None


def test_kit_asserts_are_rewritten() -> None:
    # The kit's modules are imported, not collected: without register_assert_rewrite
    # a failing assert would not show the values it compared.
    from keyshelf.testing.conformance import test_core

    rewritten = [
        value
        for name, value in vars(test_core).items()
        if name.startswith("test_") and any("@py_assert" in v for v in value.__code__.co_varnames)
    ]
    assert rewritten


def test_every_kit_module_runs_in_keyshelfs_own_suite() -> None:
    # The suite lives in one place: each shipped module has its runner in
    # tests/conformance, and every module there runs a shipped one.
    shipped = {module.__name__.rpartition(".")[2] for module in conformance.MODULES}
    here = {path.stem for path in (TESTS / "conformance").glob("test_*.py")}
    assert shipped == here, (
        "move a conformance test module to src/keyshelf/testing/conformance/ and leave "
        "'from keyshelf.testing.conformance.<name> import *' in tests/conformance/<name>.py"
    )
    for name in shipped:
        text = (TESTS / "conformance" / f"{name}.py").read_text(encoding="utf-8")
        assert f"from keyshelf.testing.conformance.{name} import *" in text, name


def test_a_name_in_two_kit_modules_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two tests of one name would leave one out of the star import.
    modules = []
    for module_name in ("kit_a", "kit_b"):
        module = types.ModuleType(module_name)

        def test_same() -> None:
            pass

        test_same.__module__ = module_name
        module.test_same = test_same  # type: ignore[attr-defined]
        modules.append(module)
    monkeypatch.setattr(conformance, "MODULES", tuple(modules))
    with pytest.raises(ImportError, match="'test_same' is defined by both kit_a and kit_b"):
        conformance._collect()


def test_as_case_reads_what_a_fixture_gives() -> None:
    assert as_case("memory://") == BackendCase("memory://")
    assert as_case(("dbm:///x", {"a": 1})) == BackendCase("dbm:///x", {"a": 1})
    case = BackendCase("redis://h/0", server_clock=True, name="redis")
    assert as_case(case) is case
    assert BackendCase("dbm:///x").label == "dbm"
    bad_values: list[Any] = [None, ("memory://",), (1, {}), ["memory://", {}]]
    for bad in bad_values:
        with pytest.raises(TypeError, match="keyshelf_backend fixture"):
            as_case(bad)


@pytest.fixture
def entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a distribution declaring ``kitdbm`` (the example) and ``memory`` entry points."""
    load_example()
    site = tmp_path / "site"
    info = site / "kit_example-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kit-example\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[keyshelf.backends]\n"
        "kitdbm = dbm_backend:create\n"
        # A built-in scheme is never taken over by an entry point.
        "memory = keyshelf_kit_no_such_module:create\n"
    )
    monkeypatch.syspath_prepend(str(site))
    registry._entry_points.cache_clear()
    yield
    registry._entry_points.cache_clear()


@pytest.mark.usefixtures("entry_point")
async def test_an_entry_point_backend_opens_on_both_apis(tmp_path: Path) -> None:
    assert "kitdbm" in registry.schemes()
    url = f"kitdbm://{tmp_path / 'store'}"
    with keyshelf.open(url) as kv:
        kv.set("k", {"v": 1}, ttl=60)
    # The example's factory returns a sync backend; the async API still works.
    async with keyshelf.open_async(url) as store:
        assert await store.get("k") == {"v": 1}
        await store.set("n", 2)
    with keyshelf.open(url, create=False) as kv:
        assert kv.get_many(["k", "n"]) == {"k": {"v": 1}, "n": 2}
    with keyshelf.open("memory://") as kv:
        kv.set("still", "built in")


@pytest.mark.usefixtures("entry_point")
def test_an_unknown_scheme_lists_the_entry_points_too() -> None:
    with pytest.raises(keyshelf.InvalidURLError, match="kitdbm://"):
        keyshelf.open("nosuchscheme://x")


def test_a_third_party_module_that_cannot_import_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyshelf_kit_missing", None)
    monkeypatch.setitem(registry._registry, "kitmissing", "keyshelf_kit_missing:create")
    with pytest.raises(ImportError, match="kitmissing:// backend's module keyshelf_kit_missing"):
        keyshelf.open("kitmissing://x")


def test_import_keyshelf_needs_no_test_tools() -> None:
    # keyshelf.testing is the only module that imports pytest and hypothesis.
    code = (
        "import sys, keyshelf, keyshelf.backends; "
        "bad = {'pytest', 'hypothesis', 'keyshelf.testing'} & set(sys.modules); "
        "sys.exit(str(sorted(bad)) if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
