"""The original pipeline's path of :mod:`hdmea.steps.load` (the step lives there): this name is that module.

Importing ``hdmea.pipeline.runner`` gives the step's own module object, so every name, private ones and
later assignments included, is the same under both paths.
"""

import sys

from hdmea.steps import load as _step_module

sys.modules[__name__] = _step_module
