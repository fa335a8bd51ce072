"""``python -m hdmea``: the same command line as the ``hdmea`` script."""

import sys

from hdmea.cli import main

sys.exit(main())
