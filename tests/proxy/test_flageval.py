"""Flag evaluation by value: spread, ramp, independence, variants, and the header table."""

from __future__ import annotations

import pytest

from proxy.flageval import HASH_SPACE, TargetingKeyMissing, evaluate, point
from proxy.flagheader import TABLES, FlagTable, flag_entries, variant_pairs
from state.flags import Flag

KEYS = [f"user-{i}" for i in range(10_000)]
# Chi-square, 1 degree of freedom, p = 0.001.
CHI2_CRITICAL_1DF = 10.828


def share_on(name: str, flag: Flag) -> float:
    return sum(evaluate(name, flag, k).value is True for k in KEYS) / len(KEYS) * 100


@pytest.mark.parametrize("percent", [1, 10, 25, 50, 90])
def test_a_percentage_flag_is_on_for_that_share_of_10000_keys_within_one_point(percent: int) -> None:
    assert abs(share_on("checkout", Flag(on=True, percent=percent)) - percent) <= 1.0


def test_raising_10_to_20_percent_keeps_every_user_who_was_in() -> None:
    at10 = {k for k in KEYS if evaluate("checkout", Flag(on=True, percent=10), k).value}
    at20 = {k for k in KEYS if evaluate("checkout", Flag(on=True, percent=20), k).value}
    assert at10 < at20
    assert abs(len(at20) / len(KEYS) * 100 - 20) <= 1.0


def test_two_flags_at_50_percent_are_independent_by_chi_square() -> None:
    flag = Flag(on=True, percent=50)
    table = [[0, 0], [0, 0]]
    for k in KEYS:
        table[bool(evaluate("alpha", flag, k).value)][bool(evaluate("beta", flag, k).value)] += 1
    n = len(KEYS)
    rows = [sum(r) for r in table]
    cols = [table[0][j] + table[1][j] for j in range(2)]
    chi2 = sum(
        (table[i][j] - rows[i] * cols[j] / n) ** 2 / (rows[i] * cols[j] / n)
        for i in range(2)
        for j in range(2)
    )
    assert chi2 < CHI2_CRITICAL_1DF, table
    # Not the same half: about a quarter of the keys is in both.
    assert abs(table[1][1] / n - 0.25) < 0.02


def test_the_same_name_and_key_always_give_the_same_point() -> None:
    assert point("a", "k") == point("a", "k")
    assert {point("a", k) for k in KEYS[:100]} != {point("b", k) for k in KEYS[:100]}
    assert all(0 <= point("a", k) < HASH_SPACE for k in KEYS)


def test_variants_split_10000_keys_by_their_weights_within_two_points() -> None:
    flag = Flag(on=True, variants=(("a", 50), ("b", 30), ("c", 20)))
    counts = {"a": 0, "b": 0, "c": 0}
    for k in KEYS:
        result = evaluate("theme", flag, k)
        assert result.reason == "SPLIT" and result.variant == result.value
        counts[str(result.value)] += 1
    assert {v: round(n / 100) for v, n in counts.items()} == pytest.approx({"a": 50, "b": 30, "c": 20}, abs=2)


def test_variant_assignment_is_sticky_and_a_zero_weight_variant_gets_nobody() -> None:
    flag = Flag(on=True, variants=(("a", 0), ("b", 100)))
    assert {evaluate("theme", flag, k).value for k in KEYS[:1000]} == {"b"}
    split = Flag(on=True, variants=(("x", 50), ("y", 50)))
    assert [evaluate("t", split, k).value for k in KEYS[:50]] == [
        evaluate("t", split, k).value for k in KEYS[:50]
    ]


def test_reasons_and_when_a_key_is_needed() -> None:
    assert evaluate("f", Flag(on=True), None).reason == "STATIC"
    assert evaluate("f", Flag(on=False), None).reason == "DISABLED"
    assert evaluate("f", Flag(on=False, percent=10), None).value is False
    assert evaluate("f", Flag(on=False, variants=(("a", 50), ("b", 50))), None).value is None
    assert evaluate("f", Flag(on=True, percent=100), None).value is True
    assert evaluate("f", Flag(on=True, percent=0), None).value is False
    with pytest.raises(TargetingKeyMissing):
        evaluate("f", Flag(on=True, percent=10), "")
    with pytest.raises(TargetingKeyMissing):
        evaluate("f", Flag(on=True, variants=(("a", 50), ("b", 50))), None)


def test_the_header_lists_flags_on_for_the_bucket_and_variants_by_name() -> None:
    rules = {
        "beta": Flag(on=True),
        "dark": Flag(on=False),
        "half": Flag(on=True, percent=50),
        "theme": Flag(on=True, variants=(("blue", 50), ("red", 50))),
    }
    seen_half = set()
    for bucket in range(100):
        entries = flag_entries(rules, bucket)
        key = str(bucket)
        expected = ["beta"]
        if evaluate("half", rules["half"], key).value:
            expected.append("half")
        expected.append(f"theme={evaluate('theme', rules['theme'], key).value}")
        assert entries == tuple(expected)
        seen_half.add("half" in entries)
        assert variant_pairs(rules, bucket) == (("theme", str(evaluate("theme", rules["theme"], key).value)),)
    assert seen_half == {True, False}
    assert flag_entries({}, 3) == ()


def test_the_table_is_kept_for_an_equal_set_of_flags_and_replaced_for_a_new_one() -> None:
    rules = {"half": Flag(on=True, percent=50)}
    flag_entries(rules, 1)
    table = TABLES.current
    flag_entries(dict(rules), 1)
    assert TABLES.current is table
    flag_entries({"half": Flag(on=True, percent=60)}, 1)
    assert TABLES.current is not table
    assert isinstance(TABLES.current, FlagTable)
