"""A single-node SLURM of this machine, in a temporary folder, for the ``slurm`` tests.

Debian's ``slurm-wlm`` and ``munge`` (``apt-get install slurm-wlm munge``), nothing
installed or configured system-wide: its own munge key and socket, its own
``slurm.conf`` (this host's name, CPU count and memory, free ports, state,
spool and log folders), ``munged``, ``slurmctld`` and ``slurmd`` run as root and
stopped by their PIDs.  Clients (``sbatch``, ``squeue``, dask-jobqueue) find it
through ``SLURM_CONF`` in :attr:`SingleNodeSlurm.env`.

Two settings differ from a site's defaults to keep the tests short:
``cred_expire=5`` (a requeued job may start again after 5 s instead of 120 s) and
``KillWait=5`` (seconds between a job's SIGTERM and its SIGKILL).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

INSTALL = "apt-get install slurm-wlm munge"
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")


def missing_reason() -> str | None:
    """Why this machine cannot start the cluster (None: it can)."""
    missing = [p for p in PROGRAMS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if missing:
        return f"SLURM tests need {', '.join(missing)}: {INSTALL}"
    if os.geteuid() != 0:
        return "SLURM tests start slurmctld and slurmd as root; run them as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmError(AssertionError):
    pass


class SingleNodeSlurm:
    """``start()`` it, submit jobs through :meth:`sbatch`, ``stop()`` it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._pid_files = {"slurmd": self.root / "slurmd.pid", "slurmctld": self.root / "slurmctld.pid",
                           "munged": self.root / "munge" / "munged.pid"}

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 60.0) -> SingleNodeSlurm:
        for sub in ("state", "spool", "log", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        munge = self.root / "munge"
        munge.chmod(0o755)  # clients of the socket need to reach it
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.socket = munge / "munge.socket"
        self._run([_program("munged"), "--force", f"--key-file={key}", f"--socket={self.socket}",
                   f"--pid-file={self._pid_files['munged']}", f"--log-file={munge / 'munged.log'}",
                   f"--seed-file={munge / 'munged.seed'}"])
        cpus, memory = self._hardware()
        self.cpus = cpus
        self.conf.write_text(self._config(cpus, memory))
        self._run([_program("slurmctld"), "-f", str(self.conf)])
        self._run([_program("slurmd"), "-f", str(self.conf)])
        self.wait_node("idle", timeout)
        return self

    def stop(self) -> None:
        try:
            jobs = self.squeue("%A").split()
            if jobs:
                subprocess.run(["scancel", *jobs], env=self.env, capture_output=True, timeout=30, check=False)
        except Exception:  # noqa: BLE001 - the daemons are stopped below in any case
            pass
        for name in ("slurmd", "slurmctld", "munged"):
            self._kill(name)

    def _kill(self, name: str, timeout: float = 20.0) -> None:
        path = self._pid_files[name]
        try:
            pid = int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    def _hardware(self) -> tuple[int, int]:
        """(CPUs, memory in MB) as slurmd itself sees this machine."""
        out = subprocess.run([_program("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
        cpus = int(re.search(r"CPUs=(\d+)", out).group(1))
        memory = int(re.search(r"RealMemory=(\d+)", out).group(1))
        return cpus, memory

    def _config(self, cpus: int, memory: int) -> str:
        r = self.root
        return "\n".join([
            "ClusterName=h5stream-test",
            f"SlurmctldHost={self.node}",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.socket},cred_expire=5",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={self._pid_files['slurmctld']}",
            f"SlurmdPidFile={self._pid_files['slurmd']}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "ReturnToService=2",
            "JobRequeue=1",
            "KillWait=5",
            "MinJobAge=3600",
            "SchedulerParameters=sched_interval=1,bf_interval=1",
            f"NodeName={self.node} CPUs={cpus} RealMemory={memory} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise SlurmError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}\n{self.logs()}")

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*.log")) + [self.root / "munge" / "munged.log"]:
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    # ------------------------------------------------------------------ clients
    def command(self, *argv: str, check: bool = True) -> str:
        done = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise SlurmError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def sbatch(self, *argv: str, cwd: Path | None = None, env: dict | None = None) -> str:
        """Submit; returns the job id."""
        done = subprocess.run(["sbatch", "--parsable", *argv], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
        if done.returncode != 0:
            raise SlurmError(f"sbatch {' '.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout.strip().split(";")[0]

    def squeue(self, fmt: str = "%i %T") -> str:
        return self.command("squeue", "-h", "-o", fmt)

    def node_state(self) -> str:
        return self.command("sinfo", "-h", "-N", "-o", "%T").strip()

    def wait_node(self, state: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            seen = self.command("sinfo", "-h", "-N", "-o", "%T", check=False).strip()
            if seen == state:
                return
            time.sleep(0.2)
        raise SlurmError(f"node {self.node} not {state} after {timeout:.0f} s (it is {seen!r})\n{self.logs()}")

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (``JobState``, ``ExitCode``, ``Restarts``...)."""
        text = self.command("scontrol", "-o", "show", "job", job_id)
        fields = {}
        for line in text.splitlines():
            for key, value in re.findall(r"(\w+)=(\S*)", line):
                fields.setdefault(key, value)
        return fields

    def array_tasks(self, job_id: str) -> dict[str, dict[str, str]]:
        """Task id -> fields of each task of array job ``job_id``."""
        text = self.command("scontrol", "-o", "show", "job", job_id)
        tasks = {}
        for line in text.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            tasks[fields.get("ArrayTaskId", "")] = fields
        return tasks

    def wait_done(self, job_id: str, timeout: float = 300.0) -> dict[str, dict[str, str]]:
        """Wait until no task of ``job_id`` is pending, running, requeued or completing; their fields."""
        deadline = time.monotonic() + timeout
        tasks: dict[str, dict[str, str]] = {}
        while time.monotonic() < deadline:
            tasks = self.array_tasks(job_id)
            if all(t.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
                   for t in tasks.values()):
                return tasks
            time.sleep(0.5)
        raise SlurmError(f"job {job_id} not done after {timeout:.0f} s: "
                         f"{ {k: v.get('JobState') for k, v in tasks.items()} }\n{self.logs()}")
