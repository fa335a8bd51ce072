"""``python -m benchmarks``: see :mod:`benchmarks.harness.run`."""

from benchmarks.harness.run import main

raise SystemExit(main())
