"""Results attributes computed on first use, once (``cached``).

A fit computes what it needs to be a fit (estimates, the log-likelihood, convergence and
boundary checks); the tables and the standard errors of the variance parameters, which
cost more than the estimates of a small model, wait until they are asked for. The value
is then stored in the instance's ``__dict__`` (later reads are ordinary attribute reads,
pickles keep it, an assignment replaces it). One lock serializes the first computations,
so results shared by threads compute each value once.
"""
from __future__ import annotations

import threading

_LOCK = threading.RLock()


class cached:
    """Decorator: a method without arguments turned into an attribute computed on first use.

    Examples
    --------
    >>> class Fit:
    ...     calls = 0
    ...     @cached
    ...     def table(self):
    ...         Fit.calls += 1
    ...         return [1, 2]
    >>> fit = Fit()
    >>> fit.table, fit.table, Fit.calls
    ([1, 2], [1, 2], 1)
    """

    def __init__(self, method):
        self.method = method
        self.name = method.__name__
        self.__doc__ = method.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        with _LOCK:
            values = obj.__dict__
            if self.name not in values:
                values[self.name] = self.method(obj)
            return values[self.name]
