"""``python -m actorflow ...``: the `actorflow` program (`actorflow.cli.main`, the same entry
point as the installed ``actorflow`` script)."""

import sys

from actorflow.cli import main

sys.exit(main())
