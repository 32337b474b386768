#!/usr/bin/env bash
# The teacher's pairs for configs/task/report2ecg_fast.yaml: cohorts of checkpoints/report2ecg's guided samples
# (16 Euler steps, guidance 2) in the condition mixes users prompt with. Each cohort resumes where it stopped: run
# this again after an interruption. One thread per process; run two of these lines at once on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SYNTH=${SYNTH:-.venv/bin/synth}
common=(configs/cohort/default.yaml steps=16 guidance_scale=2 shard_size=500)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
$SYNTH cohort "${common[@]}" size=8000 seed=11 reports=composed --out runs/reflow/composed
$SYNTH cohort "${common[@]}" size=3000 seed=12 reports=train --out runs/reflow/own
$SYNTH cohort "${common[@]}" size=3000 seed=13 reports=composed labels.given=false age.source=none \
    sex.source=none heart_rate.source=none --out runs/reflow/text
$SYNTH cohort "${common[@]}" size=1500 seed=14 reports=none --out runs/reflow/labels
$SYNTH cohort "${common[@]}" size=500 seed=15 reports=composed --out runs/reflow/val
