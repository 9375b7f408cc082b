"""A Jepsen-style soak of the dev stack: members chatting as the web client does, faults injected, a checker.

``python -m tools.soak`` (``make soak``) runs it; ``history`` holds what was
observed, ``checker`` judges it, ``member`` is one client, ``faults`` the
injector, ``run`` ties them to a dev stack of its own.
"""
