"""Stata-like summary tables for multilevel mixed-effects results.

:class:`MixedSummary` builds its sections once and renders the same objects to
monospace text laid out like Stata's ``mixed``/``meglm`` output, HTML and LaTeX.
"""
import html
import math
import re
import textwrap
from collections import namedtuple

import numpy as np
from scipy import stats

__all__ = ["MixedSummary", "stata_number", "stata_abbrev"]

_LINE = 78                                   # Stata's output width
_INTERCEPTS = ("Intercept", "(Intercept)", "const", "_cons")


def stata_number(x, width=10):
    """Format a number like Stata's ``%9.0g`` general format.

    Parameters
    ----------
    x : float
        The value; NaN and infinities give ``"."`` (Stata's missing value).
    width : int, default 10
        Width of the column the number is shown in, one separating blank
        included: the number is formatted ``%{width-1}.0g``, so the default
        is Stata's ``%9.0g`` (8 characters plus a minus sign, 7 significant
        digits) and ``width=11`` gives ``%10.0g``.

    Returns
    -------
    str
        The number, unpadded: no leading zero (``.5567955``), trailing zeros
        dropped (``.305867``), and e-notation (``1.23e-05``, ``1.23e+08``)
        when fixed notation does not fit or shows fewer significant digits.
    """
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else "."
    room, ax, text = width - 2, abs(x), None      # room: digits and the point
    exp0 = int(f"{ax:.15e}".split("e")[1])
    for exp in (exp0, exp0 + 1):                  # exp0 + 1: rounded up (.99999999)
        s = f"{ax:.{max(room - exp - 2, 0) if exp >= 0 else room - 1}f}"
        sig = (room - 1 if "." in s else exp + 1) if exp >= 0 else room + exp
        s = s[1:] if s.startswith("0.") else s
        s = s.rstrip("0").rstrip(".") if "." in s else s
        if len(s) <= room:
            text = s
            break
    ex = f"{ax:.{max(room - 6, 0)}e}"
    if len(ex) > room:                            # three-digit exponent
        ex = f"{ax:.{max(room - 7, 0)}e}"
    if text is None or sig <= len(ex.split("e")[0].replace(".", "")):
        text = ex
    return "-" + text if x < 0 and text.strip("0.") else text


def _abbrev_parts(name, width):
    """Abbreviate the parts of ``a:b`` / ``a,b`` longest first, or None."""
    tokens = re.split(r"([,:#])", name)
    parts, seps = tokens[0::2], tokens[1::2] + [""]
    sizes = [len(p) for p in parts]
    while sum(sizes) > width - sum(map(len, seps)):
        i = int(np.argmax(sizes))
        if sizes[i] <= 3:
            return None
        sizes[i] -= 1
    return "".join((p if len(p) <= n else p[:n - 2] + "~" + p[-1]) + s
                   for p, n, s in zip(parts, sizes, seps))


def stata_abbrev(name, width=12):
    """Abbreviate `name` to `width` characters with ``~`` like Stata.

    A plain name keeps its first ``width - 2`` characters and its last one
    (``displacement`` -> ``displa~t`` at width 8). Interactions and
    parameter names (``a:b``, ``corr(a,b)``) are abbreviated part by part,
    longest part first: ``C(schgend)[T.2]:lrt`` gives ``C(schgen~]:lrt`` at
    width 14 and ``C(schg~]:lrt`` at width 12.
    """
    name = str(name)
    if len(name) <= width:
        return name
    m = re.fullmatch(r"(\w+\()(.*)\)", name)
    inner = m and _abbrev_parts(m.group(2), width - len(m.group(1)) - 1)
    if inner:
        return m.group(1) + inner + ")"
    return _abbrev_parts(name, width) or name[:max(width - 2, 0)] + "~" + name[-1]


def stata_factor_name(name):
    """patsy's ``C(x)[T.2]`` as Stata's ``2.x``; interactions joined by ``#`` (``2.x#c.z``)."""
    parts = name.split(":")
    if len(parts) == 1 and not name.startswith("C("):
        return name
    out = []
    for part in parts:
        m = re.fullmatch(r"C\((\w+).*\)\[(?:T\.)?(.+)\]", part)
        if m:
            out.append("%s.%s" % (m.group(2), m.group(1)))
        else:
            out.append(("c." + part) if len(parts) > 1 else part)
    return "#".join(out)


def _get(obj, name, default=None):
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


def _cell(x, fmt=stata_number):
    """One table cell; NaN (e.g. an estimate on the boundary) is blank."""
    return "" if x is None or not np.isfinite(x) else fmt(x)


def _count(x, decimals=0):
    """Stata's ``%9.0gc`` (counts) or ``%9.1fc`` (averages)."""
    x = float(x)
    return f"{x:,.{decimals or 1}f}" if decimals or x != round(x) else f"{int(x):,}"


# The sections a summary is made of, rendered by as_text/as_html/as_latex:
# _Table   a grid whose stub column is `stub_width` wide plus `stub_pad` blanks;
#          `head` holds (stub label, [_Span, ...]) rows, `rows` holds
#          ("row", label, cells), ("group", level header) and ("rule",).
# _Header  lines (left, key, value, style); style "kv" (key = value), "sub"
#          (indented key), "title" (key alone) or "blank".
# _Lines   free lines: (text,), or (left, right) justified to 78 columns.
# None     a blank line in the text output.
_Span = namedtuple("_Span", "label width colspan text", defaults=(1, None))
_Table = namedtuple("_Table", "name stub_width stub_pad widths head rows")
_Header = namedtuple("_Header", "lines")
_Lines = namedtuple("_Lines", "lines css")


class MixedSummary:
    """Stata-like summary of a multilevel mixed-effects fit.

    Parameters
    ----------
    results : object
        Fitted results. Only these attributes are read: ``model_label``,
        ``endog_name``, ``nobs``, ``level_info``, ``integration``,
        ``wald_chi2``, ``llf``, ``reml``, ``fe_table``, ``re_table``,
        ``re_structure``, ``lr_test``, ``notes``, ``converged`` and, if
        present, ``eform_label``.
    eform : bool, default False
        Show exponentiated fixed effects (odds ratios, IRRs): ``exp(b)``,
        ``exp(b) * se`` and the exponentiated interval; z and p unchanged.
    alpha : float, default 0.05
        Level of the intervals. The ``lower``/``upper`` columns of the results
        are taken as 95% intervals; for another alpha they are recomputed
        (normal Wald intervals, on the log scale for ``sd``/``var`` and the
        atanh scale for ``corr`` parameters, as Stata does).
    title : str, optional
        Replaces ``results.model_label`` in the first header line.

    Notes
    -----
    The intercept is shown last as ``_cons``; NaN cells are blank; numbers
    use Stata's formats (:func:`stata_number`); names longer than a text
    column are abbreviated (:func:`stata_abbrev`), HTML/LaTeX keep them whole.
    """

    def __init__(self, results, eform=False, alpha=0.05, title=None, dfmethod=None):
        if not 0 < alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if dfmethod not in (None, "satterthwaite", "kenward-roger"):
            raise ValueError("dfmethod must be None, 'satterthwaite' or 'kenward-roger', not %r" % (dfmethod,))
        self.results, self.eform, self.alpha = results, bool(eform), alpha
        self.dfmethod = dfmethod
        self.title = results.model_label if title is None else title
        self._q = None if math.isclose(alpha, 0.05) else stats.norm.ppf(1 - alpha / 2)
        self._ci = f"[{100 * (1 - alpha):g}% Conf. Interval]"
        self._records = {"fixed": [], "random": []}      # the tables' numbers, for ``tables``
        self.sections = self._build()

    def _build(self):
        r, blank = self.results, ("", "", "", "blank")
        levels = list(r.level_info or [])
        top = [(self.title, "Number of obs", f"{int(r.nobs):,}", "kv")]
        if len(levels) == 1:
            lev = levels[0]
            top += [(f"Group variable: {stata_abbrev(lev['name'], 14)}",
                     "Number of groups", _count(lev["n_groups"]), "kv"), blank,
                    ("", "Obs per group:", "", "title"),
                    ("", "min", _count(lev["min"]), "sub"),
                    ("", "avg", _count(lev["avg"], 1), "sub"),
                    ("", "max", _count(lev["max"]), "sub")]
        sections = [_Header(top), None]
        if len(levels) > 1:
            sections += [self._group_table(levels), None]
        bottom = []
        if r.integration:
            m = re.fullmatch(r"\s*(.*?),\s*(\d+)\s*points?\s*", str(r.integration))
            meth, pts = m.groups() if m else (str(r.integration), "")
            bottom += [(f"Integration method: {meth}", pts and "Integration pts.", pts,
                        "kv"), blank]
        pseudo = getattr(getattr(r, "model", None), "sampling", None) is not None
        kind = "pseudolikelihood" if pseudo else "likelihood"
        ll = f"Log {'restricted-' if r.reml else ''}{kind} = {stata_number(r.llf, 11):>10}"
        if r.wald_chi2 is not None:
            stat, df, p = r.wald_chi2
            ok = np.isfinite(stat)
            bottom += [("", f"Wald chi2({int(df)})", f"{stat:.2f}" if ok else ".", "kv"),
                       (ll, "Prob > chi2", f"{p:.4f}" if ok else ".", "kv")]
        else:
            bottom.append((ll, "", "", "kv"))
        sections.append(_Header(bottom))
        if not getattr(r, "converged", True):
            sections.append(_Lines([("Warning: convergence not achieved",)], "warn"))
        sections += [None, self._fixed_table()]
        if r.re_table is not None and len(r.re_table):
            sections += [None, self._random_table()]
        lr, notes = r.lr_test, [str(n) for n in (r.notes or [])]
        if lr is not None:
            kind, stat, p = (_get(lr, k) for k in ("kind", "statistic", "pvalue"))
            versus = re.sub(r"\s+regression$", " model", str(_get(lr, "versus", "linear")))
            chibar = str(kind).startswith("chibar2")
            kind = kind if chibar else f"chi2({int(_get(lr, 'df'))})"
            right = f"Prob >= chibar2 = {p:.4f}" if chibar else f"Prob > chi2 = {p:.4f}"
            sections.append(_Lines([(f"LR test vs. {versus}: {kind} = {stat:.2f}", right)], "lr"))
            if _get(lr, "conservative", False):
                notes.insert(0, "Note: LR test is conservative and provided only for reference.")
        dlr = getattr(r, "dispersion_lr", None)      # the negative binomial's alpha = 0
        if dlr is not None:
            sections.append(_Lines([(f"LR test of {dlr['parameter']}=0: chibar2(01) = {dlr['chibar2']:.2f}",
                                     f"Prob >= chibar2 = {dlr['pvalue']:.4f}")], "lr"))
        if self.dfmethod is not None:
            df = self._small_sample_table()["df"]
            notes.append("Fixed effects: t tests, %s (min %.1f, max %.1f)."
                         % ("Satterthwaite df" if self.dfmethod == "satterthwaite"
                            else "Kenward-Roger adjusted standard errors and df", df.min(), df.max()))
        if notes:
            sections += [None, _Lines([(n,) for n in notes], "note")]
        return sections

    def _small_sample_table(self):
        """The fixed effects with Satterthwaite or Kenward-Roger df (computed once)."""
        if getattr(self, "_fe_small", None) is None:
            if self.dfmethod == "satterthwaite":
                from ..inference.satterthwaite import fe_table
            else:
                from ..inference.kenward_roger import fe_table
            self._fe_small = fe_table(self.results, self.alpha)
        return self._fe_small

    def _group_table(self, levels):
        rows = [("row", str(lev["name"]), [_count(lev["n_groups"]), _count(lev["min"]),
                                           _count(lev["avg"], 1), _count(lev["max"])])
                for lev in levels]
        return _Table("groups", 15, 1, [11] * 4, [
            ("", [_Span("No. of", 11),
                  _Span("Observations per Group", 33, 3, "       Observations per Group")]),
            ("Group Variable", [_Span(s, 11) for s in ("Groups", "Minimum", "Average",
                                                      "Maximum")])], rows)

    def _fixed_table(self):
        r = self.results
        if self.dfmethod is not None:             # t tests with small-sample df, t-based intervals
            fe, stat, p_label = self._small_sample_table().rename(columns={"t": "z"}), "t", "P>|t|"
        else:
            fe, stat, p_label = r.fe_table, "z", "P>|z|"
        names = [str(n) for n in fe.index]
        order = sorted(range(len(names)), key=lambda i: names[i] in _INTERCEPTS)
        label = (getattr(r, "eform_label", None) or "exp(b)") if self.eform else "Coef."
        t = _Table("fixed", 12, 1, [11, 11, 9, 8, 13, 12], [(str(r.endog_name), [
            _Span(label, 11), _Span("Std. Err.", 12), _Span(stat, 7), _Span(p_label, 9),
            _Span(self._ci, 25, 2)])], [])
        for i in order:
            b, se, z, p, lo, hi = (float(fe[c].iloc[i]) for c in
                                   ("coef", "se", "z", "pvalue", "lower", "upper"))
            if self._q is not None and self.dfmethod is None:
                lo, hi = b - self._q * se, b + self._q * se
            if self.eform:
                b, se, lo, hi = np.exp(b), np.exp(b) * se, np.exp(lo), np.exp(hi)
            self._records["fixed"].append((names[i], b, se, z, p, lo, hi))
            t.rows.append(("row", "_cons" if names[i] in _INTERCEPTS else stata_factor_name(names[i]), [
                _cell(b), _cell(se), _cell(z, "{:.2f}".format), _cell(p, "{:.3f}".format),
                _cell(lo), _cell(hi)]))
        disp = getattr(r, "dispersion", None)         # /lnalpha and alpha (menbreg, meglm), not eform
        if disp is not None:
            t.rows.append(("rule",))
            for name, (b, se, lo, hi) in zip(disp.index, disp.to_numpy(float)):
                self._records["fixed"].append((name, b, se, np.nan, np.nan, lo, hi))
                t.rows.append(("row", str(name), [_cell(b), _cell(se), _cell(np.nan), _cell(np.nan),
                                                   _cell(lo), _cell(hi)]))
        return t

    def _random_table(self):
        r, q, current = self.results, self._q, object()
        structure = dict(r.re_structure or {})
        t = _Table("random", 27, 2, [11, 11, 14, 12], [("Random-effects Parameters", [
            _Span("Estimate", 11), _Span("Std. Err.", 12), _Span(self._ci, 25, 2)])], [])
        for (level, param), row in zip(r.re_table.index, r.re_table.itertuples(index=False)):
            level, param = str(level), re.sub(r"\bIntercept\b", "_cons", str(param))
            if level != current:
                t.rows.extend([("rule",)] if t.rows else [])
                if level in structure or level.lower() != "residual":   # no header: Residual
                    t.rows.append(("group", f"{level}: {structure.get(level, '')}".rstrip()))
                current = level
            est, se, lo, hi = map(float, (row.estimate, row.se, row.lower, row.upper))
            if q is not None and np.isfinite(se):
                lo, hi = est - q * se, est + q * se
                if param.startswith(("sd(", "var(")) and est > 0:
                    lo, hi = est * math.exp(-q * se / est), est * math.exp(q * se / est)
                elif param.startswith("corr(") and abs(est) < 1:
                    z, h = math.atanh(est), q * se / (1 - est * est)
                    lo, hi = math.tanh(z - h), math.tanh(z + h)
            self._records["random"].append((level, param, est, se, lo, hi))
            t.rows.append(("row", param, [_cell(est), _cell(se), _cell(lo), _cell(hi)]))
        return t

    @property
    def tables(self):
        """The summary's tables as DataFrames, as statsmodels' ``summary2().tables``.

        The fixed effects (index named after the response; ``coef``, ``se``, ``z`` or
        ``t``, ``pvalue`` and the interval at the summary's ``alpha``, exponentiated
        with ``eform``), the random-effects parameters (index ``level``, ``parameter``)
        and, with several levels, the group counts (index ``level``).

        Examples
        --------
        >>> import hlmext
        >>> df = hlmext.datasets.load("gcse").query("nstu > 4")
        >>> res = hlmext.mixedlm("gcse ~ lrt + (1 | school)", df).fit()
        >>> fixed, random = res.summary().tables
        >>> fixed.index.tolist(), list(random.index.names)
        (['lrt', 'Intercept'], ['level', 'parameter'])
        """
        import pandas as pd
        stat = "t" if self.dfmethod is not None else "z"
        records = self._records["fixed"]
        fixed = pd.DataFrame([rec[1:] for rec in records],
                             index=pd.Index([rec[0] for rec in records], name=str(self.results.endog_name)),
                             columns=pd.Index(["coef", "se", stat, "pvalue", "lower", "upper"], name="fixed effects"))
        out = [fixed]
        if self._records["random"]:
            out.append(pd.DataFrame([rec[2:] for rec in self._records["random"]],
                                    index=pd.MultiIndex.from_tuples([rec[:2] for rec in self._records["random"]],
                                                                    names=["level", "parameter"]),
                                    columns=pd.Index(["estimate", "se", "lower", "upper"], name="random effects")))
        levels = list(self.results.level_info or [])
        if len(levels) > 1:
            groups = pd.DataFrame(levels).set_index("name")
            groups.index.name, groups.columns.name = "level", "groups"
            out.append(groups)
        return out

    def as_text(self):
        """Render the summary as Stata-style monospace text (78 columns)."""
        out = []
        for sec in self.sections:
            if sec is None:
                out.append("")
            elif isinstance(sec, _Header):
                out += [_header_line(*ln) for ln in sec.lines]
            elif isinstance(sec, _Table):
                out += _table_text(sec)
            else:
                out += [ln[0] + " " * max(_LINE - len(ln[0]) - len(ln[1]), 1) + ln[1]
                        if len(ln) == 2 else textwrap.fill(ln[0], _LINE, subsequent_indent=" " * 6)
                        for ln in sec.lines]
        return "\n".join(out)

    def as_html(self):
        """Render the summary as HTML tables with a small scoped stylesheet."""
        out = ['<div class="hlmext-summary">', _CSS]
        for sec in filter(None, self.sections):
            if isinstance(sec, _Lines):
                out += [f'<p class="{sec.css}">' + "&emsp;&emsp;".join(map(html.escape, ln))
                        + "</p>" for ln in sec.lines]
                continue
            out.append(f'<table class="{getattr(sec, "name", "header")}">')
            last = None
            for part, cls, cells in _markup_rows(sec):
                if part != last:
                    out.append(("</thead>\n" if last else "") + f"<t{part}>")
                tag, last = "th" if part == "head" else "td", part
                out.append((f'<tr class="{cls}">' if cls else "<tr>") + "".join(
                    f'<{tag} class="{c}"' + (f' colspan="{n}"' if n > 1 else "")
                    + f">{html.escape(text)}</{tag}>" for text, n, c in cells) + "</tr>")
            out += ["</tbody>", "</table>"]
        return "\n".join(out + ["</div>"])

    def as_latex(self):
        """Render the summary as LaTeX ``tabular`` environments (booktabs rules)."""
        out = []
        for sec in filter(None, self.sections):
            if isinstance(sec, _Lines):
                out.append("\n".join(r"\quad ".join(map(_tex, ln)) + r"\par" for ln in sec.lines))
                continue
            rows, grid = _markup_rows(sec), isinstance(sec, _Table)
            ncol = max(sum(c[1] for c in cells) for _, _, cells in rows)
            lines = [f"\\begin{{tabular}}{{l{'r' * (ncol - 1) if grid else 'lr'}}}"]
            for i, (part, cls, cells) in enumerate(rows):
                if grid and (i == 0 or "sep" in cls or (rows[i - 1][0], part) == ("head", "body")):
                    lines.append(r"\toprule" if i == 0 else r"\midrule")
                lines.append(" & ".join(
                    (r"\quad " if "sub" in c else "") + _tex(text) if n == 1 else
                    f"\\multicolumn{{{n}}}{{{'l' if 'stub' in c else 'c'}}}{{{_tex(text)}}}"
                    for text, n, c in cells) + r" \\")
            out.append("\n".join(lines + [r"\bottomrule"] * grid + [r"\end{tabular}"]))
        return "\n\n\\medskip\n".join(out) + "\n"

    def __str__(self):
        return self.as_text()

    __repr__ = __str__

    def _repr_html_(self):
        return self.as_html()


# ---------------------------------------------------------------- text
def _header_line(left, key, value, style):
    """One header line: `left` text, then `key = value` from column 49."""
    right = {"kv": f"{key:<18}={value:>11}" if value else key,
             "sub": f"{key:>17} ={value:>11}", "title": key, "blank": ""}[style]
    return (left.ljust(47) + " " + right).rstrip() if right else left


def _table_text(t):
    """Stata-style grid: rules of ``-``, ``|`` after the stub, ``+`` crossings."""
    stub, body = t.stub_width + t.stub_pad, sum(t.widths)
    full, mid = "-" * (stub + 1 + body), "-" * stub + "+" + "-" * body

    def line(label, cells):
        lab = stata_abbrev(label, t.stub_width).rjust(t.stub_width)
        return (lab + " " * t.stub_pad + "|" + "".join(cells)).rstrip()

    out = [full] + [line(label, [s.label.rjust(s.width) if s.text is None else s.text
                                 for s in spans]) for label, spans in t.head] + [mid]
    for row in t.rows:
        if row[0] == "rule":
            out.append(mid)
        elif row[0] == "group":
            out.append(stata_abbrev(row[1], stub - 1).ljust(stub) + "|")
        else:
            out.append(line(row[1], [c.rjust(w) for c, w in zip(row[2], t.widths)]))
    return out + [full]


# ---------------------------------------------------------------- markup
def _markup_rows(sec):
    """Rows ``(part, css class, [(text, colspan, cell class), ...])`` of a
    header or table section, shared by the HTML and LaTeX renderers."""
    if isinstance(sec, _Header):
        return [("body", style, [(left, 1, "left"), (key, 1, f"key {style}"),
                                 (value and "= " + value, 1, "num")])
                for left, key, value, style in sec.lines if style != "blank"]
    rows = [("head", "", [(label, 1, "stub")] + [(s.label, s.colspan, "num") for s in spans])
            for label, spans in sec.head]
    sub = "stub sub" if any(r[0] == "group" for r in sec.rows) else "stub"
    sep = ""
    for row in sec.rows:
        if row[0] == "rule":
            sep = "sep"
            continue
        cells = ([(row[1], 1 + len(sec.widths), "stub grp")] if row[0] == "group" else
                 [(row[1], 1, sub)] + [(c, 1, "num") for c in row[2]])
        rows.append(("body", sep, cells))
        sep = ""
    return rows


_CSS = """<style>
.hlmext-summary table{border-collapse:collapse;margin:0 0 .8em 0;font-size:.9em}
.hlmext-summary th,.hlmext-summary td{padding:1px .7em;border:none;background:none;
 white-space:nowrap;text-align:right;font-variant-numeric:tabular-nums}
.hlmext-summary .stub,.hlmext-summary .left,.hlmext-summary .key{text-align:left}
.hlmext-summary .sub{padding-left:2em} .hlmext-summary th[colspan]{text-align:center}
.hlmext-summary table:not(.header){border-top:1px solid;border-bottom:1px solid}
.hlmext-summary .stub:not(.grp){border-right:1px solid #888}
.hlmext-summary tr.sep>*,.hlmext-summary thead+tbody>tr:first-child>*{border-top:1px solid #888}
.hlmext-summary p{margin:.2em 0;font-size:.9em} .hlmext-summary p.warn{color:#b00}
</style>"""

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
        "^": r"\^{}", "<": r"$<$", ">": r"$>$", "|": r"\textbar{}"}


def _tex(s):
    return "".join(_TEX.get(c, c) for c in str(s))
