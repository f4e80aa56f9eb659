#!/usr/bin/env bash
# payload_compare (bench/detect/compare.sh's driver) on a few values: both engines must flag the
# SQL injection and the XSS, pass the benign values, and print a speed line; bad input is refused.
# usage: payload_compare_smoke.sh PATH/TO/payload_compare
set -euo pipefail
bin=$1
dir=$(mktemp -d /tmp/payload-compare-smoke.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/values.csv" <<'CSV'
"payload","length","attack_type","label"
"1' or 1=1 union select password from users--","44","sqli","anom"
"<script>alert(document.cookie)</script>","39","xss","anom"
"c/ caridad s/n","14","norm","norm"
"hello world & friends","21","norm","norm"
CSV
fail=0
for engine in boing crs; do
  for mode in query body; do
    out=$("$bin" --engine "$engine" --mode "$mode" --rows all --csv "$dir/values.csv" 2>/dev/null)
    label=$engine
    [ "$engine" = boing ] && label=boing-rules
    for want in "class=sqli values=1 detected=1" "class=xss values=1 detected=1" \
                "class=norm values=2 detected=0"; do
      if ! grep -q "^result engine=$label mode=$mode rows=all $want\$" <<<"$out"; then
        echo "FAIL $engine $mode: expected '$want' in:"; echo "$out"; fail=1
      fi
    done
    grep -q "^speed engine=$label mode=$mode values=4 " <<<"$out" || { echo "FAIL no speed line"; fail=1; }
  done
done
printf '"payload","length"\n"x","1"\n' >"$dir/bad.csv"
if "$bin" --engine crs --csv "$dir/bad.csv" --rows all 2>"$dir/err"; then
  echo "FAIL a row with 2 fields was accepted"; fail=1
fi
grep -q "bad.csv:2: expected 4 fields" "$dir/err" || { echo "FAIL error names no line:"; cat "$dir/err"; fail=1; }
exit $fail
