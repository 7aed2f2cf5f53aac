"""Real nginx serving a directory on loopback: a static mirror with no hub headers and no API,
just files, Range and ETags, and its own access log to count what it served."""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon import daemon, free_port, port_open

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
LOG_RE = re.compile(r'^(\S+) "(\S+) (\S+) [^"]*" (\d+) (\d+)$')


@dataclass(frozen=True)
class Served:
    """One line of the access log: which address was asked, for what, and the body bytes sent."""

    server_addr: str
    method: str
    uri: str
    status: int
    body_bytes: int


@dataclass(frozen=True)
class Nginx:
    port: int
    root: Path
    log: Path
    addresses: tuple[str, ...]

    def url(self, address: str | None = None) -> str:
        return f"http://{address or self.addresses[0]}:{self.port}"

    def served(self) -> list[Served]:
        out = []
        for line in self.log.read_text().splitlines():
            m = LOG_RE.match(line)
            if m:
                out.append(Served(m[1], m[2], m[3], int(m[4]), int(m[5])))
        return out


@contextmanager
def nginx(root: Path, workdir: Path, addresses: tuple[str, ...] = ("127.0.0.1",), limit_rate: str = "0"):
    """nginx serving ``root`` on each loopback address (all on one port, so a test can tell
    clients apart by the address they were given); logs ``$server_addr "request" status bytes``.
    ``limit_rate`` (say "200k") slows each response, so that clients' downloads overlap."""
    if not NGINX:
        pytest.skip("nginx is not installed (.ci/run installs it)")
    port = free_port()
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    listen = "\n".join(f"    listen {a}:{port};" for a in addresses)
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
daemon off;
user root;
worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log;
events {{ worker_connections 256; }}
http {{
  log_format counted '$server_addr "$request" $status $body_bytes_sent';
  access_log {workdir}/logs/access.log counted;
  client_body_temp_path {workdir}/body;
  proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi;
  uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
  sendfile on;
  tcp_nopush on;
  server {{
{listen}
    root {root};
    limit_rate {limit_rate};
  }}
}}
""")
    with daemon([NGINX, "-p", str(workdir), "-c", str(conf)], workdir, "nginx", port_open(addresses[-1], port),
                timeout=10):
        yield Nginx(port, root, workdir / "logs" / "access.log", addresses)
