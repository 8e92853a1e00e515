"""Drop-in facades for code written against the APIs keyshelf was built from.

Moving over is a one-line change of the import; the facades are thin
adapters over keyshelf's own API (:func:`keyshelf.open` and
:func:`keyshelf.open_async`) and implement no behaviour of their own. Where
the imitated document's semantics differ from keyshelf's, the facade follows
the document; ``docs/migrating.md`` lists every difference.

* :mod:`keyshelf.compat.dataknobs_kv` -- the async ``KVStore`` and
  ``migrate_store`` of the DataKnobs KV package (``dataknobs-kv``)::

      from keyshelf.compat.dataknobs_kv import KVStore, migrate_store

* :mod:`keyshelf.compat.kv_store_adapter` -- the sync ``MemoryKVStore``,
  ``DiskKVStore`` and ``RedisKVStore`` of the KV Store Adapter
  (``kv-store-adapter``), under the same module paths::

      from keyshelf.compat.kv_store_adapter.memory import MemoryKVStore
      from keyshelf.compat.kv_store_adapter.exceptions import KeyNotFoundError

VintLang's in-memory ``kv`` module needs no facade: its operations are
keyshelf methods under Python names (``docs/migrating.md`` maps them).
"""

from __future__ import annotations

__all__: list[str] = []
