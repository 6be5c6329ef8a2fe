"""``python -m scanflow_argo.engine RUN_DIR``: the detached engine process of one run."""

import sys

from .api import main

sys.exit(main())
