#!/usr/bin/env bash
# A short run of every fuzz target in fuzz/ (`cargo fuzz`, nightly), each for FUZZ_SECONDS
# (default 20) starting from its corpus in fuzz/corpus/<target>, which it only reads (what it
# finds new goes to a temp dir). A fresh machine gets the nightly toolchain and cargo-fuzz first.
# A finding fails the run and leaves its input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS="${FUZZ_SECONDS:-20}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "--- installing the nightly toolchain (cargo fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "--- installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
# Its own target dir: sanitizer builds share nothing with the workspace's.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-${HOME:-/root}/confab-fuzz-target}"

for target in $(cargo +nightly fuzz list); do
  echo "--- fuzz $target (${SECS} s)"
  found=$(mktemp -d)
  cargo +nightly fuzz run "$target" "$found" "corpus/$target" -- -max_total_time="$SECS" -rss_limit_mb=2048
  rm -rf "$found"
done
