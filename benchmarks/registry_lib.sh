# Shared by the registry benchmarks (source it): throwaway docker-registry instances on loopback.
# Needs WORK (a directory), PY (a python3) and a PIDS array that the caller's cleanup kills.

free_port() { $PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }

# start_registry NAME: starts a registry storing into $WORK/NAME-data and sets REG_HOST to its
# host:port.  Not to be called in $(...): its PID must reach PIDS in this shell, so that the
# cleanup stops it.
start_registry() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$WORK/$name-data"
  cat > "$WORK/$name.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/$name-data
http:
  addr: 127.0.0.1:$port
  secret: bench
YML
  docker-registry serve "$WORK/$name.yml" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
    sleep 0.05
  done
  curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || { echo "registry $name did not start" >&2; exit 1; }
  REG_HOST="127.0.0.1:$port"
}
