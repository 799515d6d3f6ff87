"""A real container registry for tests and the demo: Debian's ``docker-registry``.

Usage::

    from tests.integration.registry_harness import Registry

    with Registry() as reg:                                  # plain, anonymous
        reg.push_image("marketplace", "v1", arch="arm64")    # single OCI manifest
        reg.push_index("marketplace", "v1", ["amd64", "arm64"])              # OCI image index
        reg.push_index("web", "1.0", ["amd64", "arm64"], media="docker")    # Docker manifest list
        reg.host       # "127.0.0.1:PORT" - use it in image references and insecure_registries

    Registry(auth="htpasswd", users={"alice": "s3cret"})     # Basic auth on every request
    Registry(auth="token", users={"alice": "s3cret"}, private=["private/"])
        # `auth: token` with a tiny JWT token server (RS256, x5c) started alongside: anonymous pulls
        # are granted except for repositories starting with a ``private`` prefix; users get pull+push.

Everything binds to 127.0.0.1 on free ports and lives in a private work directory (0700) that
``stop()`` removes: both are tests/support/lifecycle.py substrates. Pushes go over the registry API
(blobs, config, manifests generated here; tiny gzip tar layers whose ``/app`` is a tiny static
executable for the image's architecture, tests/support/elf.py, so containerd can run it).
"""

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qs, urlencode, urljoin, urlparse
from urllib.request import Request, urlopen

from tests.support.elf import executable
from tests.support.lifecycle import Substrate, free_port

REGISTRY_BIN = "/usr/bin/docker-registry"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA = {
    "oci": (OCI_INDEX, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
    "docker": (DOCKER_LIST, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
}


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def bcrypt_hash(password):
    """A bcrypt hash for htpasswd (crypt(3) from libxcrypt; htpasswd -nbB as fallback)."""
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt  # deprecated in 3.11, fine for tests on 3.11

        salt = "$2b$05$" + base64.b64encode(os.urandom(16), b"./").decode()[:22]
        out = crypt.crypt(password, salt)
        if out and out.startswith("$2"):
            return out
    except ImportError:
        pass
    line = subprocess.run(["htpasswd", "-nbB", "u", password], check=True, capture_output=True, text=True)
    return line.stdout.strip().split(":", 1)[1]


def fake_layer(text, arch=None):
    """A tiny, deterministic gzip'd tar: ``etc/image-arch`` holding ``text`` and, for a known
    architecture, the executable ``app`` built for it. Returns (gzip bytes, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        files = [("etc/image-arch", text.encode(), 0o644)]
        program = executable(arch) if arch else None
        if program:
            files.append(("app", program, 0o755))
        for name, data, mode in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, mode
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as fh:
        fh.write(tar_bytes)
    return gz.getvalue(), sha256(tar_bytes)


# ----------------------------------------------------------------------------- token server


class _TokenKeys:
    """RSA key and self-signed certificate; the cert is the registry's rootcertbundle."""

    def __init__(self, workdir):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        import datetime

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-token-issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=7))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.bundle = os.path.join(workdir, "token-root.pem")
        with open(self.bundle, "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))

    def sign(self, claims):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = "%s.%s" % (_b64url(json.dumps(header).encode()), _b64url(json.dumps(claims).encode()))
        sig = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(sig)


class TokenServer(Substrate):
    """Docker token auth (``GET /token?service=..&scope=repository:NAME:pull,push``).

    Basic credentials from ``users`` grant pull+push on every repository; anonymous requests get
    pull on repositories not starting with one of the ``private`` prefixes; wrong credentials -> 401.
    The signing key's certificate (``keys.bundle``) is in the server's private directory.
    """

    prefix = "imgarch-token-"

    def __init__(self, users, private=(), service="test-registry", issuer="test-token-issuer"):
        super(TokenServer, self).__init__()
        self.keys = None
        self.users = dict(users or {})
        self.private = tuple(private or ())
        self.service = service
        self.issuer = issuer
        self.issued = []  # (user, scope, granted actions) for assertions
        self.httpd = None

    @property
    def realm(self):
        return "http://127.0.0.1:%d/token" % self.httpd.server_address[1]

    def grant(self, user, scope):
        access = []
        for item in scope:
            parts = item.split(":")
            if len(parts) < 3 or parts[0] != "repository":
                continue
            name, wanted = ":".join(parts[1:-1]), parts[-1].split(",")
            if user:
                actions = [a for a in wanted if a in ("pull", "push", "delete", "*")]
            elif not name.startswith(self.private):
                actions = [a for a in wanted if a == "pull"]
            else:
                actions = []
            access.append({"type": "repository", "name": name, "actions": actions})
        return access

    def token(self, user, scope):
        now = int(time.time())
        access = self.grant(user, scope)
        self.issued.append((user, tuple(scope), tuple(tuple(a["actions"]) for a in access)))
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        return self.keys.sign(claims)

    def _start(self):
        self.keys = _TokenKeys(self.workdir)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def _send(self, code, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, val in headers:
                    self.send_header(key, val)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                if url.path != "/token":
                    return self._send(404, {"error": "not found"})
                query = parse_qs(url.query)
                user = None
                auth = self.headers.get("Authorization") or ""
                if auth.startswith("Basic "):
                    name, _sep, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if outer.users.get(name) != pw:
                        return self._send(401, {"errors": [{"code": "UNAUTHORIZED",
                                                            "message": "invalid username or password"}]},
                                          [("WWW-Authenticate", 'Basic realm="token"')])
                    user = name
                token = outer.token(user, query.get("scope", []))
                return self._send(200, {"token": token, "access_token": token, "expires_in": 300})

        self.httpd = self.serve_http(Handler)


# ----------------------------------------------------------------------------- registry


class Registry(Substrate):
    """Start/stop ``docker-registry`` on 127.0.0.1 and push generated images to it.

    auth: None (anonymous), "htpasswd" (Basic) or "token" (Bearer via TokenServer).
    users: {name: password} for htpasswd/token; the first user is used by the push helpers.
    private: repository prefixes the token server refuses to anonymous users.
    """

    prefix = "imgarch-registry-"
    start_timeout = 20

    def __init__(self, auth=None, users=None, private=(), binary=REGISTRY_BIN):
        super(Registry, self).__init__()
        if auth not in (None, "htpasswd", "token"):
            raise ValueError("auth must be None, 'htpasswd' or 'token'")
        self.auth = auth
        self.users = dict(users or ({"admin": "admin-pass"} if auth else {}))
        self.private = tuple(private)
        self.binary = binary
        self.proc = None
        self.port = None
        self.token_server = None
        self._tokens = {}

    # ------------------------------------------------------------- lifecycle

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://" + self.host

    @property
    def credentials(self):
        """(user, password) of the first user, or None."""
        return next(iter(self.users.items()), None)

    def _config(self):
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            "    rootdirectory: %s" % self.path("data"),
            "  delete:",
            "    enabled: true",
            "http:",
            "  addr: 127.0.0.1:%d" % self.port,
            "  secret: %s" % uuid.uuid4().hex,
        ]
        if self.auth == "htpasswd":
            path = self.path("htpasswd")
            with open(path, "w") as fh:
                for user, pw in self.users.items():
                    fh.write("%s:%s\n" % (user, bcrypt_hash(pw)))
            lines += ["auth:", "  htpasswd:", "    realm: test-registry", "    path: %s" % path]
        elif self.auth == "token":
            ts = self.token_server
            lines += ["auth:", "  token:", "    realm: %s" % ts.realm, "    service: %s" % ts.service,
                      "    issuer: %s" % ts.issuer, "    rootcertbundle: %s" % ts.keys.bundle]
        path = self.path("config.yml")
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return path

    def _answers(self):
        try:
            urlopen(self.url + "/v2/", timeout=1).close()
            return True
        except HTTPError as exc:
            return exc.code == 401
        except (URLError, OSError):
            return False

    def _start(self):
        if self.auth == "token":
            self.token_server = TokenServer(self.users, self.private).start()
        for attempt in (1, 2, 3):  # a free port can be taken between free_port() and the bind
            self.port = free_port()
            self.proc = self.spawn([self.binary, "serve", self._config()], "registry.log")
            try:
                self.wait_until(self._answers, self.start_timeout, "docker-registry", self.proc, "registry.log")
                return
            except RuntimeError:
                self.kill(self.proc)
                if attempt == 3:
                    raise

    def _stop(self):
        if self.token_server:
            self.token_server.stop()
            self.token_server = None

    def docker_config(self, path, user=None, password=None):
        """Write a docker config.json with credentials for this registry; returns the path."""
        user, password = (user, password) if user else self.credentials
        auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        with open(path, "w") as fh:
            json.dump({"auths": {self.host: {"auth": auth}}}, fh)
        return path

    # ------------------------------------------------------------- API requests (as the pusher)

    def _auth_for(self, repo, challenge):
        user, pw = self.credentials
        if challenge.lower().startswith("basic"):
            return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
        key = repo
        if key not in self._tokens:
            ts = self.token_server
            query = urlencode({"service": ts.service, "scope": "repository:%s:pull,push" % repo})
            req = Request(ts.realm + "?" + query)
            req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode())
            with urlopen(req, timeout=10) as resp:
                self._tokens[key] = json.loads(resp.read())["token"]
        return "Bearer " + self._tokens[key]

    def request(self, method, path, repo, data=None, headers=None):
        """One registry API request with the auth dance. Returns (status, headers, body)."""
        url = path if path.startswith("http") else self.url + path
        auth = None
        for attempt in (1, 2):
            req = Request(url, data=data, method=method, headers=dict(headers or {}))
            if auth:
                req.add_header("Authorization", auth)
            try:
                with urlopen(req, timeout=15) as resp:
                    return resp.status, resp.headers, resp.read()
            except HTTPError as exc:
                if exc.code == 401 and attempt == 1 and self.auth:
                    auth = self._auth_for(repo, exc.headers.get("WWW-Authenticate") or "")
                    continue
                raise RuntimeError("%s %s -> %s %s" % (method, url, exc.code, exc.read()[:300]))
        raise RuntimeError("unreachable")  # pragma: no cover

    def push_blob(self, repo, data):
        digest = sha256(data)
        try:
            self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest), repo)
            return digest
        except RuntimeError:
            pass
        _status, headers, _body = self.request("POST", "/v2/%s/blobs/uploads/" % repo, repo, data=b"")
        location = urljoin(self.url, headers["Location"])
        location += ("&" if "?" in location else "?") + urlencode({"digest": digest})
        self.request("PUT", location, repo, data=data, headers={"Content-Type": "application/octet-stream"})
        return digest

    def put_manifest(self, repo, reference, doc, media_type):
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.request("PUT", "/v2/%s/manifests/%s" % (repo, reference), repo, data=body,
                     headers={"Content-Type": media_type})
        return sha256(body), len(body)

    # ------------------------------------------------------------- image helpers

    def push_image(self, repo, tag=None, arch="amd64", os_name="linux", variant=None, media="oci"):
        """Push a single-platform image (config names its architecture). Returns
        {"digest", "size", "media_type", "platform"}; with tag=None it is pushed by digest only."""
        _index_mt, manifest_mt, config_mt, layer_mt = MEDIA[media]
        layer, diff_id = fake_layer("%s/%s/%s %s" % (os_name, arch, variant or "", repo), arch)
        layer_digest = self.push_blob(repo, layer)
        config = {"architecture": arch, "os": os_name, "config": {"Entrypoint": ["/app"]},
                  "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{"created_by": "test"}]}
        if variant:
            config["variant"] = variant
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = self.push_blob(repo, config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_mt,
            "config": {"mediaType": config_mt, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": layer_mt, "digest": layer_digest, "size": len(layer)}],
        }
        body = json.dumps(manifest, separators=(",", ":")).encode()
        digest = sha256(body)
        self.put_manifest(repo, tag or digest, manifest, manifest_mt)
        platform = {"architecture": arch, "os": os_name}
        if variant:
            platform["variant"] = variant
        return {"digest": digest, "size": len(body), "media_type": manifest_mt, "platform": platform}

    def push_index(self, repo, tag, arches=("amd64", "arm64"), media="oci", attestation=False):
        """Push one image per architecture ("arm64" or "arm/v7") and an OCI image index
        (media="oci") or Docker manifest list (media="docker") over them. Returns its digest."""
        index_mt = MEDIA[media][0]
        entries = []
        for spec in arches:
            arch, _sep, variant = spec.partition("/")
            img = self.push_image(repo, None, arch=arch, variant=variant or None, media=media)
            entries.append({"mediaType": img["media_type"], "digest": img["digest"], "size": img["size"],
                            "platform": img["platform"]})
        if attestation:  # what buildx adds: an unknown/unknown entry that must be ignored
            img = self.push_image(repo, None, arch="unknown", os_name="unknown", media=media)
            entries.append({"mediaType": img["media_type"], "digest": img["digest"], "size": img["size"],
                            "platform": {"architecture": "unknown", "os": "unknown"},
                            "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                            "vnd.docker.reference.digest": entries[0]["digest"]}})
        index = {"schemaVersion": 2, "mediaType": index_mt, "manifests": entries}
        digest, _size = self.put_manifest(repo, tag, index, index_mt)
        return digest

    def push_manifest_list(self, repo, tag, arches=("amd64", "arm64")):
        """Docker manifest list (application/vnd.docker.distribution.manifest.list.v2+json)."""
        return self.push_index(repo, tag, arches, media="docker")
