"""``python -m fedra.cli``."""

import sys

from fedra.cli import main

sys.exit(main())
