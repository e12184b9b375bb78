"""The redis role with a replica and a Sentinel, rendered by ansible-runner into a
temporary root; the rendered Sentinel configuration is then run by a real
redis-server --sentinel, which must accept it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.playbooks import files_containing, output, render, secret_file
from tests.support.ports import free_port
from tests.support.procs import stop_process
from tests.support.wait import wait_until


@pytest.mark.slow
@pytest.mark.timeout(180)  # two ansible-runner runs
def test_a_replica_with_a_sentinel(tmp_path: Path) -> None:
    secret, password_file = secret_file(tmp_path / "secret", "redis-password")
    root = tmp_path / "root"
    done = render(
        "redis.yml", "redis", tmp_path / "run", root,
        switchyard_redis_bind="10.0.0.6", switchyard_redis_replica_of="10.0.0.5",
        switchyard_redis_sentinel=True, switchyard_redis_sentinel_down_after_ms=3000,
        switchyard_redis_password_file=str(password_file),
    )  # fmt: skip
    assert done.status == "successful", output(done)
    conf = (root / "etc/redis/redis.conf").read_text().splitlines()
    for line in ("replicaof 10.0.0.5 6379", f"masterauth {secret}", "replica-announce-ip 10.0.0.6"):
        assert line in conf
    sentinel_file = root / "etc/redis/switchyard-sentinel.conf"
    sentinel = sentinel_file.read_text().splitlines()
    for line in (
        "bind 127.0.0.1 10.0.0.6",
        "port 26379",
        f"requirepass {secret}",
        "sentinel monitor switchyard 10.0.0.5 6379 2",
        f"sentinel auth-pass switchyard {secret}",
        "sentinel down-after-milliseconds switchyard 3000",
        "sentinel failover-timeout switchyard 60000",
    ):
        assert line in sentinel
    assert sentinel_file.stat().st_mode & 0o777 == 0o640
    unit = (root / "etc/systemd/system/switchyard-sentinel.service").read_text()
    assert "ExecStart=/usr/bin/redis-server /etc/redis/switchyard-sentinel.conf --sentinel\n" in unit
    assert "User=redis\n" in unit and "Restart=always\n" in unit
    assert sorted(files_containing(tmp_path, secret)) == sorted(
        [root / "etc/redis/redis.conf", sentinel_file, password_file]
    )
    assert secret not in output(done)

    # The Sentinel owns its file once it runs: a second run leaves what it wrote.
    sentinel_file.write_text(sentinel_file.read_text() + "sentinel known-replica switchyard 10.0.0.7 6379\n")
    again = render(
        "redis.yml", "redis", tmp_path / "run2", root,
        switchyard_redis_bind="10.0.0.6", switchyard_redis_replica_of="10.0.0.5",
        switchyard_redis_sentinel=True, switchyard_redis_password_file=str(password_file),
    )  # fmt: skip
    assert again.status == "successful", output(again)
    assert "known-replica switchyard 10.0.0.7" in sentinel_file.read_text()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_master_has_no_replicaof_and_its_sentinel_config_runs(tmp_path: Path) -> None:
    _, password_file = secret_file(tmp_path / "secret", "redis-password")
    root = tmp_path / "root"
    done = render(
        "redis.yml", "redis", tmp_path / "run", root,
        switchyard_redis_bind="10.0.0.5", switchyard_redis_sentinel=True,
        switchyard_redis_password_file=str(password_file),
    )  # fmt: skip
    assert done.status == "successful", output(done)
    assert not any(
        line.startswith("replicaof") for line in (root / "etc/redis/redis.conf").read_text().splitlines()
    )
    rendered = (root / "etc/redis/switchyard-sentinel.conf").read_text()
    assert "sentinel monitor switchyard 10.0.0.5 6379 2\n" in rendered
    # redis-server itself parses it (on loopback and a free port: 10.0.0.5 is not ours).
    port = free_port()
    local = tmp_path / "sentinel.conf"
    local.write_text(
        rendered.replace("bind 127.0.0.1 10.0.0.5", "bind 127.0.0.1")
        .replace("port 26379", f"port {port}")
        .replace("dir /var/lib/redis", f"dir {tmp_path}")
        .replace("sentinel announce-ip 10.0.0.5", "")
    )
    log = (tmp_path / "sentinel.log").open("wb")
    proc = subprocess.Popen(["redis-server", str(local), "--sentinel"], stdout=log, stderr=subprocess.STDOUT)
    try:
        text = (tmp_path / "sentinel.log").read_text
        wait_until(lambda: "Sentinel ID is" in text() or proc.poll() is not None, 10, "the Sentinel to start")
        assert proc.poll() is None, (tmp_path / "sentinel.log").read_text()
        assert "+monitor master switchyard 10.0.0.5 6379 quorum 2" in (tmp_path / "sentinel.log").read_text()
    finally:
        stop_process(proc)
        log.close()


@pytest.mark.slow
def test_a_replica_of_itself_is_refused(tmp_path: Path) -> None:
    _, password_file = secret_file(tmp_path / "secret", "redis-password")
    done = render(
        "redis.yml", "redis", tmp_path / "run", tmp_path / "root",
        switchyard_redis_bind="10.0.0.5", switchyard_redis_replica_of="10.0.0.5",
        switchyard_redis_password_file=str(password_file),
    )  # fmt: skip
    assert done.status == "failed"
    assert "replica_of=10.0.0.5 must be empty or the master's private address" in output(done)
    assert not (tmp_path / "root").exists()
