"""Entry point of `python -m catsdogs_helpers`."""

import sys

from catsdogs_helpers.cli import main

if __name__ == "__main__":
    sys.exit(main())
