"""Who this process is, for leases and ``monitor status``: ``host:pid:random``."""

from __future__ import annotations

import os
import secrets
import socket


def worker_id(role: str = "") -> str:
    """A new identity, unique across machines and restarts (the random part covers a
    reused pid). ``role`` tells a command's claims from a daemon's, e.g. ``cli``."""
    parts = [socket.gethostname()[:40], str(os.getpid()), secrets.token_hex(4)]
    return ":".join([role, *parts] if role else parts)
