#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller in one JVM) without Docker.
#
# The broker's jars are resolved from Maven Central by the machine's Maven (deploy/kafka/pom.xml)
# into a cache dir, then run with the machine's Java 17+. There is no fallback: if Maven cannot
# serve the jars this script fails and shows Maven's error.
#
# Usage: deploy/kafka.sh {up|down [--purge]|status|fetch}
#
# Environment (all optional):
#   RINGLOG_KAFKA_VERSION          Kafka release (default 4.1.2)
#   RINGLOG_KAFKA_CACHE            jar cache dir, jars go to $RINGLOG_KAFKA_CACHE/libs
#                                  (default $HOME/.cache/ringlog/kafka/<version>)
#   RINGLOG_KAFKA_HOME             config, data and logs (default <repo>/var/kafka)
#   RINGLOG_KAFKA_PORT             client (PLAINTEXT) port on 127.0.0.1 (default 9092)
#   RINGLOG_KAFKA_CONTROLLER_PORT  KRaft controller port (default 9093)
#   RINGLOG_KAFKA_PARTITIONS       num.partitions for auto-created topics (default 4)
#   RINGLOG_KAFKA_HEAP_OPTS        JVM heap flags (default "-Xmx512m -Xms256m")
#   RINGLOG_KAFKA_START_TIMEOUT    seconds to wait for the broker to answer (default 60)
#   RINGLOG_KAFKA_PURGE=1          make `down` also delete the data dir (same as --purge)
#   RINGLOG_KAFKA_SASL_SSL=1       the client listener is SASL_SSL (SCRAM-SHA-512) instead of
#                                  PLAINTEXT: a CA and a broker certificate (127.0.0.1,
#                                  localhost) are made with openssl in $KAFKA_HOME/tls, and the
#                                  user `ringlog` is added with the password in
#                                  $KAFKA_HOME/sasl/ringlog.password (made when missing); clients
#                                  trust $KAFKA_HOME/tls/ca.pem
#   RINGLOG_KAFKA_MAVEN_ARGS       extra mvn arguments, e.g. -Dmaven.repo.local=/tmp/m2
#   RINGLOG_PYTHON                 python with aiokafka for the readiness check
#                                  (default <repo>/.venv/bin/python, then python3)
#   JAVA_HOME                      Java to use (default: java on PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"

KAFKA_VERSION="${RINGLOG_KAFKA_VERSION:-4.1.2}"
CACHE_DIR="${RINGLOG_KAFKA_CACHE:-$HOME/.cache/ringlog/kafka/$KAFKA_VERSION}"
LIBS_DIR="$CACHE_DIR/libs"
FETCH_MARKER="$CACHE_DIR/.fetch-complete"
KAFKA_HOME="${RINGLOG_KAFKA_HOME:-$REPO_DIR/var/kafka}"
PORT="${RINGLOG_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${RINGLOG_KAFKA_CONTROLLER_PORT:-9093}"
PARTITIONS="${RINGLOG_KAFKA_PARTITIONS:-4}"
HEAP_OPTS="${RINGLOG_KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
START_TIMEOUT="${RINGLOG_KAFKA_START_TIMEOUT:-60}"
SASL_SSL="${RINGLOG_KAFKA_SASL_SSL:-0}"
HOST="127.0.0.1"
TLS_DIR="$KAFKA_HOME/tls"
SASL_DIR="$KAFKA_HOME/sasl"

DATA_DIR="$KAFKA_HOME/data"
LOG_DIR="$KAFKA_HOME/logs"
PROPS="$KAFKA_HOME/server.properties"
LOG4J_CONF="$KAFKA_HOME/log4j2.properties"
PID_FILE="$KAFKA_HOME/kafka.pid"
PORT_FILE="$KAFKA_HOME/kafka.port"
CLUSTER_ID_FILE="$KAFKA_HOME/cluster.id"
OUT_LOG="$KAFKA_HOME/kafka.out"   # JVM stdout/stderr
SERVER_LOG="$LOG_DIR/server.log"  # log4j2 broker log
LOCK_FILE="$KAFKA_HOME/.kafka.lock"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        printf '%s\n' "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        die "java not found (need Java 17+; set JAVA_HOME or put java on PATH)"
    fi
}

python_bin() {
    if [[ -n "${RINGLOG_PYTHON:-}" ]]; then
        printf '%s\n' "$RINGLOG_PYTHON"
    elif [[ -x "$REPO_DIR/.venv/bin/python" ]]; then
        printf '%s\n' "$REPO_DIR/.venv/bin/python"
    elif command -v python3 >/dev/null 2>&1; then
        command -v python3
    fi
}

# Serialise up/down across processes (tests may call `up` concurrently).
take_lock() {
    mkdir -p "$KAFKA_HOME"
    exec 9>"$LOCK_FILE"
    flock 9
}

# ---------------------------------------------------------------------------------- fetch

fetch_done() {
    [[ -f "$FETCH_MARKER" && -d "$LIBS_DIR" ]] \
        && [[ "$(cat "$FETCH_MARKER")" == "$KAFKA_VERSION" ]] \
        && compgen -G "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
}

cmd_fetch() {
    if fetch_done; then
        log "Kafka $KAFKA_VERSION jars already in $LIBS_DIR ($(ls "$LIBS_DIR" | wc -l) jars)"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found: Maven is needed to fetch the Kafka jars"
    mkdir -p "$CACHE_DIR"
    exec 8>"$CACHE_DIR/.fetch.lock"
    flock 8
    if fetch_done; then   # another process fetched while we waited
        exec 8>&-
        log "Kafka $KAFKA_VERSION jars already in $LIBS_DIR"
        return 0
    fi
    local tmp="$CACHE_DIR/libs.tmp.$$"
    rm -rf "$tmp"
    log "fetching Apache Kafka $KAFKA_VERSION (kafka_2.13 + runtime deps) from Maven Central"
    log "  into $LIBS_DIR (first run only; this takes a while)"
    local t0=$SECONDS
    # shellcheck disable=SC2086  # RINGLOG_KAFKA_MAVEN_ARGS is a word list on purpose
    if ! mvn -B -q -Dstyle.color=never -f "$SCRIPT_DIR/kafka/pom.xml" \
            ${RINGLOG_KAFKA_MAVEN_ARGS:-} \
            -Dkafka.version="$KAFKA_VERSION" \
            dependency:copy-dependencies \
            -DincludeScope=runtime \
            -DoutputDirectory="$tmp" 2>&1 | sed -E $'s/\x1b\\[[0-9;]*m//g' >&2; then
        # (sed strips the stray ANSI resets Maven 3.8 prints even in batch mode)
        rm -rf "$tmp"
        exec 8>&-
        die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see the Maven error above)"
    fi
    [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] \
        || { rm -rf "$tmp"; die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing in $tmp"; }
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    printf '%s\n' "$KAFKA_VERSION" >"$FETCH_MARKER"
    exec 8>&-
    log "fetched $(ls "$LIBS_DIR" | wc -l) jars ($(du -sh "$LIBS_DIR" | cut -f1)) in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------------- helpers

# Print the pid of our running broker, or nothing (removing a stale pid file).
running_pid() {
    [[ -f "$PID_FILE" ]] || return 0
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
            && grep -qa 'kafka\.Kafka' "/proc/$pid/cmdline" 2>/dev/null; then
        printf '%s\n' "$pid"
    else
        rm -f "$PID_FILE"
    fi
}

port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

show_logs() {
    local f
    for f in "$SERVER_LOG" "$OUT_LOG"; do
        if [[ -s "$f" ]]; then
            log "---- last 40 lines of $f ----"
            tail -n 40 "$f" >&2
        fi
    done
}

# A CA and a broker certificate for 127.0.0.1/localhost (PEM, made once), and SCRAM passwords.
make_tls_and_users() {
    mkdir -p "$TLS_DIR" "$SASL_DIR"
    chmod 700 "$TLS_DIR" "$SASL_DIR"
    if [[ ! -s "$TLS_DIR/keystore.pem" ]]; then
        command -v openssl >/dev/null 2>&1 || die "openssl not found (needed for RINGLOG_KAFKA_SASL_SSL=1)"
        log "making a CA and a broker certificate in $TLS_DIR"
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=ringlog test CA" \
            -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" >/dev/null 2>&1 \
            || die "openssl could not make the CA"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$TLS_DIR/broker.key" -out "$TLS_DIR/broker.csr" >/dev/null 2>&1 \
            || die "openssl could not make the broker key"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$TLS_DIR/san.ext"
        openssl x509 -req -in "$TLS_DIR/broker.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
            -CAcreateserial -days 30 -extfile "$TLS_DIR/san.ext" -out "$TLS_DIR/broker.pem" \
            >/dev/null 2>&1 || die "openssl could not sign the broker certificate"
        # Kafka's PEM key store: the PKCS#8 key, then the certificate chain, in one file.
        openssl pkcs8 -topk8 -nocrypt -in "$TLS_DIR/broker.key" -out "$TLS_DIR/broker.pk8" \
            || die "openssl could not convert the broker key"
        cat "$TLS_DIR/broker.pk8" "$TLS_DIR/broker.pem" "$TLS_DIR/ca.pem" >"$TLS_DIR/keystore.pem"
    fi
    local user
    for user in admin ringlog; do
        if [[ ! -s "$SASL_DIR/$user.password" ]]; then
            (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=\n' >"$SASL_DIR/$user.password")
        fi
    done
}

listener_config() {
    if [[ "$SASL_SSL" != "1" ]]; then
        printf '%s\n' \
            "listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT" \
            "advertised.listeners=PLAINTEXT://$HOST:$PORT" \
            "inter.broker.listener.name=PLAINTEXT" \
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        return 0
    fi
    printf '%s\n' \
        "listeners=SASL_SSL://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT" \
        "advertised.listeners=SASL_SSL://$HOST:$PORT" \
        "inter.broker.listener.name=SASL_SSL" \
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL" \
        "sasl.enabled.mechanisms=SCRAM-SHA-512" \
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512" \
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(cat "$SASL_DIR/admin.password")\";" \
        "ssl.keystore.type=PEM" \
        "ssl.keystore.location=$TLS_DIR/keystore.pem" \
        "ssl.truststore.type=PEM" \
        "ssl.truststore.location=$TLS_DIR/ca.pem"
}

write_config() {
    if [[ "$SASL_SSL" == "1" ]]; then
        make_tls_and_users
    fi
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    cat >"$PROPS" <<EOF
# Written by deploy/kafka.sh on every \`up\`; edits are overwritten.
# Single-node KRaft: this JVM is both broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
$(listener_config)

log.dirs=$DATA_DIR
num.partitions=$PARTITIONS
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true

# internal topics on a single node
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# 4 MiB record batches, so a 2 MB message fits (clients must raise their own limits too:
# producer max_request_size, consumer max_partition_fetch_bytes); the same value as
# MAX_MESSAGE_BYTES in worker/adapters/kafka/topics.py
message.max.bytes=4194304
replica.fetch.max.bytes=4194304

num.network.threads=2
num.io.threads=4
# The log cleaner's dedupe buffer lives in the heap from start (default 128 MiB): half of a
# 256 MiB heap, so G1 marked the old generation over and over (3.6 s of its concurrent
# thread's CPU in one 200k-event benchmark run, taken from the worker's cores). 16 MiB is
# ~700k keys per cleaning, far more than __consumer_offsets holds here.
log.cleaner.dedupe.buffer.size=16777216
log.retention.hours=168
log.segment.bytes=268435456
EOF
    cat >"$LOG4J_CONF" <<EOF
# Written by deploy/kafka.sh. Broker log: $SERVER_LOG
status = warn
name = ringlog-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $SERVER_LOG
appender.file.filePattern = $LOG_DIR/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
}

# Kafka cluster ids are 16 random bytes, base64url without padding (22 chars). One in 64
# starts with "-", so it is passed as --cluster-id=ID (argparse would take "-x" for a flag).
new_cluster_id() {
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

format_storage() {
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        return 0
    fi
    local cid
    if [[ -s "$CLUSTER_ID_FILE" ]]; then
        cid="$(cat "$CLUSTER_ID_FILE")"
    else
        cid="$(new_cluster_id)"
        printf '%s\n' "$cid" >"$CLUSTER_ID_FILE"
    fi
    log "formatting KRaft storage in $DATA_DIR (cluster id $cid)"
    local scram=()
    if [[ "$SASL_SSL" == "1" ]]; then
        local user
        for user in admin ringlog; do
            scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(cat "$SASL_DIR/$user.password")]")
        done
    fi
    local out
    if ! out="$("$(java_bin)" -Xmx256m -cp "$LIBS_DIR/*" \
            -Dlog4j2.configurationFile="$LOG4J_CONF" -Dkafka.logs.dir="$LOG_DIR" \
            kafka.tools.StorageTool format "--cluster-id=$cid" -c "$PROPS" ${scram[@]+"${scram[@]}"} 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "kafka.tools.StorageTool format failed"
    fi
    printf '%s\n' "$out" | sed 's/^/  /' >&2
}

# A Kafka-protocol check (metadata request via aiokafka) when possible, else a TCP check.
broker_answers() {
    port_open "$PORT" || return 1
    local py
    py="$(python_bin)"
    if [[ -n "$py" ]] && "$py" -c 'import aiokafka' >/dev/null 2>&1; then
        timeout 20 "$py" - "$HOST:$PORT" "$SASL_SSL" "$TLS_DIR" "$SASL_DIR" >/dev/null 2>&1 <<'PY'
import asyncio
import sys
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context


async def main() -> None:
    options: dict[str, Any] = {}
    if sys.argv[2] == "1":
        options = {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "admin",
            "sasl_plain_password": Path(sys.argv[4], "admin.password").read_text(),
            "ssl_context": create_ssl_context(cafile=str(Path(sys.argv[3], "ca.pem"))),
        }
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000, **options)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


asyncio.run(main())
PY
    else
        return 0
    fi
}

# ---------------------------------------------------------------------------------- verbs

cmd_up() {
    take_lock
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        local p
        p="$(cat "$PORT_FILE" 2>/dev/null || echo "$PORT")"
        log "already running (pid $pid) on $HOST:$p"
        if [[ "$p" != "$PORT" ]]; then
            die "running broker listens on $p, not on the requested port $PORT (run \`down\` first)"
        fi
        printf '%s:%s\n' "$HOST" "$p"
        return 0
    fi
    if port_open "$PORT"; then
        die "port $HOST:$PORT is already in use by a process this script did not start"
    fi
    if port_open "$CONTROLLER_PORT"; then
        die "controller port $HOST:$CONTROLLER_PORT is already in use"
    fi

    cmd_fetch
    local java
    java="$(java_bin)"
    local jv
    jv="$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
    if [[ -n "$jv" && "$jv" -lt 17 ]]; then
        die "Kafka $KAFKA_VERSION needs Java 17+, found Java $jv ($java)"
    fi

    write_config
    format_storage

    log "starting Kafka $KAFKA_VERSION broker on $HOST:$PORT (controller $HOST:$CONTROLLER_PORT)"
    log "  home $KAFKA_HOME, broker log $SERVER_LOG"
    : >"$OUT_LOG"
    # setsid: own session, so the broker outlives the shell / test runner that started it.
    # 9>&-: do not leak the lock fd into the broker (it would hold the lock forever).
    # shellcheck disable=SC2086  # HEAP_OPTS is a word list on purpose
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" \
        "$java" $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -Dkafka.logs.dir="$LOG_DIR" \
        -cp "$LIBS_DIR/*" kafka.Kafka "$PROPS" \
        </dev/null >>"$OUT_LOG" 2>&1 9>&- &
    printf '%s\n' "$PORT" >"$PORT_FILE"

    local t0=$SECONDS
    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        # the pid file is written by the child; give it a moment
        pid="$(cat "$PID_FILE" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            show_logs
            rm -f "$PID_FILE"
            die "broker process $pid exited during startup"
        fi
        if [[ -n "$pid" ]] && broker_answers; then
            break
        fi
        if ((SECONDS >= deadline)); then
            show_logs
            die "broker did not answer on $HOST:$PORT within ${START_TIMEOUT}s (pid ${pid:-?} left running; \`$0 down\` stops it)"
        fi
        sleep 0.5
    done
    log "broker up (pid $pid) in $((SECONDS - t0)) s; bootstrap servers: $HOST:$PORT"
    printf '%s:%s\n' "$HOST" "$PORT"
}

cmd_down() {
    local purge="${RINGLOG_KAFKA_PURGE:-0}"
    while (($#)); do
        case "$1" in
            --purge) purge=1 ;;
            *) die "unknown option for down: $1" ;;
        esac
        shift
    done
    take_lock
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        log "stopping broker (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "broker did not stop within 30 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 20; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.25
            done
        fi
        log "stopped"
    else
        log "not running"
    fi
    rm -f "$PID_FILE" "$PORT_FILE"
    if [[ "$purge" == 1 || "$purge" == true ]]; then
        log "purging data dir $DATA_DIR"
        rm -rf "$DATA_DIR" "$CLUSTER_ID_FILE"
    fi
}

cmd_status() {
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        local p
        p="$(cat "$PORT_FILE" 2>/dev/null || echo "$PORT")"
        echo "running pid=$pid port=$p bootstrap=$HOST:$p home=$KAFKA_HOME"
        return 0
    fi
    echo "stopped port=$PORT home=$KAFKA_HOME"
    return 3
}

usage() {
    echo "usage: $0 {up|down [--purge]|status|fetch}" >&2
}

main() {
    local verb="${1:-}"
    (($#)) && shift
    case "$verb" in
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        status) cmd_status "$@" ;;
        fetch) cmd_fetch "$@" ;;
        -h | --help | help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"
