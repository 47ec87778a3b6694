#!/usr/bin/env bash
# Seeds the fuzz corpora from the repository's own specs: whole meshes for `translate` and `spec_load` (the
# Bookinfo mesh plus each golden case's input and each sample task), so mutations start from text that resolves.
# The stream targets need no seeds. Usage: fuzz/seed.sh (idempotent; corpus/ is not committed).
set -euo pipefail
cd "$(dirname "$0")"
repo=..
mesh=$(cat "$repo/tests/golden/fixtures/bookinfo-mesh.yaml"; echo '---'; cat "$repo/config/destination-rule-all.yaml"; echo '---'; cat "$repo/config/bookinfo-gateway.yaml")
for target in translate spec_load; do
    mkdir -p "corpus/$target"
    printf '%s\n' "$mesh" > "corpus/$target/bookinfo"
    for input in "$repo"/tests/golden/translate/*/input.yaml "$repo"/tests/golden/resolve/*/input.yaml; do
        [ -f "$input" ] || continue
        name=$(basename "$(dirname "$input")")
        { printf '%s\n---\n' "$mesh"; cat "$input"; } > "corpus/$target/$name"
    done
    for task in "$repo"/e2e/specs/*.yaml "$repo"/config/*.yaml; do
        [ -f "$task" ] || continue
        { printf '%s\n---\n' "$mesh"; cat "$task"; } > "corpus/$target/task-$(basename "$task" .yaml)"
    done
done
ls corpus/*/ | wc -l
