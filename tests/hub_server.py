"""A local Hugging Face Hub replica that speaks the hub's HTTP protocol, with fault injection.

Two real HTTP servers on 127.0.0.1: the *hub* (resolve URLs, HEAD metadata, the model API) and a
*CDN* on another port that serves LFS blobs after a 302, honouring Range and If-Range, as the
real hub's CloudFront does. ``huggingface_hub``'s own download functions work against it
(tests/test_hub_server.py proves that), so what weightsafe does against it it does against the hub.

Run it by hand:  python tests/hub_server.py --port 8080 --manifests-out /tmp/replica-manifests
then         HF_ENDPOINT=http://127.0.0.1:8080 WEIGHTSAFE_MANIFEST_PATH=/tmp/replica-manifests weightsafe pull codefuse-34b
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

try:
    from . import replicas as _replicas
except ImportError:  # run as a script
    import replicas as _replicas  # type: ignore


@dataclass
class Fault:
    """One injected failure. ``host`` is 'hub', 'cdn' or '*'; ``path`` a glob on the file path.

    kinds: drop (close after ``after`` bytes), status (answer ``code``, optional ``retry_after``),
    corrupt (flip a byte at ``where`` = start|middle|end), ignore_range (200 + full body),
    bad_content_range, stall (headers, then ``seconds`` of silence), mutate (serve other content
    with a new ETag from now on), redirect_loop, redirect_other_host, throttle (``bps``),
    hang (no response at all for ``seconds``).
    """

    kind: str
    path: str = "*"
    host: str = "*"
    times: int | None = 1  # None = forever
    after: int = 0
    code: int = 503
    retry_after: int | None = None
    where: str = "middle"
    seconds: float = 30.0
    bps: int = 0
    chunk: int = 0  # bytes per write (0: 64 KiB, or bps / 20 when throttled)
    skip: int = 0  # matching requests to let through untouched before the fault applies
    hits: int = 0
    seen: int = 0

    def matches(self, host: str, path: str) -> bool:
        return (self.host in ("*", host) and fnmatch.fnmatch(path, self.path)
                and (self.times is None or self.hits < self.times))


@dataclass
class Request:
    host: str
    method: str
    path: str
    headers: dict
    bytes_sent: int = 0


@dataclass
class Repo:
    refs: dict[str, str]
    commits: dict[str, dict[str, bytes]]
    gated: bool = False


class HubState:
    """Everything both servers share: repos, blobs, tokens, faults and the request log."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.tokens: set[str] = set()
        self.faults: list[Fault] = []
        self.log: list[Request] = []
        self.tree_page_size = 1000
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._digests: dict[tuple[int, str], tuple[bytes, str]] = {}

    def digest(self, data: bytes, kind: str) -> str:
        """``sha256`` or ``git-sha1`` of a served file, computed once per file: a real hub stores
        them, and recomputing them on every HEAD and listing made the replica's CPU (not the
        client's) the limit of every pull benchmark on 2 cores."""
        key = (id(data), kind)
        with self.lock:
            hit = self._digests.get(key)
        if hit is not None and hit[0] is data:
            return hit[1]
        value = hashlib.sha256(data).hexdigest() if kind == "sha256" else _replicas.git_blob_sha1(data)
        with self.lock:
            self._digests[key] = (data, value)  # holding data keeps its id from being reused
        return value

    def add_repo(self, repo_id: str, commit: str, files: dict[str, bytes], branch: str = "main",
                 gated: bool = False) -> None:
        repo = self.repos.setdefault(repo_id, Repo(refs={}, commits={}))
        repo.commits[commit] = dict(files)
        repo.refs[branch] = commit
        repo.gated = repo.gated or gated
        for path, data in files.items():
            if _replicas.is_lfs(path, data):
                self.blobs[self.digest(data, "sha256")] = data

    def add_replica(self, r, gated: bool = False) -> None:
        self.add_repo(r.repo, r.commit, r.files, gated=gated)

    def fault(self, kind: str, **kw) -> Fault:
        f = Fault(kind, **kw)
        with self.lock:
            self.faults.append(f)
        return f

    def take_fault(self, host: str, path: str, kinds: tuple[str, ...]) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.kind in kinds and f.matches(host, path):
                    f.seen += 1
                    if f.seen <= f.skip:
                        continue
                    f.hits += 1
                    return f
        return None

    def bytes_served(self, host: str = "cdn") -> int:
        return sum(r.bytes_sent for r in self.log if r.host == host)

    def requests(self, host: str | None = None, method: str | None = None) -> list[Request]:
        return [r for r in self.log if (host is None or r.host == host)
                and (method is None or r.method == method)]

    def resolve(self, repo_id: str, rev: str) -> tuple[Repo, str] | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None
        commit = repo.refs.get(rev) or (rev if rev in repo.commits else None)
        return (repo, commit) if commit else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hub-replica/1.0"
    state: HubState
    role: str  # "hub" or "cdn"
    hub_base: str
    cdn_base: str
    other_base: str

    def log_message(self, *args):  # keep test output quiet
        pass

    # ---------------------------------------------------------------- plumbing
    def _record(self) -> Request:
        rec = Request(self.role, self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        with self.state.lock:
            self.state.log.append(rec)
        return rec

    def _send(self, code: int, headers: dict, body: bytes = b"") -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, str(v))
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            self.rec.bytes_sent += len(body)

    def _error(self, code: int, error_code: str, message: str, extra: dict | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(code, {"Content-Type": "application/json", "X-Error-Code": error_code,
                          "X-Error-Message": message, **(extra or {})}, body)

    def do_HEAD(self):
        self._dispatch()

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        """Only the hub's ``paths-info`` API (what caching mirrors such as olah ask before a download)."""
        self.rec = self._record()
        parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(self.path).path.split("/")[1:]]
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode()) if length else {}
        if self.role == "hub" and parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4] == "paths-info":
            return self._paths_info(parts[2] + "/" + parts[3], parts[5], form.get("paths", []))
        self._error(404, "EntryNotFound", "not found")

    def _paths_info(self, repo_id: str, rev: str, paths: list[str]):
        found = self.state.resolve(repo_id, rev)
        if found is None:
            return self._error(404, "RevisionNotFound", f"{repo_id}@{rev} not found")
        repo, commit = found
        if not self._authorized(repo):
            return self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted.")
        files = repo.commits[commit]
        entries = []
        for path in paths:
            if path in files:
                e = {"type": "file", "oid": self.state.digest(files[path], "git-sha1"), "path": path}
                e.update(self._entry_meta(path, files[path], sibling=False))
                entries.append(e)
        self._send(200, {"Content-Type": "application/json", "X-Repo-Commit": commit}, json.dumps(entries).encode())

    def _dispatch(self):
        self.rec = self._record()
        name = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("name", [""])[0] \
            or self.path.rsplit("/", 1)[-1]
        hang = self.state.take_fault(self.role, name, ("hang",))
        if hang:  # say nothing at all, not even headers
            self.state.stopping.wait(hang.seconds)
            self.close_connection = True
            return
        try:
            if self.role == "cdn":
                self._cdn()
            elif self.role == "other":
                self._send(200, {"Content-Type": "text/plain"}, b"other host\n")
            else:
                self._hub()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ---------------------------------------------------------------- hub
    def _authorized(self, repo: Repo) -> bool:
        if not repo.gated:
            return True
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.state.tokens

    def _hub(self):
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        query = urllib.parse.parse_qs(url.query)
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._api(parts[2] + "/" + parts[3], parts[4:], query)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:]))
        self._error(404, "EntryNotFound", "not found")

    def _fault_status(self, host: str, path: str) -> bool:
        f = self.state.take_fault(host, path, ("status",))
        if not f:
            return False
        extra = {"Retry-After": f.retry_after} if f.retry_after is not None else {}
        self._error(f.code, "Injected", f"injected {f.code}", extra)
        return True

    def _resolve(self, repo_id: str, rev: str, path: str):
        if self._fault_status("hub", path):
            return
        if self.state.take_fault("hub", path, ("redirect_loop",)):
            return self._send(302, {"Location": self.path, "X-Repo-Commit": "0" * 40})
        found = self.state.resolve(repo_id, rev)
        if found is None:
            if repo_id not in self.state.repos:
                return self._error(401, "RepoNotFound", f"Repository Not Found for url: {self.path}")
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        repo, commit = found
        if not self._authorized(repo):
            return self._error(401 if "Authorization" not in self.headers else 403, "GatedRepo",
                               f"Access to model {repo_id} is restricted.")
        files = repo.commits[commit]
        if path not in files:
            return self._error(404, "EntryNotFound", f"{path} does not exist at {commit}",
                               {"X-Repo-Commit": commit})
        data = files[path]
        if _replicas.is_lfs(path, data):
            sha = self.state.digest(data, "sha256")
            base = self.cdn_base
            if self.state.take_fault("hub", path, ("redirect_other_host",)):
                base = self.other_base
            location = f"{base}/repos/{sha}?name={urllib.parse.quote(path)}&sig=replica"
            return self._send(302, {"Location": location, "X-Repo-Commit": commit,
                                    "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": len(data),
                                    "ETag": f'"{sha}"', "Content-Type": "text/plain"},
                              b"Found. Redirecting")
        etag = self.state.digest(data, "git-sha1")
        self._serve_bytes("hub", path, data, f'"{etag}"', {"X-Repo-Commit": commit})

    def _api(self, repo_id: str, rest: list[str], query: dict):
        rev = "main"
        if rest[:1] in (["revision"], ["tree"]) and len(rest) >= 2:
            rev = rest[1]
        found = self.state.resolve(repo_id, rev)
        if found is None:
            code, err = (401, "RepoNotFound") if repo_id not in self.state.repos else (404, "RevisionNotFound")
            return self._error(code, err, f"{repo_id}@{rev} not found")
        repo, commit = found
        if not self._authorized(repo):
            return self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted.")
        files = repo.commits[commit]
        if rest[:1] == ["tree"]:
            return self._tree(repo_id, commit, files, rest[2:], query)
        siblings = []
        blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
        for path, data in sorted(files.items()):
            s = {"rfilename": path}
            if blobs:
                s.update(self._entry_meta(path, data, sibling=True))
            siblings.append(s)
        body = {"_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id,
                "modelId": repo_id, "sha": commit, "private": False, "gated": repo.gated and "manual",
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "library_name": "transformers",
                "lastModified": "2024-01-01T00:00:00.000Z", "createdAt": "2024-01-01T00:00:00.000Z",
                "siblings": siblings}
        self._send(200, {"Content-Type": "application/json", "X-Repo-Commit": commit},
                   json.dumps(body).encode())

    def _entry_meta(self, path: str, data: bytes, sibling: bool) -> dict:
        meta: dict = {"size": len(data)}
        if sibling:
            meta["blobId"] = self.state.digest(data, "git-sha1")
        if _replicas.is_lfs(path, data):
            sha = self.state.digest(data, "sha256")
            meta["lfs"] = ({"sha256": sha, "size": len(data), "pointerSize": 134} if sibling
                           else {"oid": sha, "size": len(data), "pointerSize": 134})
        return meta

    def _tree(self, repo_id, commit, files, sub: list[str], query: dict):
        prefix = "/".join(sub).strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries, dirs = [], set()
        for path, data in sorted(files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rel = path[len(prefix) + 1:] if prefix else path
            if "/" in rel and not recursive:
                dirs.add((prefix + "/" if prefix else "") + rel.split("/")[0])
                continue
            if recursive:
                bits = path.split("/")
                for n in range(1, len(bits)):
                    d = "/".join(bits[:n])
                    if not prefix or d.startswith(prefix + "/"):
                        dirs.add(d)
            e = {"type": "file", "oid": self.state.digest(data, "git-sha1"), "path": path}
            e.update(self._entry_meta(path, data, sibling=False))
            entries.append(e)
        entries += [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                    for d in sorted(dirs)]
        entries.sort(key=lambda e: e["path"])
        start = int(query.get("cursor", ["0"])[0])
        page = entries[start:start + self.state.tree_page_size]
        headers = {"Content-Type": "application/json"}
        if start + self.state.tree_page_size < len(entries):
            q = dict((k, v[0]) for k, v in query.items())
            q["cursor"] = str(start + self.state.tree_page_size)
            nxt = f"{self.hub_base}{urllib.parse.urlsplit(self.path).path}?{urllib.parse.urlencode(q)}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._send(200, headers, json.dumps(page).encode())

    # ---------------------------------------------------------------- cdn
    def _cdn(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.split("/")
        sha = parts[-1] if len(parts) == 3 and parts[1] == "repos" else ""
        name = urllib.parse.parse_qs(url.query).get("name", [sha])[0]
        if self._fault_status("cdn", name):
            return
        data = self.state.blobs.get(sha)
        if data is None:
            return self._send(403, {"Content-Type": "application/xml"}, b"<Error>AccessDenied</Error>")
        etag = f'"{sha}"'
        if self.state.take_fault("cdn", name, ("mutate",)):
            data = data[::-1]
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
        self._serve_bytes("cdn", name, data, etag, {})

    # ---------------------------------------------------------------- bytes with Range
    def _serve_bytes(self, host: str, name: str, data: bytes, etag: str, extra: dict) -> None:
        state = self.state
        corrupt = state.take_fault(host, name, ("corrupt",))
        if corrupt:
            pos = {"start": 0, "middle": len(data) // 2, "end": len(data) - 1}[corrupt.where]
            data = data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
                   **extra}
        start, end, code = 0, len(data) - 1, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        honour = rng and (if_range is None or if_range == etag)
        if honour and not state.take_fault(host, name, ("ignore_range",)):
            parsed = _parse_range(rng, len(data))
            if parsed is None:
                return self._send(416, {"Content-Range": f"bytes */{len(data)}", **headers})
            start, end = parsed
            code = 206
            cr_start = start
            if state.take_fault(host, name, ("bad_content_range",)):
                cr_start = max(0, start - 7) if start else 5
            headers["Content-Range"] = f"bytes {cr_start}-{end}/{len(data)}"
        body = data[start:end + 1]
        headers["Content-Length"] = len(body)
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.end_headers()
        if self.command == "HEAD":
            return
        stall = state.take_fault(host, name, ("stall",))
        if stall:
            self.wfile.flush()
            state.stopping.wait(stall.seconds)
            self.close_connection = True
            return
        drop = state.take_fault(host, name, ("drop", "truncate"))
        limit = min(drop.after, len(body)) if drop else len(body)
        throttle = next((f for f in state.faults if f.kind == "throttle" and f.matches(host, name)), None)
        self._write(body[:limit], throttle.bps if throttle else 0, throttle.chunk if throttle else 0)
        if drop:
            self.wfile.flush()
            if drop.kind == "drop":
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                except OSError:
                    pass
            self.close_connection = True

    def _write(self, body: bytes, bps: int, chunk: int = 0) -> None:
        step = chunk or (64 * 1024 if not bps else max(1024, bps // 20))
        view = memoryview(body)
        for i in range(0, len(body), step):
            if self.state.stopping.is_set():
                self.close_connection = True
                return
            chunk = view[i:i + step]
            self.wfile.write(chunk)
            self.rec.bytes_sent += len(chunk)
            if bps:
                time.sleep(len(chunk) / bps)


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), size - 1) if n > 0 else None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """A client hanging up (as clients killed by tests do) is normal; other errors print."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class HubReplica:
    """Starts the hub, CDN and a third 'other host' server; use as a context manager."""

    def __init__(self, state: HubState | None = None, port: int = 0, cdn_url: str | None = None):
        """``cdn_url``: redirect LFS downloads there (a real CDN, say nginx serving the blobs as
        ``repos/<sha256>``) instead of to the replica's own CDN port."""
        self.state = state or HubState()
        self._cdn_override = cdn_url
        self._servers = []
        self._threads = []
        self._port = port

    def _make(self, role: str, port: int = 0) -> ThreadingHTTPServer:
        handler = type(f"{role}Handler", (_Handler,), {"state": self.state, "role": role})
        server = _Server(("127.0.0.1", port), handler)
        self._servers.append(server)
        return server

    def start(self) -> "HubReplica":
        hub, cdn, other = self._make("hub", self._port), self._make("cdn"), self._make("other")
        self.url = f"http://127.0.0.1:{hub.server_address[1]}"
        self.cdn_url = self._cdn_override or f"http://127.0.0.1:{cdn.server_address[1]}"
        self.other_url = f"http://127.0.0.1:{other.server_address[1]}"
        for s in self._servers:
            s.RequestHandlerClass.hub_base = self.url
            s.RequestHandlerClass.cdn_base = self.cdn_url
            s.RequestHandlerClass.other_base = self.other_url
            t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self.state.stopping.set()
        for s in self._servers:
            s.shutdown()
            s.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Serve the seed-model replicas on a local hub replica.")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--manifests-out", type=Path, help="write the replicas' manifests here")
    ap.add_argument("--throttle", type=int, default=0, help="CDN bytes per second (0 = unlimited)")
    args = ap.parse_args(argv)
    state = HubState()
    for name, r in _replicas.build_all().items():
        state.add_replica(r)
        if args.manifests_out:
            args.manifests_out.mkdir(parents=True, exist_ok=True)
            (args.manifests_out / f"{name}.toml").write_text(_replicas.replica_manifest(r))
    if args.throttle:
        state.fault("throttle", host="cdn", times=None, bps=args.throttle)
    hub = HubReplica(state, args.port).start()
    print(f"hub {hub.url}  cdn {hub.cdn_url}  repos: {', '.join(sorted(state.repos))}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
