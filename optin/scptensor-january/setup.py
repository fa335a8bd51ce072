"""Puts ``scptensor-january.pth`` beside the module in the wheel (regular and editable installs).

A ``.pth`` line starting with ``import`` runs at interpreter start; this one adds
the ``scptensor`` alias finder (see ``src/scptensor_january.py``).  Nothing else
is built here: metadata lives in ``pyproject.toml``.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "scptensor-january.pth"


class BuildWithPth(build_py):
    def run(self):
        super().run()
        self.copy_file(str(Path(__file__).parent / PTH), str(Path(self.build_lib) / PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH)]


setup(cmdclass={"build_py": BuildWithPth})
