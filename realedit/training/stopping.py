"""Graceful stop for long training loops."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def stop_requests():
    """Yield a list that gets an item when SIGTERM or SIGINT arrives, so a training loop can
    finish its current step and write a checkpoint instead of dying mid-way (a killed run or
    an ending session then loses nothing). The previous handlers come back on exit. Outside
    the main thread Python cannot install handlers; the list then simply stays empty."""
    stop: list = []
    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {sig: signal.signal(sig, lambda *_: stop.append(1))
               for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
