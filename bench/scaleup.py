"""Scale-up time split by step, without and with a prepared image, in one run, on fresh-OS
droplets (root and systemd-nspawn; tests/freshos builds the cached root on first use):

    .venv/bin/python -m bench.scaleup                # one server each way
    .venv/bin/python -m bench.scaleup --rounds 2 --json /tmp/scaleup.json

`python -m provisioner image build --pool production` runs first. Then each round runs
`python -m provisioner up --pool production` (a scale request by hand) against the
stand-in DigitalOcean API twice, back to back so both see the same load: once with the
image's record removed from Redis (the base image, the full configure), once with it
back (from the image); each server is then taken `down` again. It prints the
provisioner's own step timings (create, active, reachable: the provider's boot;
configure, health, register: what this side adds, health and register counted from the
run's start, since a server serves at its first healthy answer while its run goes on:
provisioner/scale/serving.py), when it served and when its run ended after the boot,
the CLI's wall time, how many Ansible tasks ran and were skipped, and Ansible's seconds
per tasks file. A benchmark, not a test: it asserts nothing but that the commands worked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from state import KeySpace, connect
from state.images import ImageStore
from tests.freshos.conftest import TOKEN, Booted
from tests.freshos.harness import make_key
from tests.freshos.rootfs import ensure_base_root, unavailable
from tests.freshos.scaleup import World, outcomes, world
from tests.provisioner.fake_do import FakeDigitalOcean

BOOT = ("create", "active", "reachable")
OURS = ("configure", "health", "register")


@dataclass
class Run:
    how: str  # base or image
    server: str
    steps_s: dict[str, float]
    boot_s: float
    serving_s: float  # after the boot: in its pool (health and register, from the run's start)
    run_s: float  # after the boot: its Ansible run ended
    cli_wall_s: float
    tasks_ran: int
    tasks_skipped: int
    files_s: dict[str, float]  # Ansible's task seconds per tasks file
    tasks: list[tuple[str, str, str, float]]  # every task run: name, file, outcome, seconds


async def _up(w: World, how: str) -> Run:
    started = time.monotonic()
    code, out, err = await w.provisioner("up", "--pool", "production")
    wall_s = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"provisioner up ({how}) failed ({code}):\n{out}\n{err[-4000:]}")
    server_id = out.strip().split("\t")[0]
    timings = dict((await w.record(server_id)).timings)
    done = w.last_run()  # the run's artifacts, read once
    tasks = outcomes(done)
    ran = sum(1 for v in tasks.values() if v in ("ok", "changed"))
    files: dict[str, float] = {}
    for task in done:
        files[task.file] = files.get(task.file, 0.0) + task.duration_s
    return Run(
        how=how,
        server=server_id,
        steps_s=timings,
        boot_s=sum(timings.get(k, 0.0) for k in BOOT),
        serving_s=timings.get("health", 0.0) + timings.get("register", 0.0),
        run_s=timings.get("configure", 0.0),
        cli_wall_s=wall_s,
        tasks_ran=ran,
        tasks_skipped=sum(1 for v in tasks.values() if v == "skipped"),
        files_s=files,
        tasks=[(t.name, t.file, t.outcome, t.duration_s) for t in done],
    )


async def _bench(
    rounds: int, home: Path, booted: Booted, hows: tuple[str, ...]
) -> tuple[list[Run], dict[str, object]]:
    fake = FakeDigitalOcean(token=TOKEN, booter=booted)
    await fake.start()
    runs: list[Run] = []
    build: dict[str, object] = {}
    try:
        async with world(home, booted, fake) as w:
            started = time.monotonic()
            code, out, err = await w.provisioner("image", "build", "--pool", "production")
            if code != 0:
                raise SystemExit(f"image build failed ({code}):\n{out}\n{err[-4000:]}")
            _, image_id, name, steps = out.strip().split("\t")
            build = {"image_id": image_id, "name": name, "steps": steps, "wall_s": time.monotonic() - started}
            client = connect(w.redis.url)
            images = ImageStore(client, KeySpace(), actor="bench")
            try:
                record = await images.get("production")
                assert record is not None
                for _ in range(rounds):
                    for how in hows:
                        await (images.remove("production") if how == "base" else images.put(record))
                        runs.append(await _up(w, how))
                        await w.provisioner("down", runs[-1].server)
                await images.put(record)
            finally:
                await client.aclose()
            await w.provisioner("image", "forget", "--pool", "production")
    finally:
        await fake.stop()  # powers off and removes every droplet it booted
    return runs, build


def _report(rounds: int, runs: list[Run], build: dict[str, object], *, tasks: bool) -> str:
    rows = [*BOOT, *OURS]

    def median(how: str, pick: str, step: str = "") -> float:
        chosen = [r for r in runs if r.how == how]
        values = [r.steps_s.get(step, 0.0) if step else float(getattr(r, pick)) for r in chosen]
        return statistics.median(values) if values else float("nan")

    lines = [f"scale-up, production, {rounds} round(s) each way (median s)", ""]
    lines.append(f"  {'step':<28}{'base image':>12}{'prepared image':>16}")
    for step in rows:
        lines.append(f"  {step:<28}{median('base', '', step):>12.2f}{median('image', '', step):>16.2f}")
    for label, key in (
        ("boot (create..reachable)", "boot_s"),
        ("serving after boot", "serving_s"),
        ("run ends after boot", "run_s"),
        ("CLI wall time", "cli_wall_s"),
        ("Ansible tasks run", "tasks_ran"),
        ("Ansible tasks skipped", "tasks_skipped"),
    ):
        lines.append(f"  {label:<28}{median('base', key):>12.2f}{median('image', key):>16.2f}")
    files = sorted({f for r in runs for f in r.files_s})
    lines += ["", "  Ansible seconds per tasks file"]
    for f in files:
        base = statistics.median([r.files_s.get(f, 0.0) for r in runs if r.how == "base"] or [0.0])
        image = statistics.median([r.files_s.get(f, 0.0) for r in runs if r.how == "image"] or [0.0])
        lines.append(f"  {f:<40}{base:>8.2f}{image:>16.2f}")
    lines += ["", f"  image build: {build.get('wall_s', 0.0):.1f} s ({build.get('steps', '')})"]
    if tasks:
        for run in runs[-2:]:
            lines += ["", f"  tasks of the last {run.how} run (s)"]
            lines += [f"  {sec:>6.2f}  {o:<8} {n} ({f})" for n, f, o, sec in run.tasks if o != "skipped"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleup", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="servers added each way (default 1)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--only", choices=["base", "image"], help="one way only (to measure a change to that one)"
    )
    parser.add_argument("--tasks", action="store_true", help="also list each task of the last runs")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds: 1 or more")
    reason = unavailable()
    if reason is not None:
        print(f"bench.scaleup: {reason}", file=sys.stderr)
        return 1
    ensure_base_root()
    with tempfile.TemporaryDirectory(prefix="sy-scaleup-") as home:
        booted = Booted(Path(home) / "droplets", make_key(Path(home)))
        try:
            hows = (args.only,) if args.only else ("base", "image")
            runs, build = asyncio.run(_bench(args.rounds, Path(home), booted, hows))
        finally:
            booted.close()
    print(_report(args.rounds, runs, build, tasks=args.tasks))
    if args.json:
        raw = {"rounds": args.rounds, "image_build": build, "runs": [asdict(r) for r in runs]}
        args.json.write_text(json.dumps(raw, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
