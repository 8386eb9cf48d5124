"""``python -m models ...``: the `actorflow` program with the reference models' commands, for a
source checkout that is not installed (installed, ``actorflow demo`` finds them itself)."""

import sys

from models.cli import main

sys.exit(main())
