#!/bin/sh
# tests/slurm.sh - `normbench slurm`, the missing runs as Slurm job arrays,
# as TAP, against a stand-in sbatch that runs each array task here the way
# Slurm would (SLURM_ARRAY_TASK_ID set, --export's NB_OFFSET passed): the
# blocks below --max-array, every run done exactly once, nothing to submit
# afterwards, and only the missing runs resubmitted.  tests/slurm-cluster.sh
# does the same against a real single-node cluster (slurmctld, slurmd,
# munge), with a cancelled and a killed task.
set -u

. "${srcdir:-.}/tests/taplib.sh"
tap_init slurm
mkdir -p "$W/bin"
need_nb

# the stand-in: sbatch --array=SPEC[%K] [--export=ALL,NB_OFFSET=B] SCRIPT
cat >"$W/bin/sbatch" <<'SB'
#!/bin/sh
spec= off=0
for a in "$@"; do
    case "$a" in
    --array=*) spec=${a#--array=}; spec=${spec%%%*} ;;
    --export=*) off=$(echo "$a" | sed -n 's/.*NB_OFFSET=\([0-9]*\).*/\1/p'); off=${off:-0} ;;
    *) script=$a ;;
    esac
done
echo "$*" >>"$SBATCH_LOG"
for r in $(echo "$spec" | tr ',' ' '); do
    lo=${r%-*} hi=${r#*-}
    t=$lo
    while [ "$t" -le "$hi" ]; do
        SLURM_ARRAY_TASK_ID=$t NB_OFFSET=$off sh "$script" >/dev/null 2>&1 || exit 1
        t=$((t + 1))
    done
done
echo "Submitted batch job 42"
SB
chmod +x "$W/bin/sbatch"
export SBATCH_LOG="$W/sbatch.log"
R=$W/r
E=$R/test-tiny

"$NB" slurm "$CONF/test-tiny.ini" --results-dir "$R" --max-array 5 >"$W/plan.out" 2>"$W/plan.err"
is "$?" 0 "slurm prints the plan (exit 0)"
is "$(grep -c '^sbatch ' "$W/plan.out")" 3 "  12 runs in blocks of 5: three arrays"
check "  the third block is offset by 10" grep -q "^sbatch --array=0-1%32 --export=ALL,NB_OFFSET=10 " "$W/plan.out"
check "  the array script is written" [ -x "$E/slurm/sweep.sbatch" ]
check "  and runs run T + NB_OFFSET" grep -q 'SLURM_ARRAY_TASK_ID + ${NB_OFFSET:-0}' "$E/slurm/sweep.sbatch"

PATH="$W/bin:$PATH" "$NB" slurm "$CONF/test-tiny.ini" --results-dir "$R" --max-array 5 --submit \
    >"$W/sub.out" 2>"$W/sub.err"
is "$?" 0 "slurm --submit exits 0"
is "$(wc -l <"$SBATCH_LOG" | tr -d ' ')" 3 "  three sbatch calls"
is "$(ls "$E"/*/DONE 2>/dev/null | wc -l | tr -d ' ')" 12 "  every run is done"
is "$(awk '$4 == "start" { print $6 }' "$E/events.log" | sort | uniq -d | wc -l | tr -d ' ')" 0 \
    "  no run started twice"

"$NB" slurm "$CONF/test-tiny.ini" --results-dir "$R" >"$W/none.out" 2>&1
is "$?" 0 "nothing missing: exit 0"
check "  and says so" grep -q "nothing to submit: all 12 runs are done" "$W/none.out"

# two runs lost: only they are submitted
id3=$("$NB" list "$CONF/test-tiny.ini" | sed -n 4p | cut -f2)
id9=$("$NB" list "$CONF/test-tiny.ini" | sed -n 10p | cut -f2)
rm -rf "${E:?}/$id3" "${E:?}/$id9"
"$NB" slurm "$CONF/test-tiny.ini" --results-dir "$R" --max-array 5 --throttle 0 >"$W/re.out" 2>&1
check "after two runs are lost, only they are planned" \
    sh -c "grep -q '^sbatch --array=3 ' '$W/re.out' && grep -q '^sbatch --array=4 --export=ALL,NB_OFFSET=5 ' '$W/re.out'"
: >"$SBATCH_LOG"
PATH="$W/bin:$PATH" "$NB" slurm "$CONF/test-tiny.ini" --results-dir "$R" --max-array 5 --submit \
    >/dev/null 2>&1
is "$(ls "$E"/*/DONE 2>/dev/null | wc -l | tr -d ' ')" 12 "  and the resubmission finishes them"
"$NB" slurm "$CONF/test-tiny.ini" --max-array 0 >/dev/null 2>"$W/bad.err"
is "$?" 2 "--max-array 0 is a usage error"
PATH="/nonexistent" "$NB" slurm "$CONF/test-tiny.ini" --results-dir "$W/r2" --submit \
    >/dev/null 2>"$W/nosb.err"
is "$?" 1 "--submit without sbatch fails"
check "  and says why" grep -q "is Slurm's sbatch on PATH" "$W/nosb.err"

echo "1..$n"
[ "$failed" -eq 0 ]
