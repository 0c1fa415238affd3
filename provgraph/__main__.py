"""``python -m provgraph``: the command line."""

import sys

from provgraph.cli.main import main

sys.exit(main())
