"""A Jepsen-style soak: members chatting as the web client does, faults injected, a checker.

``python -m tools.soak`` (``make soak``) runs it against a dev stack of its own,
``--target compose`` (``make soak TARGET=compose``) against docker-compose.yml
under a compose project of its own. ``history`` holds what was observed,
``checker`` judges it, ``member`` is one client, ``faults`` the injector and
what a target must do, ``dev`` and ``compose`` the two targets, ``run`` ties
them together.
"""
