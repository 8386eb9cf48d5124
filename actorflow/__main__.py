"""``python -m actorflow worker|cluster ...``: see `actorflow.cli`."""

import sys

from actorflow.cli import main

sys.exit(main())
