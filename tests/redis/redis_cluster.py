"""A throwaway Redis Cluster on 127.0.0.1 for the tests: ``redis-server --cluster-enabled yes``
processes on free ports (and free bus ports, +10000), each in its own temp dir, joined with
``redis-cli --cluster create ... --cluster-yes``. Every wait is bounded; ``stop()`` kills what
was started and removes the dirs (the fixture calls it whatever happens)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import hiredis

from fastsio.redis._connection import encode_command

START_TIMEOUT = 20.0
NODE_TIMEOUT_MS = 1000  # cluster-node-timeout: a failover takes about 2x this


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int) -> list[int]:
    """Ports P with P and P + 10000 (the cluster bus) free."""
    ports: list[int] = []
    rng = random.Random()
    for _ in range(2000):
        port = rng.randrange(20000, 40000)
        if port in ports or port + 10000 in ports:
            continue
        if _free(port) and _free(port + 10000):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError("no free ports for a Redis Cluster")


def command(port: int, *args: str, timeout: float = 5.0) -> Any:
    """One command on a fresh connection; the reply as hiredis parses it (str for text)."""
    reader = hiredis.Reader(encoding="utf-8", errors="replace")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(encode_command(args))
        while True:
            reply = reader.gets()
            if reply is not False:
                return reply
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"node {port} closed the connection")
            reader.feed(data)


class LocalRedisCluster:
    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.masters = masters
        self.replicas = replicas
        self.ports: list[int] = []
        self.procs: dict[int, subprocess.Popen] = {}
        self.dirs: dict[int, Path] = {}
        self.root = Path(tempfile.mkdtemp(prefix="fastsio-redis-cluster-"))

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> LocalRedisCluster:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise RuntimeError("redis-server / redis-cli are not installed")
        count = self.masters * (1 + self.replicas)
        self.ports = free_cluster_ports(count)
        for port in self.ports:
            self.start_node(port)
        for port in self.ports:
            self.wait(lambda port=port: command(port, "PING") == "PONG", f"node {port} up")
        create = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout}{create.stderr}")
        self.wait_ok()
        if self.replicas:
            self.wait(self._replicas_synced, "the replicas to sync")
        return self

    def _replicas_synced(self) -> bool:
        for port in self.running():
            info = str(command(port, "INFO", "replication"))
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
        return True

    def start_node(self, port: int) -> None:
        directory = self.dirs.setdefault(port, self.root / str(port))
        directory.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--repl-diskless-sync-delay",
                "0",
                # a replica takes over whatever the age of its data (the tests kill masters)
                "--cluster-replica-validity-factor",
                "0",
                "--logfile",
                str(directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_ok(self, timeout: float = START_TIMEOUT) -> None:
        """Until every running node says cluster_state:ok and agrees on the slot owners."""

        def ok() -> bool:
            maps = set()
            for port, proc in self.procs.items():
                if proc.poll() is not None:
                    continue
                if "cluster_state:ok" not in str(command(port, "CLUSTER", "INFO")):
                    return False
                maps.add(self.slot_owners(port))
            return len(maps) == 1

        self.wait(ok, "cluster_state:ok on every node", timeout)

    def slot_owners(self, port: int) -> tuple:
        """(start, end, master port) of every slot range, as ``port`` sees them."""
        return tuple(
            sorted((int(r[0]), int(r[1]), int(r[2][1])) for r in command(port, "CLUSTER", "SLOTS"))
        )

    def master_of(self, slot: int, port: int | None = None) -> int:
        for start, end, master in self.slot_owners(port or self.running()[0]):
            if start <= slot <= end:
                return master
        raise LookupError(slot)

    def node_id(self, port: int) -> str:
        return command(port, "CLUSTER", "MYID")

    def running(self) -> list[int]:
        return [port for port, proc in self.procs.items() if proc.poll() is None]

    def replicas_of(self, master: int) -> list[int]:
        master_id = self.node_id(master)
        out = []
        for port in self.running():
            if port == master:
                continue
            info = command(port, "CLUSTER", "NODES")
            for line in str(info).splitlines():
                fields = line.split()
                if "myself" in fields[2] and "slave" in fields[2] and fields[3] == master_id:
                    out.append(port)
        return out

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait(timeout=5)

    def wait(self, predicate, what: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate():
                    return
            except (subprocess.TimeoutExpired, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis Cluster: timed out waiting for {what}")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
