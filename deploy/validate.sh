#!/usr/bin/env bash
# Validates every manifest under deploy/ (what is checked: the header of
# deploy/validate/validate.mjs).
#   deploy/validate.sh [DIR]       DIR defaults to this deploy/ directory (pass a copy to try
#                                  a change, or a deliberately broken one)
#   deploy/validate.sh --self-test breaks a copy of deploy/ in known ways, one at a time, and
#                                  checks that each is reported (deploy/validate/selftest.mjs)
#
# Needs node and the packages pinned in deploy/validate/package-lock.json, installed by
# prepare_deploy_validation (scripts/lib/prepare.sh) into target/deploy-validate; after that
# it runs offline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
modules=${SIGIL_DEPLOY_VALIDATE_DIR:-$root/target/deploy-validate}

if [ ! -d "$modules/node_modules" ] || ! cmp -s "$here/validate/package-lock.json" "$modules/package-lock.json"; then
    echo "error: the validator's packages are not installed (or are stale) in $modules;" \
        "run: source scripts/lib/prepare.sh && prepare_deploy_validation" >&2
    exit 2
fi
# Node resolves the packages from the importing file's directory: run copies beside them.
cp "$here/validate/validate.mjs" "$here/validate/selftest.mjs" "$modules/"

if [ "${1:-}" = "--self-test" ]; then
    exec node "$modules/selftest.mjs" "$here" "$here/validate/crd-fields.txt"
fi
dir=${1:-$here}
[ -d "$dir" ] || { echo "error: $dir is not a directory" >&2; exit 2; }
exec node "$modules/validate.mjs" "$dir" "$here/validate/crd-fields.txt"
