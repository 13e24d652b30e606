"""The trial's heartbeat kept fresh while NASAssistSampler plans it."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator


@contextlib.contextmanager
def beating(storage: Any, trial_id: int) -> Iterator[None]:
    """Keep the trial's heartbeat fresh while it is planned, as Optuna does while it runs.

    Optuna starts its heartbeat thread only after ``ask()`` (hence after planning): without
    this, a long first plan (e.g. importing scikit-learn) would look like a dead worker, and
    a worker killed while planning would leave no heartbeat at all. A no-op for storages
    without heartbeats.
    """
    interval = getattr(storage, "get_heartbeat_interval", None)  # RDB storages (and their cache)
    seconds = interval() if callable(interval) and callable(getattr(storage, "record_heartbeat", None)) else None
    if seconds is None:
        yield
        return
    storage.record_heartbeat(trial_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(seconds):
            try:
                storage.record_heartbeat(trial_id)
            except Exception:  # noqa: BLE001 - e.g. the trial was failed meanwhile; planning reports it
                return

    thread = threading.Thread(target=beat, name=f"nasassist-heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
