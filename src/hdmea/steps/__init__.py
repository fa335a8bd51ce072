"""The pipeline's steps: the step table (:mod:`hdmea.steps.table`, a leaf that imports no step and no
runner) and the runner (:mod:`hdmea.steps.runner`).  Nothing is imported here, so importing the table
does not load the runner."""
