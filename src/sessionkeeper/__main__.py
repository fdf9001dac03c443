"""``python -m sessionkeeper``: the same command line as ``sessionkeeper``."""

from sessionkeeper.cli import main

if __name__ == "__main__":
    main()
