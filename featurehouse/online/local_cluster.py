"""A real Redis Cluster on loopback (primaries with replicas, one redis-server process per node), for the
tests and benchmarks that prove featurehouse beyond one Redis: built the way an operator builds one
(slots assigned, nodes met, replicas attached), without redis-cli, and able to lose a primary on demand.

It is not a production deployment tool: a real cluster is the operator's (the docs say which settings
matter). Two settings here are the ones docs/capacity.md recommends for a feature store:
`cluster-node-timeout` (how soon a dead primary is declared failed: the error window of a failover) and
`cluster-require-full-coverage no` (while one shard fails over, the others keep answering).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from featurehouse.errors import FeaturehouseError
from featurehouse.online.embedded import server_binary

SLOTS = 16384


class LocalClusterError(FeaturehouseError):
    """The local cluster did not form (or heal) within its deadline."""


class NodeExited(LocalClusterError):
    """A node's redis-server exited as it started (most often: its port was taken meanwhile)."""


@dataclass
class ClusterNode:
    port: int
    directory: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def client(self, timeout_s: float = 1.0) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self, *args: Any) -> Any:
        """One command on this node alone (not routed by slot)."""
        with self.client() as c:
            return c.execute_command(*args)

    def node_id(self) -> str:
        return self.command("CLUSTER", "MYID").decode()

    def role(self) -> str:
        """'master' or 'slave', as the node itself says."""
        return self.command("ROLE")[0].decode()


class LocalRedisCluster:
    """`primaries` shards, each with `replicas` replicas, on free loopback ports (a node also listens on
    its port + 10000, the cluster bus). Use as a context manager; `url` is what featurehouse takes."""

    def __init__(self, directory: str | os.PathLike, primaries: int = 3, replicas: int = 1,
                 node_timeout_ms: int = 1000, full_coverage: bool = False):
        if primaries < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one primary and zero or more replicas per primary")
        self.directory = Path(directory)
        self.primaries_wanted, self.replicas_wanted = primaries, replicas
        self.node_timeout_ms = node_timeout_ms
        self.full_coverage = full_coverage
        self.nodes: list[ClusterNode] = []

    @property
    def url(self) -> str:
        """One node to start from: redis-py learns the others from it (and keeps them as start-up nodes,
        so the client finds the cluster again when this one dies)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def __enter__(self) -> "LocalRedisCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- forming ---------------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0, attempts: int = 3) -> "LocalRedisCluster":
        """Form the cluster; a node that exits at start (its port taken since it was found free) makes
        the whole cluster start again on other ports, up to `attempts` times."""
        for attempt in range(attempts):
            try:
                return self._start(timeout_s)
            except NodeExited:
                self.nodes = []
                if attempt == attempts - 1:
                    raise
        return self

    def _start(self, timeout_s: float) -> "LocalRedisCluster":
        deadline = time.monotonic() + timeout_s
        total = self.primaries_wanted * (1 + self.replicas_wanted)
        try:
            for port in _free_port_pairs(total):
                node = ClusterNode(port, self.directory / str(port))
                node.directory.mkdir(parents=True, exist_ok=True)
                node.process = subprocess.Popen(
                    [server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                     "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms),
                     "--cluster-require-full-coverage", "yes" if self.full_coverage else "no",
                     "--dir", str(node.directory), "--save", "", "--appendonly", "no"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.nodes.append(node)
            for node in self.nodes:
                self._wait_answering(node, deadline)
            primaries = self.nodes[:self.primaries_wanted]
            step = SLOTS // len(primaries)
            for i, node in enumerate(primaries):
                last = SLOTS - 1 if i == len(primaries) - 1 else (i + 1) * step - 1
                with node.client() as c:
                    c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * step, last)
            with primaries[0].client() as c:
                for node in self.nodes[1:]:
                    c.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
            self._until(deadline, "every node to know every other", lambda: all(
                _known_nodes(n) == total for n in self.nodes))
            ids = [n.node_id() for n in primaries]
            for j, node in enumerate(self.nodes[self.primaries_wanted:]):
                with node.client() as c:
                    c.execute_command("CLUSTER", "REPLICATE", ids[j % len(ids)])
            self.wait_healthy(max(0.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until every live node says cluster_state:ok, every slot is served by a live primary, and every
        live replica's link to its primary is up (its copy is in sync)."""
        deadline = time.monotonic() + timeout_s
        self._until(deadline, "the cluster to be healthy", self._healthy)

    def _healthy(self) -> bool:
        live = [n for n in self.nodes if n.alive]
        live_ports = {n.port for n in live}
        for node in live:
            if not node.command("CLUSTER", "INFO").decode().startswith("cluster_state:ok"):
                return False
            if node.role() == "slave" and node.command("INFO", "replication").get("master_link_status") != "up":
                return False
        served = 0
        for start, end, primary, *_ in live[0].command("CLUSTER", "SLOTS"):
            if int(primary[1]) not in live_ports:
                return False
            served += end - start + 1
        return served == SLOTS

    # -- losing a node -----------------------------------------------------------------------------

    def primaries(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.alive and n.role() == "master"]

    def replicas(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.alive and n.role() == "slave"]

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL, as a machine that dies: no goodbye to the cluster, no socket closed politely."""
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(timeout=10)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(timeout=5)

    # -- helpers -----------------------------------------------------------------------------------

    def _wait_answering(self, node: ClusterNode, deadline: float) -> None:
        def answers() -> bool:
            if not node.alive:
                raise NodeExited(f"redis-server on port {node.port} exited at start "
                                 f"(code {node.process.returncode if node.process else None})")
            try:
                with node.client(0.2) as c:
                    return bool(c.ping())
            except redis.ConnectionError:
                return False
        self._until(deadline, f"redis-server on port {node.port} to answer", answers)

    @staticmethod
    def _until(deadline: float, what: str, done) -> None:
        while True:
            try:
                if done():
                    return
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise LocalClusterError(f"timed out waiting for {what}")
            time.sleep(0.02)


def _known_nodes(node: ClusterNode) -> int:
    return len(node.command("CLUSTER", "NODES").decode().strip().splitlines())


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _free_port_pairs(count: int) -> list[int]:
    """`count` ports p, each with p + 10000 free too (the bus), from a range that differs per process."""
    ports: list[int] = []
    candidate = 21000 + (os.getpid() * 7) % 20000
    while len(ports) < count:
        if candidate >= 55000:
            candidate = 21000
        if _free(candidate) and _free(candidate + 10000):
            ports.append(candidate)
        candidate += 1
    return ports
