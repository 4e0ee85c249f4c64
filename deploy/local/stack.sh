#!/usr/bin/env bash
# Local infrastructure for development and integration tests, without Docker:
#   - Apache Kafka 4.x, single node in KRaft mode (broker + controller in one JVM), built from the
#     jars on Maven Central (deploy/kafka/pom.xml), listening on 127.0.0.1:9092 (PLAINTEXT),
#     :9093 (controller) and :9094 (SASL_PLAINTEXT with ACLs: user slm / slm-secret, SCRAM-SHA-256, an
#     administrator; the KafkaUsers of deploy/k8s/base/kafka/users.yaml, SCRAM-SHA-512, <name>-local-secret,
#     each with exactly the ACLs listed there);
#   - PostgreSQL: whatever already answers on 127.0.0.1:5432 as user postgres, otherwise a private
#     cluster on 127.0.0.1:55432 whose data lives under .stack/pg. Each service database gets the roles
#     <db>_owner (may migrate) and <db>_app (rows only, cannot change the schema): the services started by
#     the demo and the tests run as <db>_app (*_APP_DATABASE_URL), migrations and test fixtures as postgres.
#
# Usage: deploy/local/stack.sh up|down|status|env|reset
#   up      start what is not running (idempotent), ensure the databases, write .stack/env, print it
#   down    stop Kafka and the private PostgreSQL; fail if a process of this stack is left
#   status  say what runs
#   env     print the KEY=value lines (the same as .stack/env)
#   reset   wipe Kafka's data and drop + recreate the service databases (a clean test run)
#
# Everything generated lives in <repo>/.stack (git-ignored). The repo root is found from this file's
# location, so a clone anywhere works. Needs: JDK 17+, Maven, and the project's .venv (uv sync).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
STACK_DIR="$REPO_ROOT/.stack"
PY="$REPO_ROOT/.venv/bin/python"
ENV_FILE="$STACK_DIR/env"

KAFKA_SRC="$REPO_ROOT/deploy/kafka"
KAFKA_DIR="$STACK_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CONF="$KAFKA_DIR/server.properties"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/broker.log"  # written by log4j2 (deploy/kafka/log4j2.xml)
KAFKA_OUT="$KAFKA_DIR/kafka.out"   # the JVM's own stdout/stderr (crashes before logging starts)
KAFKA_HOST=127.0.0.1
# Ports can be moved (SLM_*_PORT) so a second checkout, e.g. a CI dry run, can run beside this one.
KAFKA_PORT=${SLM_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${SLM_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_SASL_PORT=${SLM_KAFKA_SASL_PORT:-9094}
KAFKA_READY_TIMEOUT=60
# Kept for `kafka.tools.StorageTool format --add-scram`; a later test exercises the SASL settings.
KAFKA_SCRAM_USER=slm
KAFKA_SCRAM_PASSWORD=slm-secret
# A marker on the JVM's command line: lets `down`/`status` find a broker of *this* checkout even if
# its pid file was lost, without matching any other java process on the machine.
KAFKA_MARKER="-Dslm.stack.dir=$STACK_DIR"

PG_DIR="$STACK_DIR/pg"
PG_HOST=127.0.0.1
PG_SYSTEM_PORT=5432
PG_PRIVATE_PORT=${SLM_PG_PORT:-55432}
PG_STATE="$PG_DIR/state"  # "external <port>" or "private <port> <data dir>", decided once by `up`
DATABASES=(intake sla_engine reporting)

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

need_python() {
  [[ -x "$PY" ]] || die "no $PY: run 'uv sync' in $REPO_ROOT first"
}

# True when something accepts TCP connections on host:port (bash's /dev/tcp, no nc needed).
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# ---------------------------------------------------------------------------------------------------
# Kafka
# ---------------------------------------------------------------------------------------------------

# The jars come from Maven Central once and are cached in .stack/kafka/libs. The cache key is the
# pom's hash, so editing the Kafka or log4j version refetches and nothing else does.
kafka_fetch_jars() {
  command -v java >/dev/null || die "java not found (Kafka 4.x needs a JDK/JRE 17+)"
  local want have=""
  want="$(sha256sum "$KAFKA_SRC/pom.xml" | cut -d' ' -f1)"
  [[ -f "$KAFKA_LIBS/.pom.sha256" ]] && have="$(cat "$KAFKA_LIBS/.pom.sha256")"
  if [[ "$want" == "$have" ]] && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found: needed once to fetch the Kafka jars"
  log "fetching the Kafka jars with Maven (first run only)..."
  rm -rf "$KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  # The pom only lists dependencies (packaging pom): nothing is built or written under deploy/.
  # includeScope=runtime is exactly what the broker needs at run time.
  # Output to a file (even -q prints colour codes); shown only when Maven fails.
  mvn -B -q -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >"$KAFKA_DIR/mvn.log" 2>&1 \
    || { cat "$KAFKA_DIR/mvn.log" >&2; die "Maven could not fetch the Kafka jars (see above)"; }
  compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null || die "Maven ran but copied no kafka_2.13 jar"
  printf '%s\n' "$want" >"$KAFKA_LIBS/.pom.sha256"
}

# Regenerated on every `up` from the template, so a template edit applies on the next start.
kafka_render_config() {
  mkdir -p "$KAFKA_DATA"
  sed -e "s|@KAFKA_DATA_DIR@|$KAFKA_DATA|g" -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@KAFKA_SASL_PORT@|$KAFKA_SASL_PORT|g" \
    "$KAFKA_SRC/server.properties.template" >"$KAFKA_CONF"
}

kafka_java() {
  # The classpath wildcard must reach java unexpanded; log4j2 reads kafka.logs.dir from the config.
  java -cp "$KAFKA_LIBS/*" \
    -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.xml" \
    -Dkafka.logs.dir="$KAFKA_DIR" \
    "$@"
}

# Format only a fresh data dir: `format` refuses a formatted one, and reformatting would lose topics.
kafka_format() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local cluster_id
  # A Kafka Uuid is 16 random bytes, base64url without padding; Kafka's own random-uuid avoids a
  # leading '-' (it reads as a CLI option), and so do we.
  cluster_id="$("$PY" -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s)
        break
')"
  log "formatting Kafka storage (cluster id $cluster_id)"
  # --standalone: this node alone is the initial controller quorum (goes with
  # controller.quorum.bootstrap.servers). --add-scram writes the SCRAM credential into the
  # bootstrap metadata, so the SASL listener has a user from the first start.
  kafka_java kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$KAFKA_CONF" \
    --add-scram "SCRAM-SHA-256=[name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD]" \
    >"$KAFKA_DIR/format.out" 2>&1 \
    || { cat "$KAFKA_DIR/format.out" >&2; die "kafka storage format failed"; }
}

# The pid in the pid file, if that process is alive and is our broker (pids get reused).
kafka_pid() {
  local pid
  [[ -f "$KAFKA_PID" ]] || return 1
  pid="$(cat "$KAFKA_PID")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "kafka.Kafka" || return 1
  printf '%s\n' "$pid"
}

# Pids of any broker JVM of this checkout, found by the marker (pid file or not).
kafka_stray_pids() {
  pgrep -f -- "$KAFKA_MARKER" || true
}

kafka_start() {
  local pid
  if pid="$(kafka_pid)"; then
    log "Kafka already running (pid $pid)"
    return 0
  fi
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    die "something else listens on $KAFKA_HOST:$KAFKA_PORT (not this stack's broker): stop it first"
  fi
  kafka_fetch_jars
  kafka_render_config
  kafka_format
  log "starting Kafka"
  # setsid: own session, so a Ctrl-C in the terminal that ran `up` does not reach the broker later.
  # nohup + redirections: the broker must not hold the caller's terminal or pipes (CI would hang
  # waiting for EOF), nor fd 9, the stack lock (it would hold the lock for its whole life).
  # setsid execs in place here (a background child is no group leader), so $! is the JVM's pid.
  nohup setsid java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    "$KAFKA_MARKER" \
    -cp "$KAFKA_LIBS/*" \
    -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.xml" \
    -Dkafka.logs.dir="$KAFKA_DIR" \
    kafka.Kafka "$KAFKA_CONF" \
    </dev/null >"$KAFKA_OUT" 2>&1 9>&- &
  printf '%s\n' "$!" >"$KAFKA_PID"
}

kafka_fail() {
  log "$1; last lines of $KAFKA_LOG:"
  tail -n 40 "$KAFKA_LOG" >&2 2>/dev/null || true
  if [[ -s "$KAFKA_OUT" ]]; then
    log "last lines of $KAFKA_OUT:"
    tail -n 20 "$KAFKA_OUT" >&2
  fi
  exit 1
}

# Ready means a real metadata round trip that lists this broker, not a log line or an open port.
kafka_wait_ready() {
  local deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
  while ! port_open "$KAFKA_HOST" "$KAFKA_PORT"; do
    kafka_pid >/dev/null || kafka_fail "the Kafka process exited during startup"
    ((SECONDS < deadline)) || kafka_fail "Kafka did not open $KAFKA_HOST:$KAFKA_PORT in ${KAFKA_READY_TIMEOUT}s"
    sleep 0.2
  done
  local left=$((deadline - SECONDS))
  ((left > 0)) || left=1
  "$PY" - "$KAFKA_HOST:$KAFKA_PORT" "$left" <<'PY' || kafka_fail "Kafka did not answer a metadata request"
import asyncio, sys, time
from aiokafka.admin import AIOKafkaAdminClient

async def main(bootstrap: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            await admin.list_topics()
            if cluster.get("brokers"):
                return
            last = "no broker registered yet"
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = repr(exc)
        finally:
            try:
                await admin.close()
            except Exception:  # noqa: BLE001 - closing a half-started client
                pass
        await asyncio.sleep(0.3)
    sys.exit(f"metadata call failed: {last}")

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
PY
}

# The production KafkaUsers (SCRAM credentials and ACLs) onto the SASL listener, through the PLAINTEXT one
# (its principal is a super user). Idempotent: runs on every `up`, so an edited users.yaml applies at once.
kafka_apply_users() {
  (cd "$REPO_ROOT" && "$PY" -m scripts.kafka_users "$KAFKA_HOST:$KAFKA_PORT") \
    || kafka_fail "could not apply the Kafka users and ACLs (deploy/k8s/base/kafka/users.yaml)"
}

# SIGTERM lets the broker flush and close cleanly (fast restart, no log recovery); SIGKILL after 20 s.
stop_pid() {
  local pid="$1" what="$2" waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= 200)); then
      log "$what (pid $pid) ignored SIGTERM for 20s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

kafka_stop() {
  local pid
  if pid="$(kafka_pid)"; then
    log "stopping Kafka (pid $pid)"
    stop_pid "$pid" Kafka
  fi
  rm -f "$KAFKA_PID"
  # A broker of this checkout whose pid file was lost or overwritten: stop it too, by its own pid.
  for pid in $(kafka_stray_pids); do
    log "stopping a Kafka of this stack without pid file (pid $pid)"
    stop_pid "$pid" Kafka
  done
}

# ---------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------

# Newest installed server binaries (Debian keeps them out of PATH, per major version).
pg_bindir() {
  local best
  # Highest major version, compared numerically (a lexical glob puts "9" after "17").
  # (`if`, not `&&`: under pipefail a loop ending on a false test would fail the whole assignment.)
  best="$(for d in /usr/lib/postgresql/*/bin; do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; fi
  done | sort -t/ -k5,5n | tail -n1)"
  if [[ -z "$best" ]] && command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    best="$(dirname "$(command -v initdb)")"
  fi
  [[ -n "$best" ]] && printf '%s\n' "$best"
}

pg_install_if_missing() {
  pg_bindir >/dev/null && return 0
  [[ "$(id -u)" == 0 ]] || die "PostgreSQL server binaries not found; install Debian's 'postgresql' package"
  log "installing PostgreSQL from Debian's packages"
  # The package's own cluster (Debian's "main" on 5432) plays no part: the private cluster below is
  # used, and once a private cluster exists it is preferred over anything on 5432.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
  pg_bindir >/dev/null || die "installed postgresql but found no initdb under /usr/lib/postgresql"
}

# Can we use a server at host:port as user postgres (trust, or PGPASSWORD from the environment)?
pg_can_connect() {
  "$PY" - "$1" "$2" <<'PY' 2>/dev/null
import asyncio, sys
import asyncpg

async def main(host: str, port: int) -> None:
    conn = await asyncpg.connect(host=host, port=port, user="postgres", database="postgres", timeout=3)
    await conn.fetchval("select 1")
    await conn.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
PY
}

# Run a PostgreSQL binary as the cluster's OS user: initdb and postgres refuse to run as root.
# From /: the postgres user may not be allowed into the caller's working directory.
pg_as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# The private cluster's home (data/ and postgres.log in it): .stack/pg, owned by the postgres user
# when we are root. If that user cannot reach it (the checkout sits under a directory it may not
# enter, e.g. a `mktemp -d` clone), a per-checkout directory in /tmp instead, recorded in $PG_STATE.
pg_private_home() {
  if [[ "$(id -u)" != 0 ]]; then
    printf '%s\n' "$PG_DIR"
    return
  fi
  if ! id postgres >/dev/null 2>&1; then
    log "creating the system user 'postgres' to own the private cluster"
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
  fi
  chown postgres: "$PG_DIR"
  if runuser -u postgres -- test -w "$PG_DIR"; then
    printf '%s\n' "$PG_DIR"
  else
    local alt
    alt="/tmp/slm-stack-pg-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)"
    log "user postgres cannot enter $PG_DIR (a parent directory is closed): using $alt"
    mkdir -p "$alt"
    chown postgres: "$alt"
    chmod 700 "$alt"
    printf '%s\n' "$alt"
  fi
}

# Decide once where PostgreSQL comes from and remember it in $PG_STATE:
#   - a private cluster made earlier by this script wins (its data is ours);
#   - else a server already answering on 127.0.0.1:5432 as postgres;
#   - else a new private cluster on 55432.
pg_decide() {
  mkdir -p "$PG_DIR"
  if [[ -f "$PG_STATE" ]]; then
    read -r PG_MODE PG_PORT PG_HOME <"$PG_STATE"
    return 0
  fi
  need_python
  if port_open "$PG_HOST" "$PG_SYSTEM_PORT"; then
    if pg_can_connect "$PG_HOST" "$PG_SYSTEM_PORT"; then
      log "using the PostgreSQL that answers on $PG_HOST:$PG_SYSTEM_PORT"
      PG_MODE=external PG_PORT=$PG_SYSTEM_PORT PG_HOME=-
      printf '%s %s %s\n' "$PG_MODE" "$PG_PORT" "$PG_HOME" >"$PG_STATE"
      return 0
    fi
    log "a server answers on $PG_HOST:$PG_SYSTEM_PORT but not to user postgres: using a private cluster"
  fi
  pg_install_if_missing
  PG_MODE=private PG_PORT=$PG_PRIVATE_PORT PG_HOME="$(pg_private_home)"
  printf '%s %s %s\n' "$PG_MODE" "$PG_PORT" "$PG_HOME" >"$PG_STATE"
}

pg_private_running() {
  local bin
  bin="$(pg_bindir)" || return 1
  [[ -f "$PG_HOME/data/PG_VERSION" ]] || return 1
  pg_as_owner "$bin/pg_ctl" -D "$PG_HOME/data" status >/dev/null 2>&1
}

pg_private_start() {
  local bin
  pg_install_if_missing
  bin="$(pg_bindir)"
  if [[ ! -f "$PG_HOME/data/PG_VERSION" ]]; then
    log "initialising a private PostgreSQL cluster in $PG_HOME/data"
    rm -rf "$PG_HOME/data"
    # Trust on loopback only: a throwaway development cluster; -U postgres makes the superuser
    # 'postgres' whoever runs initdb.
    pg_as_owner "$bin/initdb" -D "$PG_HOME/data" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C --no-instructions >"$PG_HOME/initdb.log" 2>&1 \
      || { cat "$PG_HOME/initdb.log" >&2; die "initdb failed"; }
    # fsync/full_page_writes off: faster, and losing this cluster in an OS crash is acceptable.
    # synchronous_commit stays on (default): tests rely on a committed row being committed.
    # No Unix socket: TCP on loopback only, so no clash with /var/run/postgresql and no path limit.
    cat >>"$PG_HOME/data/postgresql.conf" <<EOF

# --- deploy/local/stack.sh ---
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 300
fsync = off
full_page_writes = off
EOF
  fi
  if pg_private_running; then
    log "private PostgreSQL already running on $PG_HOST:$PG_PORT"
    return 0
  fi
  if port_open "$PG_HOST" "$PG_PORT"; then
    die "something else listens on $PG_HOST:$PG_PORT: stop it first"
  fi
  log "starting the private PostgreSQL on $PG_HOST:$PG_PORT"
  # -w waits until the server accepts connections; the log goes next to the data dir (owner-writable).
  # 9>&-: the server must not inherit the stack lock's fd.
  pg_as_owner "$bin/pg_ctl" -D "$PG_HOME/data" -l "$PG_HOME/postgres.log" -w -t 60 start >/dev/null 9>&- \
    || { tail -n 30 "$PG_HOME/postgres.log" >&2; die "PostgreSQL did not start"; }
}

pg_private_stop() {
  local bin
  bin="$(pg_bindir)" || return 0
  [[ -f "$PG_HOME/data/PG_VERSION" ]] || return 0
  if pg_private_running; then
    log "stopping the private PostgreSQL"
    # fast: roll back open transactions and disconnect clients, no waiting for them to leave.
    pg_as_owner "$bin/pg_ctl" -D "$PG_HOME/data" -m fast -w -t 60 stop >/dev/null \
      || die "pg_ctl stop failed; see $PG_HOME/postgres.log"
  fi
}

# The postmaster of the private cluster, if alive (first line of postmaster.pid).
pg_private_pid() {
  local pid
  [[ "${PG_MODE:-}" == private && -f "$PG_HOME/data/postmaster.pid" ]] || return 1
  pid="$(head -n1 "$PG_HOME/data/postmaster.pid")"
  kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

pg_admin_url() { printf 'postgresql://postgres@%s:%s/postgres\n' "$PG_HOST" "$PG_PORT"; }

# Create the service databases if missing (reset=1: drop them first, disconnecting any client).
pg_ensure_databases() {
  local reset="${1:-0}"
  need_python
  "$PY" - "$PG_HOST" "$PG_PORT" "$reset" "${DATABASES[@]}" <<'PY'
import asyncio, sys
import asyncpg

async def main(host: str, port: int, reset: bool, names: list[str]) -> None:
    conn = await asyncpg.connect(host=host, port=port, user="postgres", database="postgres", timeout=10)
    try:
        for name in names:
            if reset:
                # WITH (FORCE) (PostgreSQL 13+) ends sessions still connected, e.g. a crashed test.
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
                print(f"[stack] created database {name}", file=sys.stderr)
            await ensure_roles(host, port, name)
    finally:
        await conn.close()


async def ensure_roles(host: str, port: int, name: str) -> None:
    """<db>_app: what the services run as, rows only (no CREATE, ALTER, DROP, TRUNCATE); <db>_owner: may
    migrate. The tests and `make migrate` keep the superuser (they create and drop whole databases), so the
    grants cover what postgres creates as well as what the owner creates."""
    admin = await asyncpg.connect(host=host, port=port, user="postgres", database=name, timeout=10)
    try:
        for role in (f"{name}_owner", f"{name}_app"):
            if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        app, owner = f'"{name}_app"', f'"{name}_owner"'
        await admin.execute(f"""
            REVOKE CREATE ON SCHEMA public FROM PUBLIC;
            GRANT CREATE, USAGE ON SCHEMA public TO {owner};
            GRANT USAGE ON SCHEMA public TO {app};
            GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO {app}, {owner};
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app};
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app};
            ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
                GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};
            ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app};
            ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public
                GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};
            ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app};
        """)
    finally:
        await admin.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]))
PY
}

# ---------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------

# The local stack's own secrets, made once per checkout and kept in .stack/secrets.env (git-ignored): intake's
# key announcement signing key with the public key the sla-engine and reporting verify with, and the key that
# encrypts the stored webhook secrets (docs/security.md). Production sets its own from a secret store.
SECRETS_FILE="$STACK_DIR/secrets.env"
ensure_secrets() {
  [[ -s "$SECRETS_FILE" ]] && return 0
  mkdir -p "$STACK_DIR"
  (umask 077 && "$PY" - >"$SECRETS_FILE.tmp" <<'PY'
from cryptography.fernet import Fernet
from slm_shared.signing import generate_signing_key
private, public = generate_signing_key()
print(f"INTAKE_KEY_SIGNING_KEY={private}")
print(f"SLA_ENGINE_KEY_ANNOUNCEMENT_PUBLIC_KEYS={public}")
print(f"REPORTING_KEY_ANNOUNCEMENT_PUBLIC_KEYS={public}")
print(f"INTAKE_WEBHOOK_SECRET_KEYS={Fernet.generate_key().decode()}")
print(f"REPORTING_NOTIFICATION_SECRET_KEYS={Fernet.generate_key().decode()}")
PY
  ) && mv "$SECRETS_FILE.tmp" "$SECRETS_FILE"
}

# The port to print: what `up` decided, or what it would use (the private port) before any `up`.
env_lines() {
  local port=$PG_PRIVATE_PORT
  if [[ -f "$PG_STATE" ]]; then
    read -r _ port _ <"$PG_STATE"
  fi
  local base="postgres@$PG_HOST:$port"
  cat <<EOF
KAFKA_BOOTSTRAP_SERVERS=$KAFKA_HOST:$KAFKA_PORT
KAFKA_SASL_BOOTSTRAP_SERVERS=$KAFKA_HOST:$KAFKA_SASL_PORT
POSTGRES_ADMIN_URL=postgresql://$base/postgres
INTAKE_DATABASE_URL=postgresql+asyncpg://$base/intake
SLA_ENGINE_DATABASE_URL=postgresql+asyncpg://$base/sla_engine
REPORTING_DATABASE_URL=postgresql+asyncpg://$base/reporting
INTAKE_APP_DATABASE_URL=postgresql+asyncpg://intake_app@$PG_HOST:$port/intake
SLA_ENGINE_APP_DATABASE_URL=postgresql+asyncpg://sla_engine_app@$PG_HOST:$port/sla_engine
REPORTING_APP_DATABASE_URL=postgresql+asyncpg://reporting_app@$PG_HOST:$port/reporting
EOF
  if [[ -s "$SECRETS_FILE" ]]; then
    cat "$SECRETS_FILE"
  fi
}

# One `up`/`down`/`reset` at a time per checkout (two `make up` in parallel would race the format).
take_lock() {
  mkdir -p "$STACK_DIR"
  if command -v flock >/dev/null; then
    exec 9>"$STACK_DIR/.lock"
    flock -w 120 9 || die "another stack.sh holds $STACK_DIR/.lock"
  fi
}

cmd_up() {
  take_lock
  need_python
  mkdir -p "$KAFKA_DIR"
  pg_decide
  # Kafka's JVM starts in the background first; PostgreSQL starts while it boots.
  kafka_start
  if [[ "$PG_MODE" == external ]] && ! pg_can_connect "$PG_HOST" "$PG_PORT"; then
    # The server chosen by an earlier `up` is gone: choose again (likely a private cluster now).
    log "the PostgreSQL on $PG_HOST:$PG_PORT chosen earlier does not answer: choosing again"
    rm -f "$PG_STATE"
    pg_decide
  fi
  if [[ "$PG_MODE" == private ]]; then
    pg_private_start
  fi
  pg_ensure_databases 0
  kafka_wait_ready
  ensure_secrets
  kafka_apply_users
  env_lines >"$ENV_FILE.tmp" && mv "$ENV_FILE.tmp" "$ENV_FILE"
  log "up: Kafka $KAFKA_HOST:$KAFKA_PORT, PostgreSQL $PG_HOST:$PG_PORT ($PG_MODE); env in $ENV_FILE"
  cat "$ENV_FILE"
}

cmd_down() {
  take_lock
  kafka_stop
  if [[ -f "$PG_STATE" ]]; then
    read -r PG_MODE PG_PORT PG_HOME <"$PG_STATE"
    if [[ "$PG_MODE" == private ]]; then
      pg_private_stop
    fi
  fi
  # Prove it: no broker JVM of this checkout and no postmaster of the private cluster remain
  # (by pid file and by command line, in case the pid file went missing).
  local left pid
  left="$(kafka_stray_pids)"
  if [[ "${PG_MODE:-}" == private ]]; then
    if pid="$(pg_private_pid)"; then
      left="$left $pid"
    fi
    left="$left $(pgrep -f -- "-D $PG_HOME/data\$" || true)"
  fi
  left="$(tr -s ' \n' ' ' <<<"$left" | sed 's/^ //; s/ $//')"  # one line, no stray blanks
  [[ -z "$left" ]] || die "processes of this stack still running: $left"
  if [[ "${PG_MODE:-}" == external ]]; then
    log "down: nothing of this stack is running (the external PostgreSQL on $PG_HOST:$PG_PORT is not ours: left alone)"
  else
    log "down: nothing of this stack is running"
  fi
}

cmd_status() {
  local rc=0 pid
  if pid="$(kafka_pid)"; then
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
      echo "kafka:    running (pid $pid) on $KAFKA_HOST:$KAFKA_PORT, SASL on $KAFKA_HOST:$KAFKA_SASL_PORT"
    else
      echo "kafka:    starting (pid $pid), $KAFKA_HOST:$KAFKA_PORT not open yet"
    fi
  else
    echo "kafka:    stopped"
    rc=1
  fi
  if [[ -f "$PG_STATE" ]]; then
    read -r PG_MODE PG_PORT PG_HOME <"$PG_STATE"
    if [[ "$PG_MODE" == private ]]; then
      if pid="$(pg_private_pid)"; then
        echo "postgres: running, private cluster (pid $pid) on $PG_HOST:$PG_PORT, data $PG_HOME/data"
      else
        echo "postgres: stopped (private cluster, data $PG_HOME/data)"
        rc=1
      fi
    elif port_open "$PG_HOST" "$PG_PORT"; then
      echo "postgres: external server on $PG_HOST:$PG_PORT answers"
    else
      echo "postgres: external server on $PG_HOST:$PG_PORT does not answer"
      rc=1
    fi
  else
    echo "postgres: not set up (run up)"
    rc=1
  fi
  return $rc
}

cmd_reset() {
  take_lock
  need_python
  log "reset: wiping Kafka data and recreating the databases"
  kafka_stop
  rm -rf "$KAFKA_DATA" "$KAFKA_LOG"*
  pg_decide
  kafka_start
  if [[ "$PG_MODE" == private ]]; then
    pg_private_start
  fi
  pg_ensure_databases 1
  kafka_wait_ready
  ensure_secrets
  kafka_apply_users
  env_lines >"$ENV_FILE"
  cat "$ENV_FILE"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) env_lines ;;
  reset) cmd_reset ;;
  *)
    echo "usage: $0 up|down|status|env|reset" >&2
    exit 2
    ;;
esac
