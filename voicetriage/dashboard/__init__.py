"""The supervisor live view: ``/dashboard``, a web page of calls, transcripts, signals and hints.

:mod:`~voicetriage.dashboard.state` keeps a bounded state per call from the
server's hub events; :mod:`~voicetriage.dashboard.scope` cuts it to what a
token may see; :mod:`~voicetriage.dashboard.routes` serves the page, its
static assets (``static/``, plain ES modules), JSON snapshots and the
``/dashboard/ws`` websocket of incremental updates (docs/dashboard.md).
"""
