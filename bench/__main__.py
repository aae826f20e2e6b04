"""``python -m bench``: see bench/driver.py and bench/README.md."""

import sys

from bench.driver import main

sys.exit(main())
