#!/usr/bin/python3
"""A small HTTP server for the http source tests.

Serves files of --root on 127.0.0.1 (port written to --port-file) with Last-Modified from the
file's mtime, plus:
  /redirect/<name>     302 to /<name>
  /disposition/<name>  the file <name>, with Content-Disposition: attachment; filename="<name>.bin"
  /slow/<name>         the file, dribbled out one byte every 0.2 s
Unknown paths are 404.  Every request is appended to --log as "METHOD PATH".
"""

import argparse
import email.utils
import http.server
import os
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    log_lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def send_file(self, name, extra=None, slow=False):
            path = os.path.join(args.root, os.path.basename(name))
            if not os.path.isfile(path):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with open(path, "rb") as f:
                data = f.read()
            mtime = os.stat(path).st_mtime
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Last-Modified", email.utils.formatdate(mtime, usegmt=True))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if slow:
                for b in data:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.2)
            else:
                self.wfile.write(data)

        def do_GET(self):
            with log_lock, open(args.log, "a") as f:
                f.write("GET %s\n" % self.path)
            p = self.path.split("?")[0]
            if p.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", "/" + p[len("/redirect/"):])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif p.startswith("/disposition/"):
                name = p[len("/disposition/"):]
                self.send_file(name, {"Content-Disposition":
                                      'attachment; filename="%s.bin"' % name})
            elif p.startswith("/slow/"):
                self.send_file(p[len("/slow/"):], slow=True)
            else:
                self.send_file(p.lstrip("/"))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
