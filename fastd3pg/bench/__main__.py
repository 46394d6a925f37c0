"""``python -m fastd3pg.bench``: see :mod:`fastd3pg.bench`."""

import sys

from fastd3pg.bench import main

sys.exit(main())
