#!/usr/bin/env bash
# compose/podman/debian-image.sh -- the Debian 12 base image of the compose/
# Dockerfiles, made here instead of pulled from a registry.
#
#   compose/podman/debian-image.sh          build it unless podman has it
#   compose/podman/debian-image.sh --force  build it again
#
# mmdebstrap writes a minimal Debian 12 (minbase, merged /usr, the same apt
# sources as the machine's own Debian mirror) as a tarball; podman imports it
# as docker.io/library/debian:bookworm and :bookworm-slim, the names the
# Dockerfiles' FROM lines resolve to, so `podman build --pull=never` needs no
# registry. Set CONTAINERS_CONF to compose/podman/containers.conf first.
set -euo pipefail

IMAGES=(docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim)
say() { echo "debian-image: $*" >&2; }

if [[ "${1:-}" != --force ]] && podman image exists "${IMAGES[0]}" && podman image exists "${IMAGES[1]}"; then
    exit 0
fi
command -v mmdebstrap >/dev/null || { say "mmdebstrap not found (tools/setup.sh deps installs it)"; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS
say "mmdebstrap --variant=minbase bookworm"
mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    bookworm "$tmp/rootfs.tar"
podman import --quiet --change 'CMD ["bash"]' "$tmp/rootfs.tar" "${IMAGES[0]}" >/dev/null
podman tag "${IMAGES[0]}" "${IMAGES[1]}"
say "${IMAGES[*]} ready ($((SECONDS - t0)) s)"
