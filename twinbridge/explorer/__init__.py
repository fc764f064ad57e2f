"""``python -m twinbridge explore``: a browser explorer of the twins of a local run (or of a real ADT instance).

The server (``server.py``) reads twins, relationships, models and queries through the Azure SDK's
``DigitalTwinsClient`` (``source.py``), so the same code reads the ADT emulator and a real instance; the browser only
talks to the server's same-origin JSON API. Live changes reach the page as server-sent events (``live.py``); the
quarantine and the egress counters of a local run come from its settings file and its host (``local.py``).
"""
