"""The recording being built: the deferred session, the target every step writes through, and opening a
finished file as a session again.

- :mod:`hdmea.session.session`: :class:`~hdmea.session.session.PipelineSession` stages results and
  writes one file (checkpoints, resume, memory budget);
- :mod:`hdmea.session.target`: :func:`~hdmea.session.target.open_target`, one interface for a step whether
  it writes into a session or into the file at once;
- :mod:`hdmea.session.loader`: a finished recording file opened as a session;
- :mod:`hdmea.session.names`: the step names files record.

This package sits between the readers (:mod:`hdmea.io`) and the steps (:mod:`hdmea.steps`): it imports no
step and no runner.
"""
