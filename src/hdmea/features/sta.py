"""The original pipeline's path of :mod:`hdmea.steps.sta` (the step lives there): this name is that module.

Importing ``hdmea.features.sta`` gives the step's own module object, so every name, private ones and
later assignments included, is the same under both paths.
"""

import sys

from hdmea.steps import sta as _step_module

sys.modules[__name__] = _step_module
