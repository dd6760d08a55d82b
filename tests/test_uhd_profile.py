from pathlib import Path

import pytest

from tests.test_params import SECTIONS
from tripled.params import load_section, read_params

UHD = Path(__file__).resolve().parents[1] / "params-uhd.yaml"


@pytest.mark.parametrize("cls,name", SECTIONS, ids=[n for _, n in SECTIONS])
def test_uhd_profile_validates(cls, name):
    assert set(read_params(UHD)) == {n for _, n in SECTIONS}
    p = load_section(cls, name, UHD)
    for key, value in read_params(UHD)[name].items():
        assert getattr(p, key) == value, key
