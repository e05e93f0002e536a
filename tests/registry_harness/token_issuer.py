#!/usr/bin/python3
"""A Docker registry token issuer for tests (distribution's token auth spec).

Generates an EC P-256 key and a self-signed certificate at start-up (the registry trusts the
certificate through auth.token.rootcertbundle), then serves the realm on 127.0.0.1:

  GET  /token?service=S&scope=repository:NAME:pull,push&scope=...   (Basic auth or anonymous)
  POST /token   grant_type=refresh_token&refresh_token=..&service=..&scope=..   (OAuth2; how
                Docker identity tokens and ACR refresh tokens are traded)
  POST /token   grant_type=password&username=..&password=..&service=..&scope=..

Authenticated users get every action they ask for; anonymous requests get "pull" only with
--anonymous-pull, nothing otherwise.  Wrong credentials get 401.  Every request is logged as one
JSON line (method, grant, scopes, user, outcome) without any secret.

The port is written to --port-file once the certificate exists and the socket listens.
"""

import argparse
import base64
import datetime
import http.server
import json
import os
import socketserver
import threading
import time
import urllib.parse
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_key_and_cert(cert_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiln-test-token-issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True)
        .sign(key, hashes.SHA256())
    )
    with open(cert_path + ".tmp", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    os.rename(cert_path + ".tmp", cert_path)
    return key, cert


def parse_scope(scope):
    # "repository:name:pull,push" (the name may contain ':' for a port-less path, never here)
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    return {"type": parts[0], "name": ":".join(parts[1:-1]),
            "actions": [a for a in parts[-1].split(",") if a]}


class Issuer:
    def __init__(self, args):
        self.args = args
        self.users = dict(u.split(":", 1) for u in args.user)
        self.refresh_tokens = set(args.refresh_token)
        self.key, self.cert = make_key_and_cert(args.cert_out)
        self.x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        self.log_lock = threading.Lock()

    def log(self, entry):
        with self.log_lock, open(self.args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def token(self, subject, scopes, service, anonymous):
        access = []
        for s in scopes:
            p = parse_scope(s)
            if not p or p["type"] != "repository":
                continue
            actions = p["actions"] if not anonymous else (
                ["pull"] if self.args.anonymous_pull and "pull" in p["actions"] else [])
            access.append({"type": "repository", "name": p["name"], "actions": actions})
        now = int(time.time())
        claims = {
            "iss": self.args.issuer, "sub": subject, "aud": service,
            "exp": now + self.args.expires_in, "nbf": now - 10, "iat": now,
            "jti": str(uuid.uuid4()), "access": access,
        }
        tok = jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": [self.x5c]})
        return tok, access


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):  # quiet: our own JSON log is the record
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def deny(self, entry):
        entry["outcome"] = "denied"
        self.server.issuer.log(entry)
        self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}]})

    def grant(self, entry, user, scopes, service):
        issuer = self.server.issuer
        tok, access = issuer.token(user or "", scopes, service, anonymous=not user)
        entry.update(outcome="granted", access=access)
        issuer.log(entry)
        body = {"token": tok, "access_token": tok, "expires_in": issuer.args.expires_in,
                "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        self.reply(200, body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        scopes = q.get("scope", [])
        service = (q.get("service") or [""])[0]
        entry = {"method": "GET", "grant": "basic", "scopes": scopes, "service": service}
        users = self.server.issuer.users
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, pw = base64.b64decode(auth[6:]).decode().split(":", 1)
            except Exception:
                return self.deny(entry)
            entry["user"] = user
            if users.get(user) != pw:
                return self.deny(entry)
            return self.grant(entry, user, scopes, service)
        entry["grant"] = "anonymous"
        return self.grant(entry, None, scopes, service)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        get = lambda k: (form.get(k) or [""])[0]
        scopes = [s for s in get("scope").split(" ") if s]
        service = get("service")
        grant_type = get("grant_type")
        entry = {"method": "POST", "grant": grant_type, "scopes": scopes, "service": service}
        issuer = self.server.issuer
        if grant_type == "refresh_token":
            if get("refresh_token") not in issuer.refresh_tokens:
                return self.deny(entry)
            return self.grant(entry, "refresh-token-user", scopes, service)
        if grant_type == "password":
            entry["user"] = get("username")
            if issuer.users.get(get("username")) != get("password"):
                return self.deny(entry)
            return self.grant(entry, get("username"), scopes, service)
        entry["outcome"] = "unsupported"
        issuer.log(entry)
        self.reply(400, {"error": "unsupported_grant_type"})


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cert-out", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--issuer", default="kiln-test-issuer")
    ap.add_argument("--user", action="append", default=[], help="USER:PASSWORD")
    ap.add_argument("--refresh-token", action="append", default=[])
    ap.add_argument("--expires-in", type=int, default=300)
    ap.add_argument("--anonymous-pull", action="store_true")
    args = ap.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    server.issuer = Issuer(args)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
