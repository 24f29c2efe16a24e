#!/usr/bin/env bash
# callbus test Kafka: the official Apache Kafka release jars (fetched with
# Maven, version pinned in tests/kafka/pom.xml), run as a single-node KRaft
# broker+controller on loopback.
#
#   kafka.sh fetch                 fetch the jars into the cache (idempotent)
#   kafka.sh start DIR             format DIR (first time) and start a broker;
#                                  prints host:port. DIR keeps data and ports,
#                                  so start after stop is a restart on the same
#                                  port with the same data.
#   kafka.sh stop DIR              SIGTERM, wait KAFKA_STOP_TIMEOUT (30 s), SIGKILL
#   kafka.sh status DIR            prints host:port and exits 0 if running
#   kafka.sh run-class CLASS ARGS  run a Kafka class (admin tools, MirrorMaker 2)
#   kafka.sh topics ARGS           = run-class org.apache.kafka.tools.TopicCommand
#   kafka.sh consumer-groups ARGS  = run-class org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
#   kafka.sh mirror-maker ARGS     = run-class org.apache.kafka.connect.mirror.MirrorMaker
#   kafka.sh libs | version        print the jar directory / the pinned version
#
# Files in DIR: server.properties, port, controller_port, cluster_id,
# bootstrap (host:port), pid, server.log (broker log), stdout.log, data/.
# DIR/extra.properties, if present, is appended to server.properties.
#
# KAFKA_SECURITY=sasl_ssl at the first start of DIR (kept for restarts):
# the clients' listener is SASL_SSL, SCRAM-SHA-512 over TLS, as a site's
# production broker would be. openssl makes a CA and the broker's
# certificate (for the address and localhost) in DIR/tls: ca.pem is what
# clients trust. The SCRAM users are made when the storage is formatted:
# "admin" (the broker's own) and "callbus", with random passwords, one
# "name password" per line in DIR/users. Only the controller listener
# stays PLAINTEXT, on its own port.
#
# Environment:
#   KAFKA_BOOTSTRAP=host:port  use that cluster: start/stop/status only print it
#   KAFKA_HOME=/opt/kafka      use an installed distribution's libs/ (no fetch)
#   CALLBUS_CACHE              jar cache root (default ~/.cache/callbus)
#   KAFKA_HOST                 listen address (default 127.0.0.1)
#   KAFKA_HEAP_OPTS            default "-Xmx512m -Xms256m"
#   KAFKA_OPTS                 extra JVM options
#   KAFKA_START_TIMEOUT        seconds to wait for the broker (default 90)
#   KAFKA_SECURITY             sasl_ssl (first start of DIR): see above
#   JAVA                       java binary (default $JAVA_HOME/bin/java or java)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/pom.xml"
VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
CACHE="${CALLBUS_CACHE:-$HOME/.cache/callbus}"
if [[ -n "${KAFKA_HOME:-}" ]]; then
    LIBS="$KAFKA_HOME/libs"
else
    LIBS="$CACHE/kafka-$VERSION/libs"
fi
HOST="${KAFKA_HOST:-127.0.0.1}"
if [[ -n "${JAVA:-}" ]]; then :
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"
else JAVA=java; fi

say() { echo "kafka.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

fetch() {
    if [[ -n "${KAFKA_HOME:-}" ]]; then
        ls "$LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "KAFKA_HOME=$KAFKA_HOME has no libs/kafka_2.13-*.jar"
        return 0
    fi
    if [[ -f "$LIBS/.complete" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (run: tools/setup.sh deps)"
    say "fetching Apache Kafka $VERSION jars with Maven into $LIBS"
    local tmp="$LIBS.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$LIBS")"
    if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
        rm -rf "$tmp"
        die "mvn failed to fetch the Kafka jars"
    fi
    touch "$tmp/.complete"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    say "fetched $(ls "$LIBS"/*.jar | wc -l) jars ($(du -sh "$LIBS" | cut -f1))"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("'"$HOST"'", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# pid of the broker running from DIR, or nothing.
running_pid() {
    local dir="$1" pid
    [[ -f "$dir/pid" ]] || return 1
    pid="$(cat "$dir/pid")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/server.properties" || return 1
    echo "$pid"
}

# The CA and the broker's certificate, and the SCRAM users' passwords.
make_secrets() {
    local dir="$1" t="$1/tls" san="DNS:localhost"
    [[ -f "$t/broker.pem" && -f "$dir/users" ]] && return 0
    command -v openssl >/dev/null || die "openssl not found (run: tools/setup.sh deps)"
    [[ "$HOST" =~ ^[0-9.]+$ ]] && san="IP:$HOST,$san" || san="DNS:$HOST,$san"
    mkdir -p "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=callbus test CA" \
        -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$HOST" -keyout "$t/broker.key" -out "$t/broker.csr" 2>/dev/null
    openssl x509 -req -days 3650 -in "$t/broker.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
        -extfile <(echo "subjectAltName=$san") -out "$t/broker.crt" 2>/dev/null
    # Kafka's PEM key store: the private key (PKCS#8), then the certificate
    openssl pkcs8 -topk8 -nocrypt -in "$t/broker.key" >"$t/broker.pem"
    cat "$t/broker.crt" >>"$t/broker.pem"
    local u
    for u in admin callbus; do echo "$u $(openssl rand -hex 16)"; done >"$dir/users"
}

user_password() { awk -v u="$2" '$1 == u { print $2 }' "$1/users"; }

write_config() {
    local dir="$1" port="$2" cport="$3" client=PLAINTEXT
    [[ -f "$dir/security" ]] && client=SASL_SSL
    cat >"$dir/server.properties" <<EOF
# written by tests/kafka/kafka.sh -- single-node KRaft for tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$cport
listeners=$client://$HOST:$port,CONTROLLER://$HOST:$cport
advertised.listeners=$client://$HOST:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=$client
listener.security.protocol.map=$client:$client,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=true
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.enable=true
log.cleaner.dedupe.buffer.size=16777216
log.cleaner.backoff.ms=1000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
EOF
    if [[ "$client" == SASL_SSL ]]; then
        cat >>"$dir/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(user_password "$dir" admin)";
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$(user_password "$dir" admin)" $(awk '{ printf "user_%s=\"%s\" ", $1, $2 }' "$dir/users");
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.pem
EOF
    fi
    if [[ -f "$dir/extra.properties" ]]; then
        echo "# from $dir/extra.properties" >>"$dir/server.properties"
        cat "$dir/extra.properties" >>"$dir/server.properties"
    fi
}

# java_cmd broker: with the broker's pause settings (below); java_cmd: G1's
# defaults, for MirrorMaker and the tools.
java_cmd() {
    command -v "$JAVA" >/dev/null || die "java not found (run: tools/setup.sh deps)"
    local pauses=""
    # Kafka's own JVM settings (bin/kafka-run-class.sh,
    # KAFKA_JVM_PERFORMANCE_OPTS), which a production broker runs with: G1's
    # default 200 ms pause target let the broker pause 22-50 ms, the tail of
    # the command latency bench (docs/benchmarks.md, goal 3). Not for
    # MirrorMaker, which moves a catch-up's backlog: with a 20 ms target its
    # young generation stays small; it paused 101-113 times (2.5-4.4 s) in
    # a catch-up, 31-38 times (1.4-2.2 s) with G1's default (goal 6), which
    # compose's callbus-kafka image runs it with too.
    [[ "${1:-}" == broker ]] &&
        pauses="-XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent"
    # shellcheck disable=SC2086
    echo "$JAVA" ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} -XX:+UseG1GC $pauses -Djava.awt.headless=true
}

start() {
    local dir="${1:?usage: kafka.sh start DIR}"
    if [[ -n "${KAFKA_BOOTSTRAP:-}" ]]; then
        say "KAFKA_BOOTSTRAP is set: not starting a broker"
        echo "$KAFKA_BOOTSTRAP"
        return 0
    fi
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    fetch
    local pid
    if pid="$(running_pid "$dir")"; then
        say "broker already running in $dir (pid $pid)"
        cat "$dir/bootstrap"
        return 0
    fi
    local port cport
    if [[ ! -f "$dir/port" && "${KAFKA_SECURITY:-}" == sasl_ssl ]]; then
        echo sasl_ssl >"$dir/security"
    elif [[ ! -f "$dir/port" && -n "${KAFKA_SECURITY:-}" ]]; then
        die "KAFKA_SECURITY=$KAFKA_SECURITY: only sasl_ssl is known"
    fi
    [[ -f "$dir/security" ]] && make_secrets "$dir"
    if [[ -f "$dir/port" && -f "$dir/controller_port" ]]; then
        port="$(cat "$dir/port")"; cport="$(cat "$dir/controller_port")"
        say "restarting broker in $dir on $HOST:$port (data kept)"
    else
        port="$(free_port)"; cport="$(free_port)"
        while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done
        echo "$port" >"$dir/port"; echo "$cport" >"$dir/controller_port"
        say "new broker in $dir on $HOST:$port (controller $cport)"
    fi
    port_open "$HOST" "$port" && die "port $HOST:$port is already in use"
    write_config "$dir" "$port" "$cport"
    echo "$HOST:$port" >"$dir/bootstrap"
    local -a JCMD
    read -r -a JCMD <<<"$(java_cmd broker)"
    JCMD+=(-Dkafka.logs.dir="$dir" -Dlog4j2.configurationFile="$HERE/log4j2-broker.properties")
    # shellcheck disable=SC2206
    JCMD+=(${KAFKA_OPTS:-} -cp "$LIBS/*")
    if [[ ! -f "$dir/data/meta.properties" ]]; then
        [[ -f "$dir/cluster_id" ]] || python3 -c 'import uuid,base64; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))' >"$dir/cluster_id"
        local -a scram=()
        if [[ -f "$dir/security" ]]; then
            while read -r name pw; do scram+=(--add-scram "SCRAM-SHA-512=[name=$name,password=$pw]"); done <"$dir/users"
        fi
        "${JCMD[@]}" kafka.tools.StorageTool format --ignore-formatted "${scram[@]}" \
            --cluster-id="$(cat "$dir/cluster_id")" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
            || { cat "$dir/format.log" >&2; die "storage format failed"; }
    fi
    local t0=$SECONDS
    rm -f "$dir/pid"
    # Where this run's log starts, taken before the JVM can write to it.
    local timeout="${KAFKA_START_TIMEOUT:-90}" logoff=0
    [[ -f "$dir/server.log" ]] && logoff="$(wc -c <"$dir/server.log")"
    # own session: a Ctrl-C in the terminal goes to the test runner, which stops
    # the broker through its trap / fixture.
    setsid "${JCMD[@]}" kafka.Kafka "$dir/server.properties" >>"$dir/stdout.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/pid"
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$dir/server.log" "$dir/stdout.log" >&2 2>/dev/null || true
            rm -f "$dir/pid"
            die "broker exited during startup (logs in $dir)"
        fi
        # grep -c, not -q: -q stops reading at the match, tail then dies of
        # SIGPIPE with more to write, and pipefail fails the check: once the
        # log behind the line outgrew the pipe, every poll failed (a working
        # restart timed out in CI).
        if port_open "$HOST" "$port" &&
           tail -c +"$((logoff + 1))" "$dir/server.log" 2>/dev/null | grep -c 'Kafka Server started' >/dev/null; then
            break
        fi
        if (( SECONDS - t0 > timeout )); then
            tail -n 40 "$dir/server.log" >&2 2>/dev/null || true
            stop "$dir" || true
            die "broker not ready after ${timeout}s (logs in $dir)"
        fi
        sleep 0.2
    done
    say "broker ready at $HOST:$port (pid $pid, $((SECONDS - t0))s)"
    echo "$HOST:$port"
}

stop() {
    local dir="${1:?usage: kafka.sh stop DIR}"
    if [[ -n "${KAFKA_BOOTSTRAP:-}" ]]; then
        say "KAFKA_BOOTSTRAP is set: not stopping $KAFKA_BOOTSTRAP"
        return 0
    fi
    [[ -d "$dir" ]] || { say "no such dir $dir"; return 0; }
    dir="$(cd "$dir" && pwd)"
    local pid
    if ! pid="$(running_pid "$dir")"; then
        say "no broker running in $dir"
        rm -f "$dir/pid"
        return 0
    fi
    local timeout="${KAFKA_STOP_TIMEOUT:-30}" t0=$SECONDS
    say "stopping broker pid $pid ($dir)"
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS - t0 >= timeout )); then
            say "still running after ${timeout}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
    rm -f "$dir/pid"
    say "stopped ($((SECONDS - t0))s)"
}

status() {
    local dir="${1:?usage: kafka.sh status DIR}"
    if [[ -n "${KAFKA_BOOTSTRAP:-}" ]]; then echo "$KAFKA_BOOTSTRAP"; return 0; fi
    dir="$(cd "$dir" 2>/dev/null && pwd)" || return 1
    running_pid "$dir" >/dev/null || return 1
    cat "$dir/bootstrap"
}

run_class() {
    local cls="${1:?usage: kafka.sh run-class CLASS ARGS...}"; shift
    fetch
    local -a JCMD
    read -r -a JCMD <<<"$(KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256m}" java_cmd)"
    # shellcheck disable=SC2206
    JCMD+=(${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$HERE/log4j2-tools.properties} ${KAFKA_OPTS:-} -cp "$LIBS/*")
    exec "${JCMD[@]}" "$cls" "$@"
}

cmd="${1:-}"; shift || true
case "$cmd" in
    fetch) fetch; [[ -n "${KAFKA_HOME:-}" ]] && say "using KAFKA_HOME=$KAFKA_HOME" || say "Kafka $VERSION jars ready in $LIBS" ;;
    start) start "$@" ;;
    stop) stop "$@" ;;
    status) status "$@" ;;
    run-class) run_class "$@" ;;
    topics) run_class org.apache.kafka.tools.TopicCommand "$@" ;;
    consumer-groups) run_class org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@" ;;
    mirror-maker) run_class org.apache.kafka.connect.mirror.MirrorMaker "$@" ;;
    libs) echo "$LIBS" ;;
    version) echo "$VERSION" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
