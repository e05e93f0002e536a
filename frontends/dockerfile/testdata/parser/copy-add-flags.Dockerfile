FROM alpine AS src
FROM alpine
COPY --from=src /etc/os-release /tmp/
COPY --from=0 / /rootfs/
COPY --chown=user:group --chmod=644 a b /dst/
COPY --link --from=src /bin/busybox /bin/
COPY --link=false x /y
COPY -- --weird-name /dst
ADD --chown=1:1 https://example.com/file.tar.gz /tmp/
ADD --keep-git-dir=true https://github.com/moby/buildkit.git#v0.11.6 /src
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/x /x
ADD archive.tar.gz /extract/
