import pytest

from claw402.money import atomic_to_usd, usd_to_atomic


@pytest.mark.parametrize(
    ("usd", "atomic"),
    [("0", 0), ("0.001", 1000), ("1", 1_000_000), ("0.000001", 1), ("12.5", 12_500_000)],
)
def test_round_trip(usd, atomic):
    assert usd_to_atomic(usd) == atomic
    assert atomic_to_usd(atomic) == usd


@pytest.mark.parametrize("bad", ["-1", "abc", "0.0000001", "NaN", "inf", "", "1e9", "1,5"])
def test_bad_prices(bad):
    with pytest.raises(ValueError):
        usd_to_atomic(bad)
