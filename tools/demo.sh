#!/usr/bin/env bash
# make demo: a local Kafka broker, amisim simulating a small call centre as a
# stand-in Asterisk, callbus-agent between them, callbus-gateway with the
# operator page (a URL with a demo token is printed), and a live tail of the
# calls topic. Ctrl-C stops everything. DEMO_SECONDS=N stops by itself after N s.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CALLBUS_BUILD:-$ROOT/build}"
WORK="$(mktemp -d /tmp/callbus-demo.XXXXXX)"
PIDS=()

say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }

cleanup() {
    trap - EXIT INT TERM
    say "stopping"
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -z "${KAFKA_BOOTSTRAP_GIVEN:-}" ]] && "$ROOT/tests/kafka/kafka.sh" stop "$WORK/kafka" >/dev/null 2>&1 || true
    say "logs kept in $WORK"
}
trap cleanup EXIT INT TERM

if [[ -n "${KAFKA_BOOTSTRAP:-}" ]]; then
    KAFKA_BOOTSTRAP_GIVEN=1
    BOOTSTRAP="$KAFKA_BOOTSTRAP"
    say "using the Kafka cluster at $BOOTSTRAP"
else
    say "starting a local Apache Kafka broker (KRaft, single node)"
    BOOTSTRAP="$("$ROOT/tests/kafka/kafka.sh" start "$WORK/kafka" | tail -n1)"
    say "Kafka is up at $BOOTSTRAP"
fi

say "starting amisim: 6 operators, queues support and sales, a call every 2 s"
"$BUILD/amisim" --listen 127.0.0.1:0 --simulate --operators 6 --queues support,sales \
    --rate 0.5 --talk 4-15 --abandon 15 >"$WORK/amisim.out" 2>"$WORK/amisim.log" &
PIDS+=($!)
for _ in $(seq 100); do
    grep -q 'listening on' "$WORK/amisim.out" 2>/dev/null && break
    sleep 0.1
done
AMI_PORT="$(sed -n 's/.*listening on [^:]*:\([0-9]*\).*/\1/p' "$WORK/amisim.out" | head -n1)"
[[ -n "$AMI_PORT" ]] || { say "amisim did not start:"; cat "$WORK/amisim.log" >&2; exit 1; }

HTTP_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$WORK/agent.conf" <<CONF
site = "demo";
state_dir = "$WORK/agent-state";
kafka = [ "bootstrap.servers=$BOOTSTRAP" ];
agent: {
  id = "agent1";
  ami: { host = "127.0.0.1"; port = $AMI_PORT; username = "callbus"; secret = "callbus"; };
  http: { listen = "127.0.0.1:$HTTP_PORT"; };
};
commands: { operator_phone = "Local/%s@phones"; };   # amisim's operator phones
CONF
say "starting callbus-agent (AMI 127.0.0.1:$AMI_PORT)"
"$BUILD/callbus-agent" -c "$WORK/agent.conf" 2>"$WORK/agent.log" &
PIDS+=($!)

# The gateway and a demo token for operator op101 (and a supervisor), signed
# with the demo's own secret; a real site uses the CRM's tokens.
SECRET="demo-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat >>"$WORK/agent.conf" <<CONF
gateway: {
  id = "gw1";
  listen = "127.0.0.1:${GATEWAY_PORT:-0}";
  www_dir = "$ROOT/gateway/www";
  jwt_alg = "HS256";
  jwt_secret = "$SECRET";
};
CONF
printf '%s' "$SECRET" >"$WORK/jwt_secret"
demo_token() {
    python3 "$ROOT/tools/mint_token.py" --secret-file "$WORK/jwt_secret" --role "$2" demo "$1"
}
say "starting callbus-gateway"
"$BUILD/callbus-gateway" -c "$WORK/agent.conf" 2>"$WORK/gateway.log" &
PIDS+=($!)
GATEWAY_URL=""
for _ in $(seq 300); do
    # the log may not exist yet: under set -e a failing sed would end the demo
    GATEWAY_URL="$(sed -n 's/.*gateway: listening on \(http[^ ]*\).*/\1/p' "$WORK/gateway.log" 2>/dev/null | head -n1 || true)"
    [[ -n "$GATEWAY_URL" ]] && break
    sleep 0.1
done
[[ -n "$GATEWAY_URL" ]] || { say "the gateway did not start:"; tail -20 "$WORK/gateway.log" >&2; exit 1; }

cat >&2 <<MSG

  Operator page:  $GATEWAY_URL/#token=$(demo_token op101 operator)
  Supervisor:     $GATEWAY_URL/#token=$(demo_token sup1 supervisor)

  Kafka:          $BOOTSTRAP   topics callbus.demo.{ami,calls,operators,status}
  AMI simulator:  127.0.0.1:$AMI_PORT (user callbus / secret callbus)
  Agent metrics:  http://127.0.0.1:$HTTP_PORT/metrics   health: http://127.0.0.1:$HTTP_PORT/health
  Logs:           $WORK/*.log
  Other views:    $BUILD/callbus -c $WORK/agent.conf tail operators
                  $BUILD/callbus -c $WORK/agent.conf tail ami --json

  Live calls topic follows (Ctrl-C to stop):

MSG
TAIL=("$BUILD/callbus" -c "$WORK/agent.conf" tail --from-beginning calls)
if [[ -n "${DEMO_SECONDS:-}" ]]; then
    "${TAIL[@]}" &
    PIDS+=($!)
    sleep "$DEMO_SECONDS"
else
    "${TAIL[@]}"
fi
