"""patsy design infos in a picklable form (patsy refuses to pickle its objects).

A model built from a formula keeps patsy's ``DesignInfo`` of the fixed and every random
part, to build the same columns on new data (``predict``). Pickling, ``copy.deepcopy``
and ``results.save`` go through :func:`encode`, which turns a design info into plain
containers: every patsy object becomes its class and attributes, and the environment a
formula was evaluated in keeps only the names its code uses (a module such as ``np``
by its import name). :func:`decode` rebuilds an equal design info, factor levels,
contrasts and the state of stateful transforms (``center(x)``, ``bs(x, df=4)``) included.

Examples
--------
>>> import pickle, numpy as np, pandas as pd, patsy
>>> df = pd.DataFrame({"x": [1.0, 2.0, 4.0], "c": ["a", "b", "a"]})
>>> info = patsy.dmatrix("center(np.log(x)) + C(c)", df).design_info
>>> again = decode(pickle.loads(pickle.dumps(encode(info))))
>>> again.column_names == info.column_names
True
>>> np.allclose(patsy.build_design_matrices([again], df)[0], patsy.build_design_matrices([info], df)[0])
True
"""
from __future__ import annotations

import importlib
import types

from patsy.eval import EvalEnvironment, _builtins_dict, ast_names

__all__ = ["encode", "decode"]


class _Object:
    """A patsy object: its class and encoded attributes."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state


class _Dict:
    """A dict (or OrderedDict) whose keys may be patsy objects: its type and (key, value) pairs."""

    def __init__(self, cls, items):
        self.cls, self.items = cls, items


class _Module:
    """A module by its import name."""

    def __init__(self, name):
        self.name = name


class _Env:
    """A formula's evaluation environment: the names its code uses."""

    def __init__(self, names):
        self.names = names


def _is_patsy(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "patsy"


def _used_names(state):
    """Names the code of a factor's state reads (evaluation and memorization code)."""
    codes = [state.get("eval_code", "")] + list(state.get("memorize_code", {}).values())
    return {name for code in codes if isinstance(code, str) for name in ast_names(code)}


def _env(env, names):
    found = {}
    for name in names:
        for ns in env._namespaces:
            if name in ns:
                value = ns[name]
                if value is not _builtins_dict.get(name):     # patsy's builtins come back with patsy
                    found[name] = _Module(value.__name__) if isinstance(value, types.ModuleType) else value
                break
    return _Env(found)


def encode(obj, _memo=None):
    """A picklable copy of a patsy design info (or of any structure holding patsy objects)."""
    memo = {} if _memo is None else _memo
    if id(obj) in memo:
        return memo[id(obj)][1]
    if isinstance(obj, dict):
        if isinstance(obj.get("eval_env"), EvalEnvironment):
            rest = {k: v for k, v in obj.items() if k != "eval_env"}
            out = _Dict(type(obj), [(k, encode(v, memo)) for k, v in rest.items()]
                        + [("eval_env", _env(obj["eval_env"], _used_names(obj)))])
        else:
            out = _Dict(type(obj), [(encode(k, memo), encode(v, memo)) for k, v in obj.items()])
    elif isinstance(obj, (list, tuple, set, frozenset)) and type(obj) in (list, tuple, set, frozenset):
        out = type(obj)(encode(v, memo) for v in obj)
    elif _is_patsy(obj) and hasattr(obj, "__dict__"):
        out = _Object(type(obj), {k: encode(v, memo) for k, v in vars(obj).items()})
    else:
        out = obj
    memo[id(obj)] = (obj, out)       # the object is held so that its id stays unique
    return out


def decode(obj, _memo=None):
    """The patsy object (design info) of :func:`encode`'s output."""
    memo = {} if _memo is None else _memo
    if id(obj) in memo:
        return memo[id(obj)][1]
    if isinstance(obj, _Object):
        out = obj.cls.__new__(obj.cls)
        out.__dict__.update({k: decode(v, memo) for k, v in obj.state.items()})
    elif isinstance(obj, _Dict):
        out = obj.cls((decode(k, memo), decode(v, memo)) for k, v in obj.items)
    elif isinstance(obj, _Env):
        names = {k: importlib.import_module(v.name) if isinstance(v, _Module) else v for k, v in obj.names.items()}
        out = EvalEnvironment([names, _builtins_dict])
    elif isinstance(obj, (list, tuple, set, frozenset)) and type(obj) in (list, tuple, set, frozenset):
        out = type(obj)(decode(v, memo) for v in obj)
    else:
        out = obj
    memo[id(obj)] = (obj, out)
    return out
