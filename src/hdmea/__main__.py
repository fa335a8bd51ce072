"""``python -m hdmea``: the same command line as the ``hdmea`` script."""

import sys

from _hdmea_cli import main

sys.exit(main())
