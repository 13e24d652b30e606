"""Markers for features whose interface may still change (Optuna's convention, public API only).

A feature marked here warns once per process with :class:`optuna.exceptions.ExperimentalWarning`
(which users silence as they do Optuna's own: ``warnings.simplefilter("ignore",
ExperimentalWarning)``).

Example:
    >>> import warnings
    >>> from optuna.exceptions import ExperimentalWarning
    >>> from nasassist_plugins.experimental import warn_experimental
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_experimental("my-feature", "MyFeature")
    >>> caught[0].category is ExperimentalWarning
    True
"""

from __future__ import annotations

import threading
import warnings

from optuna.exceptions import ExperimentalWarning

__all__ = ["ExperimentalWarning", "warn_experimental"]

_warned: set[str] = set()
_lock = threading.Lock()


def warn_experimental(key: str, what: str, *, stacklevel: int = 3) -> None:
    """Warn once per process (per ``key``) that ``what`` is experimental."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(f"{what} is experimental: its interface may change in a future release.",
                  ExperimentalWarning, stacklevel=stacklevel)
