#!/bin/sh
# compose/asterisk/start.sh -- entrypoint of both sites' Asterisk containers.
#
# Asterisk reads no environment in manager.conf, and the AMI secret must not
# be committed: so the configs here are copied into /etc/asterisk with the
# manager.conf placeholder @AMI_SECRET@ replaced by the compose secret
# (/run/secrets/ami_secret, the same file the site's callbus-agent reads).
set -eu
SRC=/etc/callbus-asterisk
SECRET_FILE=/run/secrets/ami_secret

[ -s "$SECRET_FILE" ] || { echo "start.sh: $SECRET_FILE missing or empty (see compose/.env.example)" >&2; exit 1; }
for f in "$SRC"/*.conf; do
    cp "$f" /etc/asterisk/
done
# awk's ENVIRON, not sed: the secret may hold any character sed would treat
# as syntax (/, &, \).
AMI_SECRET="$(cat "$SECRET_FILE")" awk '
    $0 == "secret = @AMI_SECRET@" { print "secret = " ENVIRON["AMI_SECRET"]; next }
    { print }' "$SRC/manager.conf" > /etc/asterisk/manager.conf
chmod 0640 /etc/asterisk/manager.conf
exec asterisk -f -vvv
