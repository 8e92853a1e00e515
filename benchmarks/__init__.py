"""keyshelf's benchmarks: ``python -m benchmarks`` (``make bench``); see docs/performance.md."""
