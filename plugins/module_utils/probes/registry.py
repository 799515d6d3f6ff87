# -*- coding: utf-8 -*-
# Copyright: contributors to kubeadm_ec2.cluster
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small registry (OCI distribution API v2) client on the standard library.

Resolves image references to the platforms they offer:

* ``GET /v2/<repo>/manifests/<tag|digest>`` accepting OCI index, Docker manifest
  list, OCI and Docker image manifests; for a single manifest the config blob is
  read for its architecture; index entries without a platform are followed;
* auth: anonymous, Basic (htpasswd registries) and the Bearer token flow
  (``WWW-Authenticate: Bearer realm=...,service=...,scope=...``) with credentials
  from parameters or a docker ``config.json`` (``auths`` only, no credential helpers);
* Docker Hub: ``docker.io`` is served by ``registry-1.docker.io``;
* plain HTTP only for hosts listed as insecure;
* bounded timeouts, a bounded thread pool, caches per manifest digest and per
  config digest, tokens cached per (realm, service, scope).

Errors never raise out of ``resolve``/``resolve_many``: they come back as
``{"platforms": None, "status": <HTTP status or None>, "error": "..."}``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urlsplit
from urllib.request import HTTPRedirectHandler, HTTPSHandler, HTTPHandler, Request, build_opener

from ansible_collections.kubeadm_ec2.cluster.plugins.module_utils.analysis.image import (
    ACCEPT,
    classify_manifest,
    collect_images,
    evaluate,
    image_report,
    parse_reference,
    platform_from_config,
)

DOCKER_HUB_API = "registry-1.docker.io"
_MAX_BODY = 4 * 1024 * 1024
_CHALLENGE_RE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


class RegistryError(Exception):
    def __init__(self, status, message):
        super(RegistryError, self).__init__(message)
        self.status = status
        self.message = message


def normalize_registry_host(name):
    """'https://index.docker.io/v1/' -> 'docker.io'; '127.0.0.1:5000/' -> '127.0.0.1:5000'."""
    text = str(name or "").strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.split("/")[0].lower()
    if text in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "docker.io"):
        return "docker.io"
    return text


def load_docker_config(path_or_dict):
    """{registry host: (username, password)} from a docker config.json (``auths``)."""
    if not path_or_dict:
        return {}
    if isinstance(path_or_dict, dict):
        data = path_or_dict
    else:
        path = os.path.expanduser(path_or_dict)
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        with open(path) as fh:
            data = json.load(fh)
    out = {}
    for host, entry in (data.get("auths") or {}).items():
        entry = entry or {}
        user, password = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            decoded = base64.b64decode(entry["auth"]).decode("utf-8")
            user, _sep, password = decoded.partition(":")
        if user is not None and password is not None:
            out[normalize_registry_host(host)] = (user, password)
    return out


class _NoAuthRedirect(HTTPRedirectHandler):
    """Follow blob redirects (S3/CDN); Authorization is sent unredirected only."""


def _body_text(exc):
    try:
        raw = exc.read(4096)
        data = json.loads(raw.decode("utf-8"))
        errs = data.get("errors") or []
        if errs:
            return "; ".join("%s: %s" % (e.get("code"), e.get("message")) for e in errs)
    except Exception:  # pylint: disable=broad-except
        pass
    return exc.reason if isinstance(exc.reason, str) else str(exc.reason)


class RegistryClient:
    def __init__(self, credentials=None, docker_config=None, insecure_registries=(), timeout=10.0,
                 max_workers=8, user_agent="kubeadm_ec2.cluster.image_arch_check"):
        self.credentials = load_docker_config(docker_config)
        for host, cred in (credentials or {}).items():
            self.credentials[normalize_registry_host(host)] = tuple(cred)
        self.insecure = {normalize_registry_host(h) for h in insecure_registries or ()}
        self.timeout = float(timeout)
        self.max_workers = max(1, int(max_workers))
        self.user_agent = user_agent
        self._opener = build_opener(HTTPHandler(), HTTPSHandler(), _NoAuthRedirect())
        self._lock = threading.Lock()
        self._tokens = {}  # (realm, service, scope) -> token
        self._auth_kind = {}  # (host, repo) -> ("basic"|"bearer", challenge params)
        self._by_digest = {}  # manifest digest -> (kind, platforms)
        self._configs = {}  # config digest -> platform
        self.requests = 0

    # ----------------------------------------------------------------- plumbing

    def base_url(self, registry):
        host = DOCKER_HUB_API if registry == "docker.io" else registry
        scheme = "http" if normalize_registry_host(registry) in self.insecure else "https"
        return "%s://%s" % (scheme, host)

    def _open(self, url, headers, auth_header=None, method="GET"):
        req = Request(url, headers=headers, method=method)
        req.add_header("User-Agent", self.user_agent)
        if auth_header:
            req.add_unredirected_header("Authorization", auth_header)
        with self._lock:
            self.requests += 1
        return self._opener.open(req, timeout=self.timeout)

    def _basic(self, registry):
        cred = self.credentials.get(normalize_registry_host(registry))
        if not cred:
            return None
        raw = ("%s:%s" % cred).encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def _token(self, registry, params, scope):
        realm = params.get("realm")
        if not realm:
            raise RegistryError(401, "bearer challenge without realm")
        service = params.get("service")
        key = (realm, service, scope)
        with self._lock:
            if key in self._tokens:
                return self._tokens[key]
        query = {}
        if service:
            query["service"] = service
        if scope:
            query["scope"] = scope
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        try:
            with self._open(url, {"Accept": "application/json"}, self._basic(registry)) as resp:
                data = json.loads(resp.read(_MAX_BODY).decode("utf-8"))
        except HTTPError as exc:
            raise RegistryError(exc.code, "token server %s: %s" % (urlsplit(realm).netloc, _body_text(exc)))
        token = data.get("token") or data.get("access_token")
        if not token:
            raise RegistryError(401, "token server returned no token")
        with self._lock:
            self._tokens[key] = token
        return token

    def _auth_header(self, registry, repo, challenge):
        scheme, params = challenge
        if scheme == "basic":
            return self._basic(registry)
        scope = params.get("scope") or "repository:%s:pull" % repo
        return "Bearer " + self._token(registry, params, scope)

    @staticmethod
    def _parse_challenge(header):
        if not header:
            return None
        scheme, _sep, rest = header.strip().partition(" ")
        return scheme.lower(), dict(_CHALLENGE_RE.findall(rest))

    def _get(self, registry, repo, path, accept):
        """GET under /v2/<repo>/ with the auth dance. Returns (headers, body bytes)."""
        url = "%s/v2/%s/%s" % (self.base_url(registry), repo, path)
        headers = {"Accept": accept}
        key = (registry, repo)
        with self._lock:
            challenge = self._auth_kind.get(key)
        auth = None
        try:
            if challenge:
                auth = self._auth_header(registry, repo, challenge)
            for attempt in (1, 2):
                try:
                    with self._open(url, headers, auth) as resp:
                        return resp.headers, resp.read(_MAX_BODY)
                except HTTPError as exc:
                    if exc.code != 401 or attempt == 2:
                        raise RegistryError(exc.code, _body_text(exc))
                    if auth and auth.startswith("Bearer "):
                        with self._lock:  # the cached token expired or lacks the scope
                            self._tokens = {k: v for k, v in self._tokens.items() if "Bearer " + v != auth}
                    challenge = self._parse_challenge(exc.headers.get("WWW-Authenticate"))
                    if not challenge or challenge[0] not in ("basic", "bearer"):
                        raise RegistryError(401, _body_text(exc))
                    if challenge[0] == "basic" and not self._basic(registry):
                        raise RegistryError(401, "authentication required and no credentials for %s" % registry)
                    with self._lock:
                        self._auth_kind[key] = challenge
                    auth = self._auth_header(registry, repo, challenge)
        except RegistryError:
            raise
        except HTTPError as exc:
            raise RegistryError(exc.code, _body_text(exc))
        except (URLError, socket.timeout, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(None, "%s: %s" % (url.split("/v2/")[0], reason))
        raise RegistryError(None, "unreachable")  # pragma: no cover

    # ----------------------------------------------------------------- API

    def fetch_manifest(self, registry, repo, target):
        headers, body = self._get(registry, repo, "manifests/%s" % target, ", ".join(ACCEPT))
        digest = headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()
        try:
            doc = json.loads(body.decode("utf-8"))
        except ValueError:
            raise RegistryError(None, "manifest is not JSON")
        media_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        if media_type in ("", "application/json", "application/octet-stream", "text/plain"):
            media_type = doc.get("mediaType") or ""
        return digest, media_type, doc

    def _config_platform(self, registry, repo, config_desc):
        digest = config_desc["digest"]
        with self._lock:
            if digest in self._configs:
                return self._configs[digest]
        _headers, body = self._get(registry, repo, "blobs/%s" % digest, "application/json, */*")
        try:
            platform = platform_from_config(json.loads(body.decode("utf-8")))
        except ValueError as exc:
            raise RegistryError(None, "config %s: %s" % (digest, exc))
        with self._lock:
            self._configs[digest] = platform
        return platform

    def _platforms(self, registry, repo, digest, media_type, doc, depth=0):
        """(kind, platforms) of a manifest: ``index`` with the platforms of its entries (entries
        without one are followed), or ``manifest`` with the platform its config names."""
        with self._lock:
            if digest in self._by_digest:
                return self._by_digest[digest]
        try:
            kind, data = classify_manifest(media_type, doc)
        except ValueError as exc:
            raise RegistryError(None, str(exc))
        if kind == "v1":
            found = ("manifest", [data])
        elif kind == "image":
            found = ("manifest", [self._config_platform(registry, repo, data)])
        else:
            platforms = []
            for entry in data:
                if entry["platform"]:
                    platforms.append(entry["platform"])
                elif entry["digest"] and depth < 2:
                    sub_digest, sub_mt, sub_doc = self.fetch_manifest(registry, repo, entry["digest"])
                    platforms.extend(self._platforms(registry, repo, sub_digest, sub_mt, sub_doc, depth + 1)[1])
            found = ("index", platforms)
        with self._lock:
            self._by_digest[digest] = found
        return found

    def resolve(self, ref):
        """A parsed (or textual) reference -> result dict; never raises."""
        if isinstance(ref, str):
            try:
                ref = parse_reference(ref)
            except ValueError as exc:
                return {"platforms": None, "status": None, "error": str(exc)}
        target = ref["digest"] or ref["tag"]
        try:
            digest, media_type, doc = self.fetch_manifest(ref["registry"], ref["repository"], target)
            kind, platforms = self._platforms(ref["registry"], ref["repository"], digest, media_type, doc)
        except RegistryError as exc:
            return {"platforms": None, "status": exc.status, "error": exc.message, "digest": None,
                    "media_type": None}
        except Exception as exc:  # pylint: disable=broad-except  # a finding, never a traceback
            return {"platforms": None, "status": None, "error": "%s: %s" % (type(exc).__name__, exc),
                    "digest": None, "media_type": None}
        return {"platforms": platforms, "kind": kind, "status": 200, "error": None, "digest": digest,
                "media_type": media_type}

    def resolve_many(self, refs):
        """{canonical name: parsed ref} -> {canonical name: result}, concurrently."""
        names = sorted(refs)
        if not names:
            return {}
        workers = min(self.max_workers, len(names))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda n: self.resolve(refs[n]), names))
        return dict(zip(names, results))


def check_images(client, images=(), workloads=(), node_arches=(), pull_errors=(), nodes_by_arch=None):
    """The engine: distinct references resolved concurrently, then evaluated.

    Returns ``(findings, report)`` where report is the per-image summary.
    """
    refs, _usage, _invalid = collect_images(images, workloads)
    resolved = client.resolve_many(refs)
    findings = evaluate(images, workloads, node_arches, resolved, pull_errors, nodes_by_arch)
    return findings, image_report(refs, resolved)
