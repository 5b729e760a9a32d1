"""Designs too large for the machine are refused before anything large is allocated."""
import resource
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import hlmext
from hlmext.design import memory as design


def _three_crossed(levels=11_000, seed=0):
    rng = np.random.default_rng(seed)
    n = 3 * levels
    df = pd.DataFrame({k: rng.permutation(np.arange(n) % levels) for k in "abc"})
    df["x"] = rng.normal(size=n)
    df["y"] = df.x + rng.normal(size=n)
    df["yes"] = (df.y > 0).astype(int)
    return df


@pytest.fixture(scope="module")
def big():
    return _three_crossed()


def test_memory_estimate_of_three_crossed_factors():
    # the chain: 11,000 clusters x (2 x 11,000 crossed effects + x, intercept, y); the dense block 22,003^2
    assert design.memory_needed(11_000 * 22_003, 22_000, 2) == 8 * (2 * 11_000 * 22_003 + 2 * 22_003 ** 2)


@pytest.mark.parametrize("make", [lambda df: hlmext.mixedlm("y ~ x + (1|a) + (1|b) + (1|c)", df),
                                  lambda df: hlmext.melogit("yes ~ x + (1|a) + (1|b) + (1|c)", df)])
def test_three_crossed_factors_beyond_memory_are_refused_early(big, make, monkeypatch):
    # a 4 GB machine: the 22,003^2 dense block, twice, needs 7.7 GB (the sparse coupling of the chain's
    # 11,000 clusters only 3 values each)
    monkeypatch.setattr(design, "physical_memory", lambda: 4e9)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(hlmext.ModelError, match=r"needs about 7\.7 GB .* 22000 x 22000 dense block .* 4\.0 GB: "
                                                r"fit fewer crossed factors"):
        make(big)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000   # kB: nothing of the 7.7 GB


def test_design_needing_over_100_gb_is_refused(monkeypatch):
    monkeypatch.setattr(design, "physical_memory", lambda: 64e9)
    levels = [SimpleNamespace(name=name, n_groups=60_000, q=1) for name in "abc"]   # 120,000 crossed effects
    with pytest.raises(hlmext.ModelError, match=r"needs about 2\d\d\.\d GB"):
        design.check_memory(levels, 1, 1_000, 2)
