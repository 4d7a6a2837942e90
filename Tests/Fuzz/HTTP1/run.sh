#!/usr/bin/env bash
# Builds the HTTP1 libFuzzer driver with AddressSanitizer and runs it for a bounded time.
#   Tests/Fuzz/HTTP1/run.sh [seconds]      (default 60)
# Uses the fuzzer runtime shipped with the Swift toolchain (libclang_rt.fuzzer); nothing from apt is needed.
# Build products, the growing corpus and any crash artifacts go to .build/fuzz-http1/.
set -euo pipefail
cd "$(dirname "$0")/../../.."

seconds="${1:-60}"
here=Tests/Fuzz/HTTP1
out=.build/fuzz-http1
mkdir -p "$out/corpus" "$out/artifacts"

flags=(-O -g -sanitize=fuzzer,address -swift-version 6 -parse-as-library -I "$out")

echo "== building GatewayCore"
swiftc "${flags[@]}" -wmo -module-name GatewayCore -emit-module -emit-module-path "$out/GatewayCore.swiftmodule" \
    -c Sources/GatewayCore/*.swift -o "$out/GatewayCore.o"
echo "== building HTTP1"
swiftc "${flags[@]}" -wmo -module-name HTTP1 -emit-module -emit-module-path "$out/HTTP1.swiftmodule" \
    -c Sources/HTTP1/*.swift -o "$out/HTTP1.o"
echo "== building the driver"
swiftc "${flags[@]}" -module-name FuzzHTTP1 "$here/FuzzHTTP1.swift" "$out/GatewayCore.o" "$out/HTTP1.o" \
    -o "$out/fuzz-http1"

echo "== fuzzing for ${seconds}s"
"$out/fuzz-http1" \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
    -dict="$here/http1.dict" -artifact_prefix="$out/artifacts/" \
    "$out/corpus" "$here/corpus"
