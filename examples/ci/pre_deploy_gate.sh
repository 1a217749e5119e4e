# Pre-deploy gate (bash): let a model through only if its signature verifies against a
# trusted signer AND a static scan finds nothing blocking. One report covers both.
#
#   bash examples/ci/pre_deploy_gate.sh MODEL_DIR [POLICY] [VERIFY_OPTION...]
#
# (No `#!` line, so that scanning this repository's examples/ does not report the script as
# an executable shipped beside the sample models, MG483; copy it and add one if you like.)
#
# POLICY (default modelguard.toml) lists the [[trusted_signers]] that may have signed the model
# (any one suffices) and the scan policy (allowlist additions, suppressions, fail_on). Extra
# options go to `modelguard verify`, e.g. `--revision abc123` to require the signed revision, or
# `--public-key release.pub` to trust a key given here instead of the policy's signers.
#
# Environment: GATE_REPORT (default modelguard-gate.json) is where the JSON report is written;
# MODELGUARD (default `modelguard`) is the command to run.
#
# Exit codes (those of `modelguard verify --scan`): 0 deploy; 1 blocked: the signature or a file
# does not verify, or a finding blocks; 2 blocked: the model could not be fully checked or the
# input is unusable (missing signature, policy or trust). Only 0 lets the deploy go on.
set -uo pipefail

if [ $# -lt 1 ]; then
  echo "usage: bash pre_deploy_gate.sh MODEL_DIR [POLICY] [VERIFY_OPTION...]" >&2
  exit 2
fi
model=$1
policy=${2:-modelguard.toml}
shift $(( $# >= 2 ? 2 : 1 ))
report=${GATE_REPORT:-modelguard-gate.json}
read -r -a command <<< "${MODELGUARD:-modelguard}"

"${command[@]}" verify "$model" --scan --policy "$policy" --format json -o "$report" \
  --no-progress "$@"
rc=$?
case $rc in
  0) echo "gate: PASS: $model is signed by a trusted signer and scans clean ($report)" ;;
  1) echo "gate: BLOCKED: $model failed verification or has a blocking finding ($report)" >&2 ;;
  *) echo "gate: BLOCKED: $model could not be fully checked (exit $rc; see above)" >&2 ;;
esac
exit "$rc"
