"""The deploy's decisions, with plain values: which ref deploys where, release names and
pruning, the webhook's checks, the deploy plan. No sockets, no processes."""

from __future__ import annotations

import calendar
import json
import time

import pytest

from provisioner.deploy.gitrefs import (
    ZERO_SHA,
    RefUpdate,
    decide,
    parse_sha,
    parse_update,
    stale_push,
    target_env,
)
from provisioner.deploy.inventory import as_ansible, plan
from provisioner.deploy.outcome import failed_task
from provisioner.deploy.releases import is_release, previous, release_name, to_prune
from provisioner.deploy.signature import networks, parse_push, sender_allowed, signature, verify
from provisioner.errors import ConfigureError, DeployInputError
from state import ServerRecord

A, B, C = "a" * 40, "b" * 40, "c" * 40


@pytest.mark.parametrize(
    ("ref", "env"),
    [
        ("refs/heads/main", "production"),
        ("refs/heads/master", "production"),
        ("refs/heads/staging", "staging"),
        ("refs/heads/feature/main", None),
        ("refs/heads/staging2", None),
        ("refs/tags/main", None),
        ("main", None),
    ],
)
def test_which_ref_deploys_where(ref: str, env: str | None) -> None:
    assert target_env(ref) == env


def test_a_push_decides_per_ref_and_deletions_do_nothing() -> None:
    decisions = decide(
        [
            RefUpdate(A, B, "refs/heads/main"),
            RefUpdate(A, ZERO_SHA, "refs/heads/staging"),
            RefUpdate(ZERO_SHA, C, "refs/heads/feature"),
        ]
    )
    assert [(d.update.ref, d.env) for d in decisions] == [
        ("refs/heads/main", "production"),
        ("refs/heads/staging", None),
        ("refs/heads/feature", None),
    ]
    assert "deleted" in decisions[1].why and "not deployed" in decisions[2].why


def test_main_and_master_in_one_push_deploy_once_the_last() -> None:
    decisions = decide([RefUpdate(A, B, "refs/heads/main"), RefUpdate(A, C, "refs/heads/master")])
    assert [d.env for d in decisions] == [None, "production"]
    assert "a later ref of this push goes to production" in decisions[0].why


@pytest.mark.parametrize(
    "line",
    ["", f"{A} {B}", f"{A} {B} refs/heads/main extra", f"{A[:39]} {B} refs/heads/main", f"{A} {B} heads/x"],
)
def test_bad_hook_lines_are_refused(line: str) -> None:
    with pytest.raises(DeployInputError):
        parse_update(line)


def test_a_hook_line_and_shas() -> None:
    assert parse_update(f"{A} {B} refs/heads/main\n") == RefUpdate(A, B, "refs/heads/main")
    assert parse_sha(f" {C}\n") == C
    for bad in (C.upper(), C[:12], "main", ""):
        with pytest.raises(DeployInputError, match="full commit id"):
            parse_sha(bad)


def test_release_names_sort_by_time_and_carry_the_short_sha() -> None:
    at = calendar.timegm((2026, 11, 22, 14, 5, 9, 0, 0, 0)) + 0.9
    assert release_name(at, "1a2b3c4d" + "0" * 32) == "20261122T140509Z-1a2b3c4d"
    names = [release_name(time.time() + i * 61, A) for i in range(3)]
    assert names == sorted(names) and all(is_release(n) for n in names)
    assert not is_release("current") and not is_release("20261122T140509Z-1A2B3C4D")


def test_pruning_keeps_the_newest_and_never_the_current_one() -> None:
    names = [f"2026010{d}T000000Z-0000000{d}" for d in range(1, 8)]
    assert to_prune(names, names[-1], 5) == names[:2]
    assert to_prune(names, names[-1], 7) == []
    # After a rollback to the oldest, it stays although it is beyond the kept count.
    assert to_prune(names, names[0], 2) == names[1:5]
    assert to_prune(names, "", 1) == names[:-1]


def test_rollback_goes_to_the_newest_older_release() -> None:
    names = ["20260101T000000Z-00000001", "20260102T000000Z-00000002", "20260103T000000Z-00000003"]
    assert previous(names, names[2]) == names[1]
    assert previous(names, names[1]) == names[0]
    assert previous(names, names[0]) is None
    assert previous(names, "") is None


def test_signatures_are_checked_over_the_exact_body() -> None:
    body = b'{"ref": "refs/heads/main"}'
    good = signature("s3cret", body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert verify("s3cret", body, good)
    assert verify("s3cret", body, f" {good}\n")
    assert not verify("s3cret", body + b" ", good)
    assert not verify("other", body, good)
    assert not verify("s3cret", body, good.replace("sha256=", "sha1="))
    assert not verify("s3cret", body, None)
    assert not verify("s3cret", body, "")
    assert not verify("", body, signature("", body))  # no secret configured: nothing passes
    assert not verify("s3cret", body, "sha256=\u00e9" + good[8:])


def test_sender_networks() -> None:
    assert sender_allowed("203.0.113.9", ())
    allowed = networks(["192.30.252.0/22", "2a0a:a440::/29"])
    assert sender_allowed("192.30.253.1", allowed)
    assert sender_allowed("::ffff:192.30.253.1", allowed)
    assert sender_allowed("2a0a:a440::1", allowed)
    assert not sender_allowed("127.0.0.1", allowed)
    assert not sender_allowed(None, allowed)
    assert not sender_allowed("not an address", allowed)


def test_push_events_are_parsed_or_refused() -> None:
    event = {"ref": "refs/heads/main", "before": A, "after": B, "repository": {"full_name": "shop/app"}}
    push = parse_push(json.dumps(event).encode())
    assert (push.ref, push.before, push.after, push.repository) == ("refs/heads/main", A, B, "shop/app")
    assert not push.forced and parse_push(json.dumps({**event, "forced": True}).encode()).forced
    for body, why in (
        (json.dumps({**event, "forced": "yes"}).encode(), "'forced'"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({**event, "after": 7}).encode(), "'after'"),
        (json.dumps({"before": A, "after": B}).encode(), "'ref'"),
    ):
        with pytest.raises(DeployInputError, match=why):
            parse_push(body)


def test_a_webhook_push_only_moves_an_environment_forward() -> None:
    # Nothing deployed yet, or a commit the deployed one is not ahead of: deploy.
    assert stale_push(None, A, True, forced=False, allow_force=False) is None
    assert stale_push(A, B, False, forced=False, allow_force=False) is None
    # The deployed commit again, or one of its ancestors: a replay or a stale push.
    same = stale_push(A, A, True, forced=False, allow_force=False)
    assert same == f"{A[:8]} is the deployed commit: a replayed or stale push; nothing deployed"
    older = stale_push(A, B, True, forced=False, allow_force=False)
    assert older == f"{B[:8]} is older than the deployed {A[:8]}: a replayed or stale push; nothing deployed"
    # A force push goes back only when the settings allow it.
    forced = stale_push(A, B, True, forced=True, allow_force=False)
    assert forced is not None and "webhook_allow_force is off" in forced
    assert stale_push(A, B, True, forced=True, allow_force=True) is None
    assert stale_push(A, B, True, forced=False, allow_force=True) is not None


def record(sid: str, pool: str, url: str, state: str = "active") -> ServerRecord:
    return ServerRecord.decode(
        json.dumps(
            {"id": sid, "pool": pool, "provider": "local", "state": state, "created_at": 1.0}
            | {"updated_at": 1.0, "owner": "t", "ref": f"/srv/{sid}", "url": url}
        )
    )


def test_the_plan_deploys_managed_active_servers_and_skips_hand_added_ones() -> None:
    records = [
        record("sy-prod-b", "production", "http://127.0.0.1:9002"),
        record("sy-prod-a", "production", "http://127.0.0.1:9001"),
        record("sy-prod-new", "production", "http://127.0.0.1:9003", state="provisioning"),
        record("sy-prod-out", "production", "http://127.0.0.1:9004"),
        record("sy-stag-a", "staging", "http://127.0.0.1:9101"),
    ]
    pool = ("http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9999")
    p = plan("production", records, pool, lambda r: {"switchyard_app_dir": r.ref})
    assert [(t.host, t.in_pool) for t in p.targets] == [
        ("sy-prod-a", True),
        ("sy-prod-b", True),
        ("sy-prod-out", False),  # deployed to, but not put into the pool it was taken out of
    ]
    assert p.unmanaged == ("http://127.0.0.1:9999",)
    # With the ports as the record has them: the app's from its URL, the side port free.
    assert p.targets[0].host_vars == {
        "switchyard_app_dir": "/srv/sy-prod-a",
        "switchyard_app_port": 9001,
        "switchyard_app_check_port": 9002,
    }
    assert p.sole_backend(p.targets[0], ["http://127.0.0.1:9001"])
    assert not p.sole_backend(p.targets[0], pool)

    inventory = as_ansible([p])
    assert inventory["production"] == {
        "hosts": ["sy-prod-a", "sy-prod-b", "sy-prod-out"],
        "vars": {"switchyard_app_pool": "production"},
    }
    assert inventory["staging"] == {"hosts": [], "vars": {"switchyard_app_pool": "staging"}}
    hostvars = inventory["_meta"]["hostvars"]  # type: ignore[index]
    assert hostvars["sy-prod-b"]["switchyard_backend_url"] == "http://127.0.0.1:9002"
    assert hostvars["sy-prod-out"]["switchyard_in_pool"] is False


def test_the_failed_task_is_read_from_ansible_s_message() -> None:
    single = ConfigureError("production.yml on h failed at task 'app | build the release': boom")
    double = ConfigureError("""production.yml on h failed at task "app | copy the app's files": boom""")
    assert failed_task(single) == "app | build the release"
    assert failed_task(double) == "app | copy the app's files"
    assert failed_task(ConfigureError("production.yml on h timed out")) == "?"
