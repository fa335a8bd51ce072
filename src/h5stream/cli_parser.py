"""An ``argparse`` parser whose usage errors are one line saying what to do, for the package's command lines.

``hdmea`` and ``python -m h5scp`` refuse a bad command line (a missing argument, an unknown command or option)
with exit status 2 and one line, ``PROG: what is wrong; `PROG --help` shows how to call it``, instead of
argparse's usage block followed by ``error:``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` with one-line usage errors (subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; `{self.prog} --help` shows how to call it\n")
