#!/usr/bin/python3
"""Writes an OCI image layout whose second layer is hostile, for hostile_test.cc.

usage: make_hostile_layout.py LAYOUT BUSYBOX_ROOTFS HOST_DIR MODE

Layer 1 is the busybox root filesystem (so the image can RUN).  Layer 2 holds entries that try
to reach HOST_DIR (a directory of the test, holding sentinel files) from inside the snapshot.
MODE "links" (an image one can build from):
  /abs-file               an absolute member name (a regular file)
  evil-abs                symlink -> HOST_DIR/sentinel-dir             (absolute)
  evil-rel                symlink -> "../" x 30 + HOST_DIR/sentinel-dir (relative, climbing out)
  evil-abs/through-link   a file written "through" the symlink of the same layer
  shadow-link             symlink -> /etc/shadow
  hard-in                 hardlink -> abs-file (inside the layer: fine)
MODE "dotdot": also a regular file named "../" x 30 + HOST_DIR/escaped-dotdot.
MODE "hardlink-rel": also hard-out, a hardlink -> "../" x 30 + HOST_DIR/sentinel-file.
MODE "hardlink-abs": also hard-abs, a hardlink -> HOST_DIR/sentinel-file (absolute link name).
Uncompressed layers (application/vnd.oci.image.layer.v1.tar); the image is tagged "latest".
"""
import hashlib
import io
import json
import os
import sys
import tarfile

layout, rootfs, host = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/")
mode = sys.argv[4]
up = "../" * 30 + host.lstrip("/")
os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)


def put_blob(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def busybox_layer():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in sorted(os.listdir(rootfs)):
            t.add(os.path.join(rootfs, name), arcname=name)
    return buf.getvalue()


def hostile_layer():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add(name, kind, data=b"", link=""):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o644 if kind != tarfile.SYMTYPE else 0o777
            info.mtime = 1700000000
            info.linkname = link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("/abs-file", tarfile.REGTYPE, b"absolute member\n")
        add("evil-abs", tarfile.SYMTYPE, link=host + "/sentinel-dir")
        add("evil-rel", tarfile.SYMTYPE, link=up + "/sentinel-dir")
        add("evil-abs/through-link", tarfile.REGTYPE, b"written through a link\n")
        add("shadow-link", tarfile.SYMTYPE, link="/etc/shadow")
        add("hard-in", tarfile.LNKTYPE, link="abs-file")
        if mode == "dotdot":
            add(up + "/escaped-dotdot", tarfile.REGTYPE, b"escaped via dotdot\n")
        elif mode == "hardlink-rel":
            add("hard-out", tarfile.LNKTYPE, link=up + "/sentinel-file")
        elif mode == "hardlink-abs":
            add("hard-abs", tarfile.LNKTYPE, link=host + "/sentinel-file")
        elif mode != "links":
            sys.exit("unknown mode " + mode)
    return buf.getvalue()


layers = [busybox_layer(), hostile_layer()]
descs, diff_ids = [], []
for data in layers:
    d, n = put_blob(data)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
    diff_ids.append(d)
config = {
    "architecture": "amd64",
    "os": "linux",
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "history": [{"created_by": "busybox"}, {"created_by": "hostile"}],
}
cd, cn = put_blob(json.dumps(config).encode())
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
    "layers": descs,
}
md, mn = put_blob(json.dumps(manifest).encode())
index = {
    "schemaVersion": 2,
    "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
        "platform": {"architecture": "amd64", "os": "linux"},
    }],
}
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(layout, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
