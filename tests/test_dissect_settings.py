"""The settings of a dissection: flat options routed to their group, checked before any work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conceptkit.dissection.settings import (
    DEFAULT_CACHE_MEM,
    CacheSettings,
    DissectSettings,
    RunSettings,
    ScienceSettings,
)
from conceptkit.errors import UsageError


def test_flat_options_go_to_their_group_and_defaults_stay():
    s = DissectSettings.from_options(quantile=0.01, spill=False, batch_size=8, top_n=3)
    assert s.science == ScienceSettings(quantile=0.01, top_n=3)
    assert s.cache == CacheSettings(spill=False) and s.cache.cache_mem == DEFAULT_CACHE_MEM
    assert s.run == RunSettings(batch_size=8)
    t = s.with_options(batch_size=16, union="global")
    assert (t.run.batch_size, t.science.union, t.science.quantile) == (16, "global", 0.01)
    assert s.run.batch_size == 8  # frozen: with_options copies
    with pytest.raises(TypeError, match="unexpected keyword argument 'quantil'"):
        DissectSettings.from_options(quantil=0.01)


def test_thresholds_from_names_the_source():
    assert ScienceSettings().thresholds_from is None
    assert ScienceSettings(thresholds={"a": [1.0]}).thresholds_from == "python"
    assert ScienceSettings(thresholds="old/").thresholds_from == "old/"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"quantile": 1.0}, "strictly between 0 and 1"),
        ({"top_n": 0}, "--top-n must be at least 1"),
        ({"union": "any"}, "'category' or 'global'"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"workers": -1}, "--workers must be 0 or more"),
        ({"spill_dtype": "int8"}, "float32 or float16"),
        ({"cache_disk": -1}, "cache budgets must be 0 or more"),
        ({"autocast": "fp8"}, "--autocast must be bf16 or fp16"),
    ],
)
def test_bad_settings_are_usage_errors(options, message):
    with pytest.raises(UsageError, match=message):
        DissectSettings.from_options(**options).check()


def test_settings_and_the_package_import_no_torch():
    code = (
        "import sys, conceptkit.dissection as d; "
        "d.DissectSettings.from_options(quantile=0.01).check(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
