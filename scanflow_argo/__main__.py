"""``python -m scanflow_argo`` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
