"""``python -m bench.compare``: see :mod:`bench.compare.harness`."""

import sys

from bench.compare.harness import main

raise SystemExit(main(sys.argv[1:]))
