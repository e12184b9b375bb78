"""Branch environments decided with plain values: slugs, which refs, ports, TTL and cap."""

from __future__ import annotations

import pytest

from provisioner.deploy.gitrefs import ZERO_SHA, RefUpdate
from provisioner.deploy.previewplan import branch_actions, branch_slug, pick_port, slug_for, to_remove
from state.previews import Preview, parse_preview_name

A, B = "a" * 40, "b" * 40
DAY = 86400.0


@pytest.mark.parametrize(
    ("branch", "slug"),
    [
        ("feature-x", "feature-x"),
        ("Feature/X", "feature-x"),
        ("fix/JIRA-123_login--page", "fix-jira-123-login-page"),
        ("-x-", "x"),
        ("dependabot/npm_and_yarn/lodash-4.17.21", "dependabot-npm-and-yarn-lodash-4-17-21"),
    ],
)
def test_a_branch_slug_is_a_readable_dns_label(branch: str, slug: str) -> None:
    assert branch_slug(branch) == slug == parse_preview_name(slug)


def test_a_long_or_empty_name_is_cut_and_told_apart_by_a_hash() -> None:
    long_a, long_b = "a" * 70 + "/one", "a" * 70 + "/two"
    slugs = {branch_slug(long_a), branch_slug(long_b), branch_slug("ünïcødé"), branch_slug("___")}
    assert len(slugs) == 4
    for slug in slugs:
        assert len(slug) <= 63 and parse_preview_name(slug) == slug


def test_two_branches_with_one_slug_get_two_previews_and_each_keeps_its_own() -> None:
    def branch(name: str) -> Preview:
        return Preview(("http://s:9000",), "branch", A, name)

    assert slug_for("feature/x", {}) == "feature-x"
    taken = {"feature-x": branch("feature-x")}
    assert slug_for("feature-x", taken) == "feature-x"  # its own: redeployed, or removed
    other = slug_for("feature/x", taken)
    assert other.startswith("feature-x-") and other == parse_preview_name(other)
    both = {**taken, other: branch("feature/x")}
    assert (slug_for("feature/x", both), slug_for("feature-x", both)) == (other, "feature-x")
    # Once the first is gone the second keeps its name; a held release's name is taken too.
    assert slug_for("feature/x", {other: branch("feature/x")}) == other
    held = {"abcdef12": Preview(("http://s:9001",), "release", A)}
    assert slug_for("abcdef12", held) != "abcdef12"


def test_only_branches_that_are_no_environments_are_previews() -> None:
    updates = [
        RefUpdate(A, B, "refs/heads/main"),
        RefUpdate(A, B, "refs/heads/staging"),
        RefUpdate(A, B, "refs/heads/master"),
        RefUpdate(A, B, "refs/tags/v1"),
        RefUpdate(ZERO_SHA, B, "refs/heads/feature/x"),
        RefUpdate(A, ZERO_SHA, "refs/heads/old"),
    ]
    found = [(a.branch, a.slug, a.remove, a.why) for a in branch_actions(updates)]
    assert found == [
        ("feature/x", "feature-x", False, "refs/heads/feature/x -> preview feature-x"),
        ("old", "old", True, "refs/heads/old deleted: removing preview old"),
    ]


def _branch(port: int, touched_at: float = 0.0) -> Preview:
    return Preview((f"http://10.0.0.5:{port}", f"http://10.0.0.6:{port}"), "branch", touched_at=touched_at)


def test_a_preview_keeps_its_port_and_a_new_one_takes_the_lowest_free_pair() -> None:
    taken = {"a": _branch(9200), "c": _branch(9204)}
    assert pick_port(taken, "a", 9200, 3) == 9200
    assert pick_port(taken, "b", 9200, 3) == 9202
    assert pick_port({**taken, "b": _branch(9202)}, "d", 9200, 3) is None
    # A port someone holds by hand (odd, or the side port of a pair) blocks its pair.
    assert pick_port({"x": _branch(9201)}, "b", 9200, 3) == 9202


def test_previews_untouched_for_the_ttl_go_and_younger_ones_stay() -> None:
    now = 100 * DAY
    found = {
        "old": _branch(9200, now - 7 * DAY),  # exactly the TTL: gone
        "young": _branch(9202, now - 7 * DAY + 1),
        "release": Preview(("http://10.0.0.5:8001",), "release", touched_at=0.0),  # not a branch's
    }
    assert [n for n, _ in to_remove(found, now, ttl_s=7 * DAY, max_count=10)] == ["old"]
    (why,) = (w for _, w in to_remove(found, now, ttl_s=7 * DAY, max_count=10))
    assert why == "untouched for 7.0 days (preview_ttl_s 604800)"


def test_beyond_the_cap_the_idlest_go_first_and_the_new_one_never() -> None:
    now = 100 * DAY
    found = {name: _branch(9200 + 2 * i, now - DAY * (5 - i)) for i, name in enumerate("abcde")}
    assert [n for n, _ in to_remove(found, now, ttl_s=7 * DAY, max_count=3)] == ["a", "b"]
    # The one just pushed counts, as the newest, even if its record is older.
    assert [n for n, _ in to_remove(found, now, ttl_s=7 * DAY, max_count=3, keep="a")] == ["b", "c"]
    assert to_remove(found, now, ttl_s=7 * DAY, max_count=5) == []
    # Expired ones count towards the cap first: none beyond it is needed then.
    stale = {**found, "z": _branch(9300, now - 30 * DAY)}
    assert [n for n, _ in to_remove(stale, now, ttl_s=7 * DAY, max_count=5)] == ["z"]
