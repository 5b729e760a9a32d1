"""Mixed-model formulas: parse lme4 or Stata syntax into response, fixed part and random terms.

The numeric arrays of a parsed formula are built by ``hlmext.formula.frames``.

Two front ends are recognised automatically:

* lme4 bars: ``y ~ x + (x | g)``, ``(1 | g)``, ``(0 + x | g)``, ``(x || g)``,
  ``(1 | a/b)`` (nested), ``(1 | a:b)`` (one grouping by the combination);
* Stata: ``y ~ x || district: || school: x, noconstant cov(un)``, levels written
  outermost first, each level nested in the previous ones.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..exceptions import FormulaError

__all__ = ["COV_STRUCTURES", "RandomTerm", "ParsedFormula", "parse", "normalize_cov"]

COV_STRUCTURES = ("unstructured", "independent", "identity", "exchangeable")
_COV_SHORTEST = {"unstructured": "un", "independent": "ind", "identity": "id", "exchangeable": "ex"}
_NAME = re.compile(r"[A-Za-z_.][\w.]*\Z")
_STATA_OPTION = re.compile(r"([A-Za-z_]\w*)\s*(\(([^()]*)\))?")


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term: the Z columns ``formula`` varying by ``group``.

    ``cov_if_several_columns`` is the structure to use when ``formula`` turns out to
    expand to several columns (e.g. ``0 + C(x)``); ``cov`` is what parse reports.
    """
    group: tuple[str, ...]
    formula: str
    cov: str
    cov_if_several_columns: str | None = field(default=None, compare=False, repr=False)

    @property
    def level(self) -> str:
        """Name of the level, the grouping columns joined by ':' (e.g. ``"district:school"``)."""
        return ":".join(self.group)


@dataclass(frozen=True)
class ParsedFormula:
    """A mixed-model formula split into response, fixed part and random terms."""
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    syntax: str
    residuals: dict | None = None    # Stata's residuals() option: keywords of mixedlm (residuals, time, by, ...)


# --------------------------------------------------------------------------- parsing

def _syntax_error(problem, text, pos):
    return FormulaError(f"{problem} in formula:\n  {text}\n  {' ' * pos}^")


def _paren_depths(text):
    """Nesting depth of each character (-1 inside string literals); check the balance."""
    depths, open_at, quote_at = [], [], None
    for i, ch in enumerate(text):
        if quote_at is not None:
            depths.append(-1)
            if ch == text[quote_at] and text[i - 1] != "\\":
                quote_at = None
            continue
        if ch in "'\"":
            quote_at = i
            depths.append(-1)
            continue
        if ch in ")]}":
            if not open_at or text[open_at[-1]] + ch not in ("()", "[]", "{}"):
                raise _syntax_error("unbalanced parenthesis", text, i)
            open_at.pop()
        depths.append(len(open_at))
        if ch in "([{":
            open_at.append(i)
    if quote_at is not None:
        raise _syntax_error("unterminated string", text, quote_at)
    if open_at:
        raise _syntax_error("unbalanced parenthesis", text, open_at[-1])
    return depths


def _split(text, depths, start, end, separators, level=0):
    """Split text[start:end] at separators found at nesting depth ``level``.

    Returns ``[(separator_before, piece_start, piece_end), ...]``; the first separator is ''.
    """
    pieces, before, piece_start, i = [], "", start, start
    while i < end:
        sep = next((s for s in separators if depths[i] == level and text.startswith(s, i)), None)
        if sep is None:
            i += 1
            continue
        pieces.append((before, piece_start, i))
        before, piece_start, i = sep, i + len(sep), i + len(sep)
    pieces.append((before, piece_start, end))
    return pieces


def _stripped(text, start, end):
    """(start, end) of text[start:end] without surrounding blanks."""
    piece = text[start:end]
    start += len(piece) - len(piece.lstrip())
    return start, max(start, end - len(piece) + len(piece.rstrip()))


def _cov_full_name(name):
    """Full name of a covariance structure or abbreviation, or None if unknown."""
    key = str(name).strip().lower()
    return next((full for full, shortest in _COV_SHORTEST.items()
                 if key.startswith(shortest) and full.startswith(key)), None)


def normalize_cov(name: str) -> str:
    """Full name of a covariance structure, accepting Stata's abbreviations.

    Examples
    --------
    >>> normalize_cov("un"), normalize_cov("exch"), normalize_cov("id")
    ('unstructured', 'exchangeable', 'identity')
    """
    full = _cov_full_name(name)
    if full is None:
        valid = ", ".join(f"{f} ({s})" for f, s in _COV_SHORTEST.items())
        raise FormulaError(f"unknown covariance structure {name!r}; valid structures "
                           f"(shortest abbreviation in parentheses) are: {valid}")
    return full


def _effects_formula(text, depths, start, end, level, stata):
    """Patsy formula with an explicit intercept, and the number of terms it has."""
    effects = text[start:end].strip()
    if stata and re.fullmatch(r"[\w.]+(\s+[\w.]+)+", effects):  # Stata varlist "x z"
        return "1 + " + " + ".join(effects.split()), 1 + len(effects.split())
    intercept, terms = True, []
    for n, (sep, a, b) in enumerate(_split(text, depths, start, end, ("+", "-"), level)):
        a, b = _stripped(text, a, b)
        term = text[a:b]
        if not term:
            if n == 0:
                continue  # leading unary minus, as in "-1 + x"
            raise _syntax_error(f"missing term after '{sep}'", text, a)
        if term in ("0", "1"):
            intercept = (term == "1") != (sep == "-")
        else:
            terms.append((sep or "+", term))
    formula = " ".join(["1" if intercept else "0"] + [f"{s} {t}" for s, t in terms])
    return formula, int(intercept) + sum(s == "+" for s, _ in terms)


def _lme4_groups(text, start, end):
    """Grouping tuples of an lme4 grouping spec: ``a/b:c`` -> [(a,), (a, b, c)]."""
    groups, outer, pos = [], (), start
    for segment in text[start:end].split("/"):
        names = tuple(name.strip() for name in segment.split(":"))
        if not all(_NAME.match(name) for name in names):
            problem = "grouping must be column names joined by ':' (combination) or '/' (nesting)"
            raise _syntax_error(problem, text, _stripped(text, pos, pos + len(segment))[0])
        outer = outer + names
        groups.append(outer)
        pos += len(segment) + 1
    return groups


def _lme4_terms(text, depths, open_pos, close_pos):
    """(group, formula, n_terms, bar) for each term of one ``( ... | ... )`` group."""
    pieces = _split(text, depths, open_pos + 1, close_pos, ("||", "|"), level=1)
    if len(pieces) > 2:
        raise _syntax_error("more than one '|' in a random-effects term", text,
                            pieces[2][1] - len(pieces[2][0]))
    (_, a0, b0), (bar, a1, b1) = pieces
    bar_pos = a1 - len(bar)
    a0, b0 = _stripped(text, a0, b0)
    a1, b1 = _stripped(text, a1, b1)
    if a0 == b0:
        raise _syntax_error(f"nothing before '{bar}' in random-effects term", text, bar_pos)
    if a1 == b1:
        raise _syntax_error(f"nothing after '{bar}' in random-effects term", text, bar_pos)
    formula, n_terms = _effects_formula(text, depths, a0, b0, 1, stata=False)
    if n_terms == 0:
        raise _syntax_error("a random-effects term without any column", text, open_pos)
    return [(g, formula, n_terms, bar) for g in _lme4_groups(text, a1, b1)]


def _random_groups(text, depths, start, end):
    """{open_pos: close_pos} of top-level parenthesised groups holding a top-level '|'."""
    found = {}
    for i in range(start, end):
        if text[i] != "(" or depths[i] != 0:
            continue
        before = text[start:i].rstrip()
        if before and (before[-1].isalnum() or before[-1] in "_.)]"):
            continue  # a function call such as I(...) or np.log(...)
        close = next(j for j in range(i + 1, end) if depths[j] == 0)
        if any(text[k] == "|" and depths[k] == 1 for k in range(i, close)):
            found[i] = close
    return found


def _parse_lme4(text, depths, start, groups):
    """Fixed part and raw random terms of an lme4 right-hand side."""
    fixed, raw_terms = [], []
    for sep, a, b in _split(text, depths, start, len(text), ("+", "-")):
        a, b = _stripped(text, a, b)
        if a in groups and groups[a] == b - 1:
            if sep == "-":
                raise _syntax_error("a random-effects term must be added with '+'", text, a)
            raw_terms += _lme4_terms(text, depths, a, b - 1)
            continue
        inside = [g for g in groups if a <= g < b]
        if inside:
            raise _syntax_error("a random-effects term must be added with '+', "
                                "not combined with other operators", text, inside[0])
        if a < b:
            fixed.append(f"{sep} {text[a:b]}" if fixed else f"{'-' if sep == '-' else ''}{text[a:b]}")
        elif sep:
            raise _syntax_error(f"missing term after '{sep}'", text, a)
    return " ".join(fixed) or "1", raw_terms


def _parse_stata(text, depths, start):
    """Fixed part and raw random terms of a Stata right-hand side."""
    segments = _split(text, depths, start, len(text), ("||",))
    raw_terms, outer = [], ()
    for _, a, b in segments[1:]:
        bars = a - 2
        colon = next((i for i in range(a, b) if text[i] == ":" and depths[i] == 0), None)
        if colon is None:
            raise _syntax_error("a Stata level needs 'name:' after '||'", text, bars)
        name = text[a:colon].strip()
        if not name:
            raise _syntax_error("a Stata level without a name", text, colon)
        if name == "_all" or re.search(r"\bR\.", text[colon:b]):
            raw_terms.append(_stata_crossed(text, name, colon, b))    # nests in nothing: outer unchanged
            continue
        if not _NAME.match(name):
            raise _syntax_error("a Stata level must be a column name", text, a)
        comma = next((i for i in range(colon, b) if text[i] == "," and depths[i] == 0), b)
        noconstant, inline_cov, pos = False, None, comma + 1
        while pos < b:
            if text[pos] in " ,":
                pos += 1
                continue
            match = _STATA_OPTION.match(text, pos, b)
            key = match.group(1).lower() if match else ""
            if len(key) >= 3 and "noconstant".startswith(key) and match.group(2) is None:
                noconstant = True
            elif len(key) >= 3 and "covariance".startswith(key) and match.group(2):
                inline_cov = _cov_full_name(match.group(3))
                if inline_cov is None:
                    raise _syntax_error(f"unknown covariance structure {match.group(3).strip()!r} (valid: "
                                        f"{', '.join(COV_STRUCTURES)})", text, match.start(3))
            else:
                word = match.group(0) if match else text[pos:b].split()[0]
                raise _syntax_error(f"unknown Stata option {word!r} (supported: noconstant, "
                                    "cov(unstructured|independent|identity|exchangeable))", text, pos)
            pos = match.end()
        formula, n_terms = _effects_formula(text, depths, colon + 1, comma, 0, stata=True)
        if noconstant:
            formula, n_terms = "0" + formula[1:], n_terms - formula.startswith("1")
        if n_terms == 0:
            raise _syntax_error("a Stata level without any random effect", text, bars)
        outer = outer + (name,)
        raw_terms.append((outer, formula, n_terms, inline_cov))
    a, b = _stripped(text, start, segments[0][2])
    return text[a:b] or "1", raw_terms


def _stata_crossed(text, name, colon, end):
    """``|| _all: R.x``: a random intercept of every level of ``x``, crossed with the other levels."""
    body = text[colon + 1:end].strip()
    match = re.fullmatch(r"R\.([A-Za-z_][\w.]*)", body)
    if name != "_all" or match is None:
        raise _syntax_error("crossed random effects in Stata syntax are written '|| _all: R.x' (a random "
                            "intercept per level of x; no slopes or options)", text, colon + 1)
    return (match.group(1),), "1", 1, None


_RESIDUALS = re.compile(r"\bres(?:i(?:d(?:u(?:a(?:l(?:s)?)?)?)?)?)?\s*\(")


def _stata_residuals(text, depths, start):
    """Stata's ``residuals(kind [#], t(var) by(var))`` option: the text without it and the
    keywords of ``hlmext.mixedlm`` it stands for (None when absent)."""
    match = next((m for m in _RESIDUALS.finditer(text, start) if depths[m.start()] == 0
                  and text.rfind(",", start, m.start()) > text.rfind("||", start, m.start()) >= 0), None)
    if match is None:
        return text, None
    close = next((i for i in range(match.end(), len(text)) if text[i] == ")" and depths[i] == 0), None)
    if close is None:
        raise _syntax_error("residuals( without its closing parenthesis", text, match.start())
    inner = text[match.end():close]
    kind, _, rest = inner.partition(",")
    out = {"residuals": re.sub(r"\s+", "", kind.strip())}
    if not out["residuals"]:
        raise _syntax_error("residuals() needs a structure, e.g. residuals(ar 1, t(time))", text, match.end())
    for opt in re.finditer(r"([A-Za-z]+)\s*\(\s*([^()]*?)\s*\)|(\S+)", rest):
        key = (opt.group(1) or "").lower()
        if key == "t" or (len(key) >= 1 and "time".startswith(key) and key != ""):
            out["time"] = opt.group(2)
        elif key == "by":
            out["by"] = opt.group(2)
        else:
            raise _syntax_error(f"unknown residuals() option {opt.group(0)!r} (supported: t(), by())", text,
                                match.end() + len(kind) + 1 + opt.start())
    blank = text[:match.start()] + " " * (close + 1 - match.start()) + text[close + 1:]
    return blank, out


def parse(formula: str, cov=None) -> ParsedFormula:
    """Parse a mixed-model formula written with lme4 bars or Stata ``||`` levels.

    Parameters
    ----------
    formula : str
        ``"y ~ x + (x | school)"`` (lme4) or ``"y ~ x || school: x"`` (Stata).
    cov : None, str or dict, optional
        Covariance structure of the random effects: one name for every level, or a
        dict keyed by level (``"district:school"``) or innermost grouping column.
        Names: unstructured, independent, identity, exchangeable (or ``un``, ``ind``,
        ``id``, ``ex``). An inline Stata ``cov()`` option wins over this argument.

    Returns
    -------
    ParsedFormula

    Examples
    --------
    >>> p = parse("gcse ~ lrt + (lrt | school)")
    >>> p.fixed, p.random[0]
    ('lrt', RandomTerm(group=('school',), formula='1 + lrt', cov='unstructured'))
    >>> [t.level for t in parse("y ~ x || district: || school: x").random]
    ['district', 'district:school']
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
    text = re.sub(r"\s", " ", formula).strip()
    depths = _paren_depths(text)
    tildes = [i for i, ch in enumerate(text) if ch == "~" and depths[i] == 0]
    if not tildes:
        raise FormulaError(f"formula {text!r} has no '~'; write it as "
                           f"'response ~ predictors', e.g. 'y ~ x + (1 | g)'")
    if len(tildes) > 1:
        raise _syntax_error("more than one '~'", text, tildes[1])
    start = tildes[0] + 1
    response = text[:tildes[0]].strip()
    if not response:
        raise _syntax_error("empty response (nothing before '~')", text, tildes[0])
    stata_bars = [i for i in range(start, len(text) - 1) if text.startswith("||", i) and depths[i] == 0]
    single_bars = [i for i in range(start, len(text)) if text[i] == "|" and depths[i] == 0
                   and text[i - 1] != "|" and text[i + 1:i + 2] != "|"]
    if single_bars:
        raise _syntax_error("'|' outside parentheses; write a random term as (x | g), or use "
                            "Stata syntax '|| g: x'", text, single_bars[0])
    groups = _random_groups(text, depths, start, len(text))
    if stata_bars and groups:
        raise _syntax_error("lme4 '(x | g)' and Stata '|| g:' syntax mixed", text,
                            max(stata_bars[0], min(groups)))
    if not stata_bars and not groups:
        raise FormulaError("no random-effects term; use statsmodels OLS/GLM for a model without "
                           "random effects, or add e.g. (1 | group)")
    if cov is None or isinstance(cov, str):
        cov_for_all, cov_by_level = (None if cov is None else normalize_cov(cov)), {}
    elif isinstance(cov, Mapping):
        cov_for_all, cov_by_level = None, {str(k): normalize_cov(v) for k, v in cov.items()}
    else:
        raise FormulaError(f"cov must be None, a structure name or a dict keyed by level, "
                           f"got {type(cov).__name__}")
    terms, matched_keys = [], set()
    residuals = None
    if stata_bars:
        text, residuals = _stata_residuals(text, depths, start)
        if residuals is not None:
            text, residuals = _residual_level(text, depths, start, residuals)
        fixed, raw = _parse_stata(text, depths, start)
        raw = [(group, f, n, inline, "independent") for group, f, n, inline in raw]
    else:
        fixed, raw = _parse_lme4(text, depths, start, groups)
        raw = [(group, f, n, None, "independent" if bar == "||" else "unstructured")
               for group, f, n, bar in raw]
    for group, effects, n_terms, inline, default in raw:
        key = next((k for k in (":".join(group), group[-1]) if k in cov_by_level), None)
        matched_keys.add(key)
        several = inline or cov_by_level.get(key) or cov_for_all or default
        terms.append(RandomTerm(group, effects, "identity" if n_terms == 1 else several, several))
    unused = set(cov_by_level) - matched_keys
    if unused:
        raise FormulaError(f"cov key {sorted(unused)[0]!r} matches no random-effects level; "
                           f"levels are: {', '.join(repr(t.level) for t in terms)}")
    return ParsedFormula(response, fixed, tuple(terms), "stata" if stata_bars else "lme4", residuals)


def _residual_level(text, depths, start, residuals):
    """A last level ``|| id:, noconstant`` without random effects only groups the residuals:
    it is dropped from the random part and becomes ``residual_group``."""
    last = max(i for i in range(start, len(text) - 1) if text.startswith("||", i) and depths[i] == 0)
    match = re.fullmatch(r"\|\|\s*([A-Za-z_.][\w.]*)\s*:\s*,\s*noc(?:o(?:n(?:s(?:t(?:a(?:n(?:t)?)?)?)?)?)?)?\s*",
                         text[last:])
    if match is None:
        return text, residuals
    return text[:last].rstrip(), dict(residuals, residual_group=match.group(1))
