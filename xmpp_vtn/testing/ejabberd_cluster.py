"""Run a private ejabberd cluster on loopback: several nodes joined into one, for tests only.

Each node is an :class:`~xmpp_vtn.testing.ejabberd.EjabberdServer` with its own directory, Mnesia
database and free c2s and component ports, given a :class:`~xmpp_vtn.testing.ejabberd.Distribution`:

* node names ``ejabberd1-<random>@localhost``, ``ejabberd2-<random>@localhost`` (short names; the
  random part keeps concurrent test runs from ever meeting);
* one free distribution port per node, bound to 127.0.0.1 (``inet_dist_use_interface``, with
  ``inet_dist_listen_min`` = ``inet_dist_listen_max``);
* a private epmd of ours on a free port, bound to loopback (``epmd -address 127.0.0.1``; epmd adds
  the IPv6 loopback ``::1`` by itself where the machine has IPv6), started and stopped by its PID;
  the nodes are started with ``-start_epmd false`` and find it through ``ERL_EPMD_PORT``, so the
  machine's own epmd on 4369 (if any) is never used or started;
* one cookie per cluster, from :func:`secrets.token_hex`, in each node's ``~/.erlang.cookie``
  with mode 0400.

The second and later nodes join the first with ``join_cluster`` (what ``ejabberdctl --node N
join_cluster FIRST`` does), which restarts ejabberd inside the joining VM on a copy of the first
node's Mnesia tables: accounts registered on any node log in on every node.

>>> with EjabberdCluster(nodes=2) as cluster:          # doctest: +SKIP
...     first, second = cluster.nodes
...     cluster.register("ven1", "secret")             # one account, known to both nodes
...     print(first.c2s_port, second.component_port, cluster.running_nodes())
"""
from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .ejabberd import Distribution, EjabberdError, EjabberdServer
from .localserver import LOOPBACK, LocalServer, die_with_parent, free_port, stop_process

__all__ = ["Epmd", "EjabberdCluster"]


class Epmd(LocalServer):
    """An epmd of our own, on a free port of the loopback interface, run in the foreground (no
    ``-daemon``), so that the PID we spawn is epmd's and :meth:`stop` ends exactly it."""

    def __init__(self, directory: str | Path | None = None):
        if shutil.which("epmd") is None:
            raise EjabberdError("epmd is not installed: run `apt-get install -y ejabberd` (as root)")
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="xmpp-vtn-epmd-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> "Epmd":
        """Start epmd and wait until it accepts connections on 127.0.0.1."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "epmd.log", "ab") as output:
            self.process = subprocess.Popen(["epmd", "-port", str(self.port), "-address", LOOPBACK],
                                            cwd=self.directory, stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=output, preexec_fn=die_with_parent(signal.SIGTERM))
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                if probe.connect_ex((LOOPBACK, self.port)) == 0:
                    return self
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise EjabberdError(f"epmd exited with {code}: "
                                    f"{(self.directory / 'epmd.log').read_text(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise EjabberdError(f"epmd did not listen on {LOOPBACK}:{self.port} within {timeout} s")
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the epmd we started, and wait for it."""
        process, self.process = self.process, None
        stop_process(process, signal.SIGTERM, timeout)


class EjabberdCluster(LocalServer):
    """``nodes`` ejabberd nodes on loopback joined into one cluster, serving ``domain`` (clients) and
    ``component`` (the VTN) on every node; each node has its own c2s and component ports.

    ``nodes[0]`` is the node the others join. :attr:`domain`, :attr:`component` and :attr:`secret`
    are the cluster's (the same on every node); ports belong to a node.
    """

    def __init__(self, nodes: int = 2, domain: str = "localhost", component: str = "vtn.localhost",
                 secret: str = "component-secret", directory: str | Path | None = None,
                 log_level: str = "warning"):
        if nodes < 2:
            raise ValueError("a cluster has at least two nodes: use EjabberdServer for one")
        self._own_directory = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="xmpp-vtn-ejabberd-cluster-"))
        self.domain, self.component, self.secret = domain, component, secret
        self.epmd = Epmd(self.directory / "epmd")
        # One cookie and one random part of the node names per cluster.
        cookie, suffix = secrets.token_hex(20), secrets.token_hex(3)
        self.nodes = [
            EjabberdServer(domain, component, secret, directory=self.directory / f"node{n}", log_level=log_level,
                           distribution=Distribution(f"ejabberd{n}-{suffix}@localhost", free_port(),
                                                     self.epmd.port, cookie))
            for n in range(1, nodes + 1)]
        self.process = None                     # the nodes and epmd have processes; the cluster none
        #: Seconds the last :meth:`start` took, and the joins within it.
        self.started_in: float | None = None
        self.joined_in: float | None = None

    @property
    def names(self) -> list[str]:
        """The Erlang node names, first node first."""
        return [node.distribution.node for node in self.nodes]

    def start(self, timeout: float = 60.0) -> "EjabberdCluster":
        """Start epmd and every node, then join every node to the first one; ``timeout`` is per node
        (a VM starting on a loaded 2-core machine has been seen to take more than 30 s)."""
        began = time.monotonic()
        self.epmd.start()
        for node in self.nodes:
            node.start(timeout)
        joins = time.monotonic()
        first, *others = self.nodes
        for node in others:
            node.ctl("join_cluster", first.distribution.node)
            # The join restarted ejabberd in that VM: its listeners closed and open again.
            node.wait_listening(timeout)
        missing = set(self.names) - set(self.running_nodes())
        if missing:
            raise EjabberdError(f"nodes not in the cluster after joining: {sorted(missing)}")
        self.joined_in = time.monotonic() - joins
        self.started_in = time.monotonic() - began
        return self

    def running_nodes(self, via: int = 0) -> list[str]:
        """The cluster's nodes that node ``via`` sees running (``ejabberdctl list_cluster``)."""
        # One atom a line, quoted as Erlang prints atoms with '-': 'ejabberd1-3fa2c1@localhost'.
        return [line.strip("'") for line in self.nodes[via].ctl("list_cluster").split()]

    def register(self, user: str, password: str) -> str:
        """Create ``user@domain`` (on the first node; Mnesia replicates it); returns the bare JID."""
        return self.nodes[0].register(user, password)

    def register_many(self, users, password: str) -> list[str]:
        """:meth:`EjabberdServer.register_many` on the first node."""
        return self.nodes[0].register_many(users, password)

    def stop(self) -> None:
        """Stop every node (last first, gracefully), then epmd; each by its PID."""
        for node in reversed(self.nodes):
            node.stop()
        self.epmd.stop()

    def close(self) -> None:
        """Stop everything and remove the cluster's directory if we created it."""
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        """The PIDs of the running nodes' VMs and of epmd."""
        return [process.pid for process in (*(node.process for node in self.nodes), self.epmd.process)
                if process is not None]
