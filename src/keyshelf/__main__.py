"""``python -m keyshelf``: the same command line as the ``keyshelf`` script."""

from keyshelf.cli import main

if __name__ == "__main__":
    main()
