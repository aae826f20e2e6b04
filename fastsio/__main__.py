"""``python -m fastsio``: the same as the ``fastsio`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
