"""The formula floor: the grammar of random terms, model frames, grouping codes."""
from .grammar import ParsedFormula, RandomTerm, normalize_cov, parse  # noqa: F401  (the old public path hlmext.formula.<name>)
