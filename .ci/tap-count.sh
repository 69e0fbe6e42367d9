# Sourced by .ci/run (and its test): totals of the tap runs of a CI job.
# shellcheck shell=bash
total_pass=0
total_fail=0
overall=0
failures=""

# Adds the tap summary in log $2 (exit status $3) to the totals; $1 names the run.
count() {
  local label=$1 log=$2 status=$3
  # tap's summary line: "# { total: 80, pass: 79, fail: 1 }" (fail absent when 0).
  local summary pass fail
  # -a: a log with a control character in it is still text, not a "binary file" with no summary.
  summary=$(grep -aE '^# \{ total: [0-9]+' "$log" | tail -1)
  pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
  fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
  pass=${pass:-0}
  fail=${fail:-0}
  if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  if [ "$status" -ne 0 ]; then overall=$status; fi
  echo "tap summary of $label: ${summary:-none}"
  # Which tests failed, gathered for the end, where a truncated log still shows them.
  failures+=$(grep -aE '^ *not ok ' "$log" | grep -avE '# (TODO|SKIP)' | sed "s|^|[$label] |")$'\n'
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
}

