"""The pipeline's steps, one module each, and the step table (:mod:`hdmea.steps.table`) that lists them
in order with what the configuration, the preflight checks and the runner (:mod:`hdmea.pipeline.run`) need
of each.  Nothing is imported here."""
