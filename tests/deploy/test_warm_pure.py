"""The warm switch's decisions, with plain values: which port the next release takes,
which pool entries a deploy, a held switch and a rollback move, and what each server
stops once the proxies have followed."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from provisioner.deploy.inventory import Target, at_port, plan, with_ports
from provisioner.deploy.warm import deploy_moves, held_moves, rollback_moves, settle_vars, stop_warm
from provisioner.errors import DeployError
from state import ServerRecord
from state.switches import Move

DROPLET: Mapping[str, object] = {"switchyard_app_port": 8000}  # a droplet's: the role's side port is 8001


def ports(vars_: Mapping[str, object], url: str, warm: str = "") -> tuple[object, object]:
    found = with_ports(vars_, url, warm)
    return found["switchyard_app_port"], found["switchyard_app_check_port"]


def test_a_droplet_takes_turns_between_its_two_ports() -> None:
    assert ports(DROPLET, "http://10.0.0.5:8000") == (8000, 8001)
    assert ports(DROPLET, "http://10.0.0.5:8001", "http://10.0.0.5:8000") == (8001, 8000)
    assert ports(DROPLET, "http://10.0.0.5:8000", "http://10.0.0.5:8001") == (8000, 8001)
    # Nothing warm: the free one of the two.
    assert ports(DROPLET, "http://10.0.0.5:8001") == (8001, 8000)


def test_a_side_port_of_the_hosts_own_is_taken_unless_in_use() -> None:
    local: Mapping[str, object] = {"switchyard_app_port": 9000, "switchyard_app_check_port": 41234}
    assert ports(local, "http://127.0.0.1:9000") == (9000, 41234)
    assert ports(local, "http://127.0.0.1:41000", "http://127.0.0.1:9000") == (41000, 41234)
    # The host's side port is the warm one's: the app's first port is free.
    assert ports(local, "http://127.0.0.1:41000", "http://127.0.0.1:41234") == (41000, 9000)


def test_the_side_port_is_never_the_live_one() -> None:
    for live in (8000, 8001):
        for warm in ("", "http://h:8000", "http://h:8001"):
            port, side = ports(DROPLET, f"http://h:{live}", warm)
            assert port == live and side != live


def record(id_: str, url: str, warm: str = "") -> ServerRecord:
    return ServerRecord(id_, "production", "local", "active", 1.0, 1.0, "t", url=url, warm_url=warm)


def test_the_plan_carries_the_warm_url_and_the_ports() -> None:
    p = plan(
        "production",
        [record("a", "http://h:8001", "http://h:8000")],
        ["http://h:8001"],
        lambda r: DROPLET,
    )
    (t,) = p.targets
    assert t.warm_url == "http://h:8000" and t.in_pool
    assert (t.host_vars["switchyard_app_port"], t.host_vars["switchyard_app_check_port"]) == (8001, 8000)


def target(host: str, url: str, warm: str = "", side: int = 8001) -> Target:
    return Target(host, url, True, {"switchyard_app_check_port": side}, warm)


def test_a_deploy_moves_every_server_to_its_side_port_and_keeps_the_live_one_warm() -> None:
    moves = deploy_moves([target("a", "http://h:8000"), target("b", "http://[::1]:8000")])
    assert moves == (
        Move("a", "http://h:8000", "http://h:8001", "http://h:8000"),
        Move("b", "http://[::1]:8000", "http://[::1]:8001", "http://[::1]:8000"),
    )


def test_a_rollback_moves_back_to_the_warm_release_or_restarts() -> None:
    warm = [target("a", "http://h:8001", "http://h:8000"), target("b", "http://g:8001", "http://g:8000")]
    assert rollback_moves(warm) == (
        Move("a", "http://h:8001", "http://h:8000"),
        Move("b", "http://g:8001", "http://g:8000"),
    )
    assert rollback_moves([*warm, target("c", "http://k:8000")]) is None  # one has none warm
    assert rollback_moves([]) is None


def test_what_a_server_stops_once_settled() -> None:
    # Deploy on two ports: the new release took the warm one's port; nothing else stops.
    before = target("a", "http://h:8001", "http://h:8000", side=8000)
    move = Move("a", "http://h:8001", "http://h:8000", "http://h:8001")
    assert settle_vars(move, before, rollback=False) == {
        "switchyard_app_step": "settle",
        "switchyard_app_port": 8000,
        "switchyard_app_check_port": 8001,
        "switchyard_app_stop_ports": [],
        "switchyard_app_drop_stopped": False,
    }
    # Deploy to a third port (a local server's fresh side port): the old warm one stops.
    before = target("a", "http://h:41000", "http://h:9000", side=42000)
    move = Move("a", "http://h:41000", "http://h:42000", "http://h:41000")
    assert settle_vars(move, before, rollback=False)["switchyard_app_stop_ports"] == [9000]
    # A rollback stops the release it left, and removes it.
    back = settle_vars(Move("a", "http://h:8001", "http://h:8000"), before, rollback=True)
    assert back["switchyard_app_stop_ports"] == [8001] and back["switchyard_app_drop_stopped"] is True
    assert stop_warm([target("a", "http://h:8001", "http://h:8000"), target("b", "http://g:8000")]) == {
        "a": [8000]
    }


def test_a_held_switch_moves_to_the_port_its_release_runs_on() -> None:
    targets = [target("a", "http://h:8000"), target("b", "http://g:8000")]
    reports = {
        "a": {"ports": {"8000": "r1", "8001": "r2"}},
        "b": {"ports": {"8001": "r2", "8000": "r1"}},
    }
    assert held_moves(targets, reports, "r2") == (
        Move("a", "http://h:8000", "http://h:8001", "http://h:8000"),
        Move("b", "http://g:8000", "http://g:8001", "http://g:8000"),
    )
    with pytest.raises(DeployError, match="b: held release r2 is not running there"):
        held_moves(targets, {**reports, "b": {"ports": {"8000": "r1"}}}, "r2")


def test_at_port_keeps_the_scheme_and_host() -> None:
    assert at_port("https://example.test:443", 8443) == "https://example.test:8443"
    assert at_port("http://[2001:db8::1]:8000", 8001) == "http://[2001:db8::1]:8001"
