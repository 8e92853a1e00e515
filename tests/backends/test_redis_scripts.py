"""The Redis backend's Lua scripts, read from ``backends/lua/*.lua`` (no server needed)."""

from __future__ import annotations

import hashlib
from importlib.resources import files

from keyshelf.backends import _redis_common as rc

# Fragments that scripts include; every other file is one script.
HELPERS = {"_prelude.lua", "_float.lua", "_size.lua"}


def test_every_lua_file_is_a_script_or_a_helper() -> None:
    shipped = {p.name for p in files("keyshelf.backends").joinpath("lua").iterdir()}
    scripts = {script.name + ".lua" for script in rc.SCRIPTS}
    assert len(scripts) == len(rc.SCRIPTS)
    assert shipped == scripts | HELPERS


def test_each_script_is_its_prelude_helpers_and_file() -> None:
    lua = files("keyshelf.backends").joinpath("lua")
    prelude = lua.joinpath("_prelude.lua").read_text(encoding="utf-8")
    for script in rc.SCRIPTS:
        body = lua.joinpath(script.name + ".lua").read_text(encoding="utf-8")
        assert script.source.startswith(prelude)
        assert script.source.endswith(body)
        assert script.sha == hashlib.sha1(script.source.encode()).hexdigest()
    assert "function float_fields" in rc.INCREMENT.source
    assert rc.SIZES.source.count("function size_of") == 1
