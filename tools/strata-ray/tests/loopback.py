"""A Ray cluster on loopback for tests and benchmarks, and bounded subprocess runs.

Every process a `Cluster` starts is ended by its id: each node is `ray start --block` in a
process group of its own, and `stop` signals those groups (and any Ray process that left
them but names the cluster's temp dir).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's bin: strata-ray, strata, ray

# Every node and driver of a loopback cluster, in this process and its children, without Ray's
# token authentication: a local Ray started once before leaves ~/.ray/auth_token behind, and
# then a head reads it while a worker joining by address does not, and is refused. The nodes
# listen on 127.0.0.1 only.
os.environ["RAY_AUTH_MODE"] = "disabled"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list, timeout: int, env: dict | None = None, show: bool = True) -> subprocess.CompletedProcess:
    """Runs `cmd` (bounded in time), echoing its output indented; a timeout is a failure."""
    started = time.monotonic()
    try:
        done = subprocess.run([str(c) for c in cmd], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        done = subprocess.CompletedProcess(e.cmd, 124, out, "")
    output = done.stdout + done.stderr
    if show:
        print(f"$ {' '.join(Path(str(c)).name if i == 0 else str(c) for i, c in enumerate(cmd))}  ({time.monotonic() - started:.1f} s, exit {done.returncode})")
        for line in output.strip().splitlines():
            print(f"    {line}")
    done.output = output
    return done


class Cluster:
    """A head and `workers` worker nodes on 127.0.0.1, each `ray start --block` in its own
    process group, so that stopping it ends every process it started by id."""

    def __init__(self, tmp: Path, workers: int = 1, cpus: int = 2):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_FAULT")} | {"RAY_USAGE_STATS_ENABLED": "0"}
        self.temp = tmp / "ray"  # short: Ray's unix socket paths live under it
        self.logs = tmp / "nodes"
        self.logs.mkdir()
        self.nodes: list[subprocess.Popen] = []
        self.workers, self.cpus = workers, cpus

    def start_node(self, name: str, args: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "w")
        cmd = [str(BIN / "ray"), "start", "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus), "--temp-dir", str(self.temp), "--block", *args]
        self.nodes.append(subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def alive_nodes(self) -> int:
        probe = "import ray; ray.init(address=%r, logging_level='ERROR'); print('NODES', sum(n['Alive'] for n in ray.nodes()))" % self.address
        done = run([sys.executable, "-c", probe], timeout=60, env=self.env, show=False)
        found = re.search(r"NODES (\d+)", done.output)
        return int(found.group(1)) if found else 0

    def start(self, timeout: float = 180) -> bool:
        started = time.monotonic()
        self.start_node("head", ["--head", "--port", str(self.port), "--include-dashboard=false", "--disable-usage-stats"])
        for i in range(self.workers):
            self.start_node(f"worker{i}", ["--address", self.address])
        while time.monotonic() - started < timeout:
            if any(p.poll() is not None for p in self.nodes):
                break
            if self.alive_nodes() == len(self.nodes):
                print(f"cluster: {len(self.nodes)} nodes up at {self.address} in {time.monotonic() - started:.1f} s", flush=True)
                return True
            time.sleep(2)
        for log in sorted(self.logs.iterdir()):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        return False

    def stop(self) -> list[int]:
        """SIGTERM to each node's process group, SIGKILL to whatever is left after 20 s;
        returns the processes still alive after that (none, when all went well)."""
        groups = [p.pid for p in self.nodes]  # each Popen leads its own group (start_new_session)
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            for pgid in groups:
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.leftovers(groups):
                time.sleep(0.5)
            if not self.leftovers(groups):
                break
        for p in self.nodes:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        return self.leftovers(groups)

    def holds_open(self, proc: Path) -> bool:
        """Whether the process has a file under our temp dir open."""
        try:
            return any(str(self.temp) in os.readlink(fd) for fd in (proc / "fd").iterdir())
        except OSError:
            return False

    def leftovers(self, groups: list[int]) -> list[int]:
        """Live processes in our nodes' groups, or whose command line or open files name our
        temp dir (a Ray process that left the group: its workers lead groups of their own and
        rename themselves `ray::IDLE`, but keep their logs there open), zombies excluded."""
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
                state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, ValueError):
                continue
            if state != "Z" and (int(pgrp) in groups or str(self.temp) in cmdline or self.holds_open(proc)):
                found.append(int(proc.name))
        for pid in found:  # a straggler outside the groups: ours by its temp dir, ended by id
            try:
                if os.getpgid(pid) not in groups:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return found
