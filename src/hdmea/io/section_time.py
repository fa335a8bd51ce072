"""The original pipeline's path of :mod:`hdmea.steps.section_time` (the step lives there): this name is that module.

Importing ``hdmea.io.section_time`` gives the step's own module object, so every name, private ones and
later assignments included, is the same under both paths.
"""

import sys

from hdmea.steps import section_time as _step_module

sys.modules[__name__] = _step_module
