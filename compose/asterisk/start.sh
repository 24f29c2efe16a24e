#!/bin/sh
# compose/asterisk/start.sh -- entrypoint of both sites' Asterisk containers.
#
# Asterisk reads no environment in manager.conf, and the AMI secret must not
# be committed: so the configs next to this script are copied into
# /etc/asterisk with the manager.conf placeholder @AMI_SECRET@ replaced by the
# compose secret (/run/secrets/ami_secret, the file the site's callbus-agent
# reads). The paths can be overridden so that test_compose.py can run it.
set -eu
SRC="$(cd "$(dirname "$0")" && pwd)"
SECRET_FILE="${AMI_SECRET_FILE:-/run/secrets/ami_secret}"
DEST="${ASTERISK_ETC:-/etc/asterisk}"
ASTERISK="${ASTERISK_BIN:-/usr/sbin/asterisk}"

[ -s "$SECRET_FILE" ] || { echo "start.sh: $SECRET_FILE missing or empty (see compose/.env.example)" >&2; exit 1; }
for f in "$SRC"/*.conf; do
    cp "$f" "$DEST"/
done
# awk's ENVIRON, not sed: the secret may hold any character sed would treat
# as syntax (/, &, \). A trailing newline in the file is not part of it.
AMI_SECRET="$(cat "$SECRET_FILE")" awk '
    $0 == "secret = @AMI_SECRET@" { print "secret = " ENVIRON["AMI_SECRET"]; found = 1; next }
    { print }
    END { if (!found) { print "start.sh: no secret = @AMI_SECRET@ line in manager.conf" > "/dev/stderr"; exit 1 } }' \
    "$SRC/manager.conf" > "$DEST/manager.conf"
chmod 0640 "$DEST/manager.conf"
# Asterisk drops root itself (-U/-G) before it reads its configs, as the
# image's own command does; the files must then be the asterisk user's.
if [ "$(id -u)" = 0 ] && id asterisk >/dev/null 2>&1; then
    chown asterisk:asterisk "$DEST"/*.conf
    exec "$ASTERISK" -f -vvv -U asterisk -G asterisk
fi
exec "$ASTERISK" -f -vvv
