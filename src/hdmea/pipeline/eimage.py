"""The original pipeline's path of :mod:`hdmea.steps.eimage` (the step lives there): this name is that module.

Importing ``hdmea.pipeline.eimage`` gives the step's own module object, so every name, private ones and
later assignments included, is the same under both paths.
"""

import sys

from hdmea.steps import eimage as _step_module

sys.modules[__name__] = _step_module
