# syntax=docker/dockerfile:1.4
FROM debian:bookworm-slim
RUN <<EOF
set -e
apt-get update
apt-get install -y --no-install-recommends curl
rm -rf /var/lib/apt/lists/*
EOF
RUN <<-"SCRIPT" bash
	echo "tabs are stripped, $HOME is not expanded"
	SCRIPT
COPY <<config.ini <<'raw.txt' /etc/app/
[server]
port = ${PORT}
config.ini
literal ${NOT_EXPANDED}
raw.txt
RUN python3 <<PY > /tmp/out.txt
print("hello from python")
PY
RUN 3<<IN cat /dev/fd/3
fd three
IN
ADD <<E"O"F /partially-quoted
$NOT_EXPANDED
EOF
RUN cat <<A <<B
first
A
second
B
ONBUILD RUN <<EOT
echo onbuild heredoc
EOT
RUN ["echo", "<<NOT_A_HEREDOC"]
RUN echo '<<NOT_EITHER'
