#!/usr/bin/env bash
# Makes a minimal root filesystem from Debian's busybox-static in DIR: /bin/busybox, one symlink
# per applet, /etc/passwd and /etc/group (root, nobody, app), /tmp with mode 1777.  It is the
# base image of the README's main job and of the integration tests (no registry is reachable).
set -euo pipefail
dir=${1:?usage: busybox-rootfs.sh DIR}
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "busybox-rootfs: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home/app,var,proc,sys,dev}
cp "$busybox" "$dir/bin/busybox"
for applet in $("$busybox" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$dir/$(dirname "$applet")"
  ln -sf /bin/busybox "$dir/$applet"
done
cat > "$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$dir/etc/group" <<'GROUP'
root:x:0:
app:x:1000:
nogroup:x:65534:
GROUP
chmod 1777 "$dir/tmp"
chown 1000:1000 "$dir/home/app"
