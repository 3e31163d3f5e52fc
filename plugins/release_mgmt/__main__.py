"""Entry point of ``python -m release_mgmt``."""

import sys

from release_mgmt.cli import main

sys.exit(main())
