#!/bin/sh
# Secrets mounted as files (compose secrets, Kubernetes secret volumes) rather than put
# in the environment: GATEWAY_X_FILE=/path sets GATEWAY_X to that file's contents,
# without its trailing newlines. Then it runs the command it was given (`gateway serve`)
# in its place, so tini's signals reach the server itself.
set -eu

for variable in $(env | sed -n 's/^\(GATEWAY_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
    if env | grep -q "^${variable}="; then
        echo "gateway: set ${variable} or ${variable}_FILE, not both" >&2
        exit 2
    fi
    eval "file=\${${variable}_FILE}"
    if ! value=$(cat -- "$file"); then
        echo "gateway: ${variable}_FILE=${file}: cannot read it" >&2
        exit 2
    fi
    export "${variable}=${value}"
    unset "${variable}_FILE"
done

exec "$@"
