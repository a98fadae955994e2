#!/bin/sh
# Builds deploy/Dockerfile with podman on a machine that cannot pull from Docker Hub:
# the base is Debian bookworm (Python 3.11) made with debootstrap from the Debian
# mirror, and the wheels come from this machine's own pip, so that the build needs no
# way to PyPI of its own. Needs root, podman, debootstrap and Python 3.11.
#
#   deploy/build-local-image.sh
#   podman run --rm -p 8080:8080 localhost/recording-gateway:local
set -eu
cd "$(dirname "$0")/.."

base=${BASE_IMAGE:-localhost/debian-python:3.11-bookworm}
image=${IMAGE:-localhost/recording-gateway:local}
work=${WORK_DIR:-/var/tmp/recording-gateway-image}
python=${PYTHON:-python3}
mkdir -p "$work"

if ! podman image exists "$base"; then
    rm -rf "$work/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$work/rootfs" http://deb.debian.org/debian
    tar -C "$work/rootfs" -c . \
        | podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$base"
    rm -rf "$work/rootfs"
fi

# The wheels must suit the base's Python: bookworm's is 3.11.
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'
rm -rf "$work/wheels"
"$python" -m pip wheel --quiet --wheel-dir "$work/wheels" . setuptools wheel
printf '[global]\nno-index = true\nfind-links = /wheelhouse\n' >"$work/pip.conf"

# Both mounts exist only while the build's RUN steps run; neither lands in the image.
# chroot isolation: works where the OCI runtime cannot create cgroups for RUN steps.
# Docker's format: the OCI image format has no HEALTHCHECK.
podman build --isolation=chroot --format docker \
    --volume "$work/wheels:/wheelhouse:ro" --volume "$work/pip.conf:/etc/pip.conf:ro" \
    --build-arg BASE="$base" -f deploy/Dockerfile -t "$image" .
