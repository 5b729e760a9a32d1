"""Threads: how many the compiled kernels use, and work buffers private to each thread.

The generalized model's one-level kernel runs its loop over clusters on OpenMP threads:
as many as ``set_num_threads`` asks for, else the environment variable
``HLMEXT_NUM_THREADS``, else the machine's cores (at most 8). Any request is capped at
the machine's cores, and a forked process (a ``multiprocessing`` worker started by
``fork``) uses one thread: GNU OpenMP cannot start threads there once the parent has. BLAS/LAPACK threads are the BLAS library's: limit them with
``threadpoolctl``; a fit limits them to one itself while it runs (``single_blas_thread``),
except for a very large crossed block (``blas_threads_for``).

A model's evaluations reuse work buffers; ``PerThread`` gives every thread its own set,
so one model object can be fitted from several threads at once.
"""
from __future__ import annotations

import contextlib
import os
import threading
import warnings

from .stacklevel import user_stacklevel

ENV_VAR = "HLMEXT_NUM_THREADS"
DEFAULT_MAX = 8

_requested = None          # set_num_threads's value (None: the environment variable or the default)
_forked = False            # this process was forked from one that had imported hlmext
_env_checked = {}          # environment value -> threads (each odd value is reported once)


def max_threads() -> int:
    """The cap on the kernels' threads: the machine's cores."""
    return max(1, os.cpu_count() or 1)


def set_num_threads(n):
    """Set the threads of the compiled kernels (overrides ``HLMEXT_NUM_THREADS``).

    Parameters
    ----------
    n : int or None
        A positive number of threads, capped at the machine's cores (with a warning);
        None returns to ``HLMEXT_NUM_THREADS`` or the default (the cores, at most 8).

    Examples
    --------
    >>> import hlmext
    >>> hlmext.set_num_threads(1)
    >>> hlmext.get_num_threads()
    1
    >>> hlmext.set_num_threads(None)
    """
    global _requested
    if n is None:
        _requested = None
        return
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError("set_num_threads(n): n must be a positive whole number of threads or None, got %r" % (n,))
    n = int(n)
    if n < 1:
        raise ValueError("set_num_threads(n): n must be at least 1, got %d" % n)
    cap = max_threads()
    if n > cap:
        warnings.warn("set_num_threads(%d): this machine has %d cores; using %d threads" % (n, cap, cap),
                      RuntimeWarning, stacklevel=2)
        n = cap
    if n > 1 and _forked:
        warnings.warn("set_num_threads(%d): this process was forked, and GNU OpenMP cannot start threads in a "
                      "forked process once its parent has used them (the kernels would wait for ever); using 1 "
                      "thread. Start worker processes with the 'spawn' or 'forkserver' method for more" % n,
                      RuntimeWarning, stacklevel=2)
        n = 1
    _requested = n


def get_num_threads() -> int:
    """Threads the compiled kernels use now (``set_num_threads``, ``HLMEXT_NUM_THREADS`` or the default).

    Examples
    --------
    >>> import hlmext
    >>> hlmext.get_num_threads() >= 1
    True
    """
    if _requested is not None:
        return _requested
    if _forked:
        return 1
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip():
        return _from_environment(env)
    return max(1, min(max_threads(), DEFAULT_MAX))


def _after_fork_in_child():
    """A forked process runs the kernels on one thread.

    GNU OpenMP's thread pool does not survive ``fork``: a parallel loop in a child forked
    from a process that has run one waits for ever on the parent's threads. Worker
    processes (the bootstrap's ``n_jobs``, a ``multiprocessing`` pool) already use the cores.
    """
    global _forked, _requested
    _forked = True
    _requested = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _from_environment(value):
    if value in _env_checked:
        return _env_checked[value]
    try:
        n = int(value.strip())
    except ValueError:
        raise ValueError("%s=%r is not a whole number of threads: set it to a positive integer (e.g. 1) or unset "
                         "it" % (ENV_VAR, value)) from None
    if n < 1:
        raise ValueError("%s=%r: the number of threads must be at least 1; set it to a positive integer or unset "
                         "it" % (ENV_VAR, value))
    cap = max_threads()
    if n > cap:
        warnings.warn("%s=%d asks for more threads than this machine's %d cores; using %d threads"
                      % (ENV_VAR, n, cap, cap), RuntimeWarning, stacklevel=user_stacklevel())
        n = cap
    _env_checked[value] = n
    return n


class PerThread:
    """Work buffers private to each thread: ``get(model)`` returns this thread's, built by
    ``model._new_buffers()`` on the thread's first call. Pickling or copying keeps none."""

    def __init__(self, first=None):
        self._local = threading.local()
        if first is not None:
            self._local.value = first

    def get(self, model):
        try:
            return self._local.value
        except AttributeError:
            value = self._local.value = model._new_buffers()
            return value

    def __reduce__(self):
        return PerThread, ()

    def __copy__(self):
        return PerThread()

    def __deepcopy__(self, memo):
        return PerThread()


def blas_threads_for(design):
    """``single_blas_thread()``, except for a very large crossed block (``design.qd >= DENSE_THREADED``):
    its factorization and inverse are a few BLAS/LAPACK products of seconds each, where the
    BLAS library's own threads pay. Below that they do not: on two cores shared with other
    work, threaded BLAS made one evaluation of a 500-column tail 20 times slower and of a
    1,142-column tail 8 times slower than one thread (a quiet machine gains some 10%)."""
    if getattr(design, "qd", 0) >= DENSE_THREADED:
        return contextlib.nullcontext()
    return single_blas_thread()


DENSE_THREADED = 4096


def single_blas_thread():
    """Context manager: one BLAS thread inside (``threadpoolctl``), previous limits after.

    A fit makes many small BLAS/LAPACK calls (per-level downdates, the optimizer's own
    small matrices) where BLAS threads only add synchronization; on a busy machine they
    make a fit several times slower. BLAS limits belong to the process: with fits
    running in several threads at once, the first to enter sets the limit and the last
    to leave restores the previous limits.
    """
    return _SingleBlasThread()


def blas_limited() -> bool:
    """True while a ``single_blas_thread`` context is open (in any thread)."""
    return _BLAS_USERS > 0


class _SingleBlasThread:
    def __enter__(self):
        global _BLAS_CONTROLLER, _BLAS_LIMITER, _BLAS_USERS
        with _BLAS_LOCK:
            if _BLAS_CONTROLLER is None:  # finding the libraries reads the process's memory map: once
                from threadpoolctl import ThreadpoolController
                _BLAS_CONTROLLER = ThreadpoolController()
            if _BLAS_USERS == 0:
                _BLAS_LIMITER = _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
            _BLAS_USERS += 1
        return self

    def __exit__(self, *exc):
        global _BLAS_LIMITER, _BLAS_USERS
        with _BLAS_LOCK:
            _BLAS_USERS -= 1
            if _BLAS_USERS == 0:
                _BLAS_LIMITER.restore_original_limits()
                _BLAS_LIMITER = None
        return False


_BLAS_CONTROLLER = _BLAS_LIMITER = None
_BLAS_USERS = 0                           # contexts open, in any thread
_BLAS_LOCK = threading.Lock()
