"""Hosts of a test's own: Linux network namespaces on a private bridge, links a test can cut.

Each host is a namespace with one veth link to a bridge in the root namespace, an
address 10.231.<net>.<n>/24 of a subnet no route of the machine uses, and its own
loopback; the root namespace holds 10.231.<net>.1, so the test itself reaches every
host. Nothing is routed beyond the bridge. A link between two hosts is cut by pointing
each host's neighbour entry for the other at a MAC address no interface has: their
packets vanish on the bridge as in a real partition (no reset, no refusal: a route
change would fail a local connect() at once; this kernel has no tc filters), while both
hosts still reach everyone else. Healing deletes the entries; ARP finds the real ones.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid

PREFIX = "elmh"  # every namespace and link this helper creates starts with it
NOWHERE = "02:00:00:e1:0f:f1"  # locally administered; never the source of a frame here


def available() -> str | None:
    """None if namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def remove_leftovers() -> None:
    """Delete namespaces and bridges an earlier run killed before its teardown left behind."""
    for line in _ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(f"{PREFIX}-"):
            _ip("netns", "del", name, check=False)
    for line in _ip("-o", "link", "show", "type", "bridge").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            _ip("link", "del", name, check=False)


def _free_subnet() -> int:
    used = _ip("-4", "addr").stdout + _ip("-4", "route").stdout
    for net in random.sample(range(1, 255), 254):
        if f"10.231.{net}." not in used:
            return net
    raise RuntimeError("no free 10.231.x.0/24 subnet")


class Network:
    """A bridge and the hosts on it; close() deletes all of it."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:4]
        self.net = _free_subnet()
        self.bridge = f"{PREFIX}b{self.run}"
        self.hosts: dict[str, str] = {}  # host name -> address
        self.namespaces: dict[str, str] = {}  # host name -> namespace
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"10.231.{self.net}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, name: str) -> str:
        """A namespace named after the host, linked to the bridge; returns its address."""
        n = len(self.hosts) + 2
        namespace, outer = f"{PREFIX}-{self.run}-{name}", f"{PREFIX}{self.run}{n}"
        address = f"10.231.{self.net}.{n}"
        _ip("netns", "add", namespace)
        self.namespaces[name] = namespace
        _ip("link", "add", outer, "type", "veth", "peer", "name", f"{outer}p")
        _ip("link", "set", f"{outer}p", "netns", namespace)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        inside = ("ip", "netns", "exec", namespace, "ip")
        for args in (("link", "set", f"{outer}p", "name", "eth0"), ("addr", "add", f"{address}/24", "dev", "eth0"),
                     ("link", "set", "eth0", "up"), ("link", "set", "lo", "up")):
            subprocess.run([*inside, *args], check=True, capture_output=True, timeout=30)
        self.hosts[name] = address
        return address

    @staticmethod
    def exec_prefix_of(namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]

    def exec_prefix(self, name: str) -> list[str]:
        """argv prefix that runs a command on host ``name`` (ip netns exec execs it: same pid)."""
        return self.exec_prefix_of(self.namespaces[name])

    def _neigh(self, host: str, *args: str) -> None:
        subprocess.run([*self.exec_prefix(host), "ip", "neigh", *args], check=True, capture_output=True, timeout=30)

    def cut(self, a: str, b: str) -> None:
        """Drop every packet between hosts a and b, both ways."""
        for here, there in ((a, b), (b, a)):
            self._neigh(here, "replace", self.hosts[there], "lladdr", NOWHERE, "dev", "eth0", "nud", "permanent")

    def heal(self, a: str, b: str) -> None:
        for here, there in ((a, b), (b, a)):
            self._neigh(here, "del", self.hosts[there], "dev", "eth0")

    def close(self) -> None:
        for namespace in self.namespaces.values():
            _ip("netns", "del", namespace, check=False)  # takes its end of the veth, and so the pair
        _ip("link", "del", self.bridge, check=False)
