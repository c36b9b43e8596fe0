"""Entry point: `python bench.py --suite dmc6 --budget-gb 0.6` (see README.md)."""

import sys

from seer_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
