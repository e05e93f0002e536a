#!/usr/bin/python3
"""A fault-injecting HTTP/1.1 proxy for registry tests.

Listens on 127.0.0.1 (port written to --port-file) and forwards every request to --upstream
(host:port), keeping the Host header so the registry's Location URLs point back at the proxy.
Rules (--rules, a JSON list) pick requests by method and path regex and by count among the
requests matching that rule, and do one of:

  drop           read the request, close the connection without an answer
  drop_mid_body  read half the request body, then close
  drop_after     forward the request, then close without passing the answer on
  status         answer `status` (500, 429, 416, ...) with a registry JSON error body, and
                 `retry_after` as Retry-After when given; nothing is forwarded
  stall          read the request, then hold the connection silent for `stall` seconds
  corrupt        forward, then flip one byte in the middle of the answer's body
  truncate       forward, then send the headers and half the body, and close

A rule {"method": "PUT", "path": "/blobs/uploads/", "nth": 2, "count": 1, "action": "drop"}
fires on the 2nd matching request only; an optional "query" regex must match the query string.  Every request is logged as a JSON line (n, method,
path without query, upstream status or injected status, action) to --log.
"""

import argparse
import json
import os
import re
import socket
import socketserver
import threading
import time


class Rule:
    def __init__(self, spec):
        self.method = spec.get("method", "")
        self.path = re.compile(spec.get("path", ""))
        self.query = re.compile(spec.get("query", ""))
        self.nth = int(spec.get("nth", 1))
        self.count = int(spec.get("count", 1))
        self.action = spec["action"]
        self.status = int(spec.get("status", 500))
        self.retry_after = spec.get("retry_after")
        self.stall = float(spec.get("stall", 30))
        self.seen = 0

    def matches(self, method, path, query):
        return ((not self.method or self.method == method) and self.path.search(path)
                and self.query.search(query))


class State:
    def __init__(self, rules, log_path):
        self.rules = [Rule(r) for r in rules]
        self.lock = threading.Lock()
        self.n = 0
        self.log_path = log_path

    def decide(self, method, path, query):
        with self.lock:
            self.n += 1
            n = self.n
            chosen = None
            for r in self.rules:
                if r.matches(method, path, query):
                    r.seen += 1
                    if chosen is None and r.nth <= r.seen < r.nth + r.count:
                        chosen = r
            return n, chosen

    def log(self, entry):
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def read_head(rf):
    line = rf.readline(65536)
    if not line:
        return None
    while line in (b"\r\n", b"\n"):
        line = rf.readline(65536)
        if not line:
            return None
    start = line.decode("latin-1").rstrip("\r\n")
    headers = []
    while True:
        h = rf.readline(65536)
        if not h or h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))
    return start, headers


def header(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def read_body(rf, headers, limit=None):
    """Reads a message body (Content-Length or chunked); with `limit`, stops after that many."""
    te = header(headers, "Transfer-Encoding")
    if te and "chunked" in te.lower():
        out = bytearray()
        while True:
            size_line = rf.readline(65536)
            if not size_line:
                raise ConnectionError("eof in chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while rf.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += rf.read(size)
            rf.readline(65536)
            if limit is not None and len(out) >= limit:
                return bytes(out)
    n = int(header(headers, "Content-Length") or "0")
    if limit is not None:
        n = min(n, limit)
    data = rf.read(n) if n else b""
    if len(data) != n:
        raise ConnectionError("eof in body")
    return data


HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-connection", "content-length"}


def forward(upstream, method, target, headers, body):
    """Sends one request upstream on a fresh connection; returns (status line, headers, body)."""
    host, port = upstream.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    try:
        lines = [f"{method} {target} HTTP/1.1"]
        for k, v in headers:
            if k.lower() not in HOP:
                lines.append(f"{k}: {v}")
        lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        rf = s.makefile("rb")
        head = read_head(rf)
        if head is None:
            raise ConnectionError("upstream closed")
        status_line, rheaders = head
        status = int(status_line.split()[1])
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            rbody = b""
        elif header(rheaders, "Content-Length") is None and not header(rheaders, "Transfer-Encoding"):
            rbody = rf.read()
        else:
            rbody = read_body(rf, rheaders)
        return status_line, rheaders, rbody
    finally:
        s.close()


def send_response(wfile, status_line, headers, body, method, keep_length_header=False):
    lines = [status_line]
    for k, v in headers:
        if k.lower() in HOP:
            if k.lower() == "content-length" and method == "HEAD":
                lines.append(f"{k}: {v}")  # a HEAD's length describes the entity
            continue
        lines.append(f"{k}: {v}")
    if method != "HEAD":
        lines.append(f"Content-Length: {len(body)}")
    wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if method != "HEAD":
        wfile.write(body)
    wfile.flush()


ERROR_CODES = {500: "UNKNOWN", 502: "UNKNOWN", 503: "UNAVAILABLE", 429: "TOOMANYREQUESTS",
               416: "BLOB_UPLOAD_INVALID", 404: "BLOB_UNKNOWN"}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        st = self.server.state
        while True:
            try:
                head = read_head(self.rfile)
            except (ConnectionError, OSError):
                return
            if head is None:
                return
            start, headers = head
            parts = start.split()
            if len(parts) < 2:
                return
            method, target = parts[0], parts[1]
            path, _, query = target.partition("?")
            n, rule = st.decide(method, path, query)
            action = rule.action if rule else "forward"
            entry = {"n": n, "t": round(time.time(), 3), "method": method, "path": path,
                     "action": action}
            try:
                if action == "drop_mid_body":
                    n_body = int(header(headers, "Content-Length") or "0")
                    read_body(self.rfile, headers, limit=n_body // 2)
                    entry["status"] = 0
                    st.log(entry)
                    return
                body = read_body(self.rfile, headers)
                if action == "drop":
                    entry["status"] = 0
                    st.log(entry)
                    return
                if action == "stall":
                    entry["status"] = 0
                    st.log(entry)
                    time.sleep(rule.stall)
                    return
                if action == "status":
                    code = ERROR_CODES.get(rule.status, "UNKNOWN")
                    rbody = json.dumps({"errors": [{"code": code,
                                                    "message": "injected by fault proxy"}]}).encode()
                    rh = [("Content-Type", "application/json")]
                    if rule.retry_after is not None:
                        rh.append(("Retry-After", str(rule.retry_after)))
                    entry["status"] = rule.status
                    st.log(entry)
                    send_response(self.wfile, f"HTTP/1.1 {rule.status} Injected", rh, rbody, method)
                    continue
                status_line, rheaders, rbody = forward(self.server.upstream, method, target,
                                                       headers, body)
                entry["status"] = int(status_line.split()[1])
                st.log(entry)
                if action == "drop_after":
                    return
                if action == "corrupt" and rbody:
                    i = len(rbody) // 2
                    rbody = rbody[:i] + bytes([rbody[i] ^ 0xFF]) + rbody[i + 1:]
                if action == "truncate" and method != "HEAD":
                    lines = [status_line] + [f"{k}: {v}" for k, v in rheaders
                                             if k.lower() not in HOP]
                    lines.append(f"Content-Length: {len(rbody)}")
                    self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                    self.wfile.write(rbody[:len(rbody) // 2])
                    self.wfile.flush()
                    return
                send_response(self.wfile, status_line, rheaders, rbody, method)
            except (ConnectionError, OSError) as e:
                entry["error"] = str(e)
                st.log(entry)
                return


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--rules", default="[]")
    args = ap.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    server.upstream = args.upstream
    server.state = State(json.loads(args.rules), args.log)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
