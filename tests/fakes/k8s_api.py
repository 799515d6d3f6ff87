"""A thin, faithful fake of the Kubernetes API for tests.

No kube-apiserver can run on the test machines, so the Kubernetes layer of the
checks is exercised through the real ``kubernetes`` Python client against this
HTTP server. It stores real API objects (plain dicts, the JSON the API serves)
and implements just the REST semantics the checks use:

* ``GET`` of a collection (namespaced, all-namespaces, cluster-scoped) with
  ``labelSelector`` (equality and set-based ``in``/``notin``/exists) and
  ``fieldSelector`` (dotted paths, ``=``/``==``/``!=``), and ``GET`` of one object;
* ``POST`` to create (``metadata.generateName`` honoured, uid/resourceVersion set),
  ``DELETE`` of one object, ``PATCH`` (merge) of one object (hooks ``on_patch`` / ``on_delete``);
* 404/409 answered with a real ``Status`` object.

Scenario hooks let a test decide what happens to created objects (for example a
probe pod that terminates with a message, or one that never starts).
"""

import copy
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from tests.support.k8s import status as _status
from tests.support.lifecycle import Substrate


def _dig(obj, dotted):
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _split_selector(text):
    """Split a selector on commas that are not inside parentheses."""
    parts, depth, buf = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(buf.strip())
            buf = ""
        else:
            buf += ch
    if buf.strip():
        parts.append(buf.strip())
    return parts


def label_selector_matches(selector, labels):
    labels = labels or {}
    for term in _split_selector(selector or ""):
        if " notin " in term:
            key, vals = term.split(" notin ", 1)
            vals = {v.strip() for v in vals.strip()[1:-1].split(",")}
            if labels.get(key.strip()) in vals:
                return False
        elif " in " in term:
            key, vals = term.split(" in ", 1)
            vals = {v.strip() for v in vals.strip()[1:-1].split(",")}
            if labels.get(key.strip()) not in vals:
                return False
        elif "!=" in term:
            key, val = term.split("!=", 1)
            if labels.get(key.strip()) == val.strip():
                return False
        elif "=" in term:
            key, val = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != val.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_selector_matches(selector, obj):
    for term in _split_selector(selector or ""):
        if "!=" in term:
            key, val = term.split("!=", 1)
            if str(_dig(obj, key.strip())) == val.strip():
                return False
        else:
            key, val = term.replace("==", "=").split("=", 1)
            got = _dig(obj, key.strip())
            if got is None or str(got) != val.strip():
                return False
    return True


class FakeCluster:
    """The object store plus the hooks; shared by the server threads."""

    def __init__(self):
        self.lock = threading.RLock()
        # key: (prefix, plural) -> {(namespace, name): obj}; prefix is "api/v1" or "apis/g/v"
        self.store = {}
        self.on_create = {}  # plural -> callable(obj, cluster) run after a create
        self.on_get = {}  # plural -> callable(obj, cluster) run before an object is served
        self.on_patch = {}  # plural -> callable(obj, patch, cluster) run after a patch was merged
        self.on_delete = {}  # plural -> callable(obj, cluster) run after an object was deleted
        self.requests = []  # (method, path) log, for assertions

    @staticmethod
    def _where(obj):
        api_version = obj.get("apiVersion", "v1")
        prefix = "api/v1" if api_version == "v1" else "apis/" + api_version
        return prefix

    @staticmethod
    def plural_of(kind):
        lower = kind.lower()
        if lower.endswith("policy"):
            return lower[:-1] + "ies"
        if lower.endswith("s"):
            return lower + "es"
        return lower + "s"

    def add(self, obj, plural=None):
        """Store an API object (a dict as the API would serve it)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        plural = plural or self.plural_of(obj["kind"])
        with self.lock:
            bucket = self.store.setdefault((self._where(obj), plural), {})
            bucket[(meta.get("namespace"), meta["name"])] = obj
        return obj

    def add_all(self, objs):
        for obj in objs:
            if obj.get("kind", "").endswith("List") and "items" in obj:
                self.add_all(obj["items"])
            else:
                self.add(obj)

    def get(self, prefix, plural, namespace, name):
        with self.lock:
            return self.store.get((prefix, plural), {}).get((namespace, name))

    def objects(self, prefix, plural):
        with self.lock:
            return list(self.store.get((prefix, plural), {}).values())

    def delete(self, prefix, plural, namespace, name):
        with self.lock:
            return self.store.get((prefix, plural), {}).pop((namespace, name), None)


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-kube-apiserver/1"
    protocol_version = "HTTP/1.1"
    # the headers and the body leave in separate writes: with Nagle on, every keep-alive response waited
    # ~40 ms for the client's delayed ACK, a stall the real API server (Go sets TCP_NODELAY) does not have
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep test output clean
        return

    @property
    def cluster(self):
        return self.server.cluster

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self):
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if parts[:2] == ["api", "v1"]:
            prefix, rest = "api/v1", parts[2:]
        elif parts and parts[0] == "apis" and len(parts) >= 3:
            prefix, rest = "/".join(parts[:3]), parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return None
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return prefix, namespace, plural, name, sub, query

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self):
        self.cluster.requests.append(("GET", self.path))
        if self.path.startswith("/version"):
            return self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.4", "platform": "linux/amd64"})
        route = self._route()
        if route is None:
            return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
        prefix, namespace, plural, name, sub, query = route
        if name is not None:
            obj = self.cluster.get(prefix, plural, namespace, name)
            if obj is None:
                return self._send(404, _status(404, "NotFound", '%s "%s" not found' % (plural, name), name, plural))
            hook = self.cluster.on_get.get(plural)
            if hook:
                hook(obj, self.cluster)
            if sub == "log":
                return self._send(200, obj.get("_log", ""))
            return self._send(200, {k: v for k, v in obj.items() if not k.startswith("_")})
        items = []
        for obj in self.cluster.objects(prefix, plural):
            meta = obj.get("metadata", {})
            if namespace is not None and meta.get("namespace") != namespace:
                continue
            if not label_selector_matches(query.get("labelSelector"), meta.get("labels")):
                continue
            if not field_selector_matches(query.get("fieldSelector"), obj):
                continue
            hook = self.cluster.on_get.get(plural)
            if hook:
                hook(obj, self.cluster)
            items.append({k: v for k, v in obj.items() if not k.startswith("_")})
        kind = items[0]["kind"] if items else plural[:-1].capitalize()
        api_version = prefix[4:] if prefix.startswith("apis/") else "v1"
        return self._send(200, {"kind": kind + "List", "apiVersion": api_version,
                                "metadata": {"resourceVersion": "1"}, "items": items})

    def do_POST(self):
        self.cluster.requests.append(("POST", self.path))
        route = self._route()
        if route is None:
            return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
        prefix, namespace, plural, _name, _sub, _query = route
        obj = self._body()
        meta = obj.setdefault("metadata", {})
        if namespace:
            meta["namespace"] = namespace
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if self.cluster.get(prefix, plural, namespace, meta.get("name")) is not None:
            return self._send(409, _status(409, "AlreadyExists", '%s "%s" already exists' % (plural, meta["name"]),
                                           meta["name"], plural))
        meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        stored = self.cluster.add(obj, plural)
        hook = self.cluster.on_create.get(plural)
        if hook:
            hook(stored, self.cluster)
        return self._send(201, {k: v for k, v in stored.items() if not k.startswith("_")})

    def do_DELETE(self):
        self.cluster.requests.append(("DELETE", self.path))
        route = self._route()
        if route is None or route[3] is None:
            return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
        prefix, namespace, plural, name, _sub, _query = route
        self._body()
        obj = self.cluster.delete(prefix, plural, namespace, name)
        if obj is None:
            return self._send(404, _status(404, "NotFound", '%s "%s" not found' % (plural, name), name, plural))
        hook = self.cluster.on_delete.get(plural)
        if hook:
            hook(obj, self.cluster)
        return self._send(200, {k: v for k, v in obj.items() if not k.startswith("_")})

    def do_PATCH(self):
        self.cluster.requests.append(("PATCH", self.path))
        route = self._route()
        if route is None or route[3] is None:
            return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
        prefix, namespace, plural, name, _sub, _query = route
        patch = self._body()
        obj = self.cluster.get(prefix, plural, namespace, name)
        if obj is None:
            return self._send(404, _status(404, "NotFound", '%s "%s" not found' % (plural, name), name, plural))

        def merge(dst, src):
            for key, val in src.items():
                if isinstance(val, dict) and isinstance(dst.get(key), dict):
                    merge(dst[key], val)
                elif val is None:
                    dst.pop(key, None)
                else:
                    dst[key] = val

        with self.cluster.lock:
            merge(obj, patch)
        hook = self.cluster.on_patch.get(plural)
        if hook:
            hook(obj, patch, self.cluster)
        return self._send(200, {k: v for k, v in obj.items() if not k.startswith("_")})


class FakeKubeAPI(Substrate):
    """The fake on 127.0.0.1 with a free port (a Substrate: start/stop/context manager); writes a
    kubeconfig for it."""

    prefix = "fake-kube-api-"

    def __init__(self, cluster=None):
        super(FakeKubeAPI, self).__init__()
        self.cluster = cluster or FakeCluster()
        self.httpd = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.httpd.server_address[1]

    def _start(self):
        self.httpd = self.serve_http(_Handler, cluster=self.cluster)

    def write_kubeconfig(self, path=None, server=None):
        """A kubeconfig (token auth) for this fake, at ``path`` or in the fake's private directory;
        ``server`` points it elsewhere (a server that never answers, say)."""
        path = path or self.path("kubeconfig")
        text = (
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: %s\n"
            "users:\n- name: fake\n  user:\n    token: fake-token\n"
            "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n"
            "current-context: fake\n" % (server or self.url)
        )
        with open(path, "w") as fh:
            fh.write(text)
        return path
