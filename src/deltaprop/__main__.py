"""``python -m deltaprop`` runs the command line."""

import sys

from deltaprop.cli import main

sys.exit(main())
