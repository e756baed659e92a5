#!/usr/bin/env bash
# Mutation testing of tfp_vae's numerical core with mutmut (not run in CI: it takes hours).
#
# mutmut changes one operator, constant or argument at a time ("mutants") in the modules below
# and runs the tests that exercise the changed function; a mutant no test notices "survives".
# The run happens in a copy of the working tree (tracked and untracked, non-ignored files), so
# the checkout is never modified.
#
# Usage:  benchmarks/mutation.sh [MODULE ...]     (default: kl losses evaluation heads)
# Needs:  pip install -e ".[mutation]"; the offline data in $TFP_VAE_DATA_DIR (../shared/data).
# Environment:
#   MUTATION_DIR  where the copy and mutmut's results go (default: a new /tmp/tfp_vae_mutation.*;
#                 rerunning with the same directory resumes where mutmut stopped).
#   JOBS          mutants tested in parallel (default 1: each one starts TensorFlow).
#   PYTHON        the interpreter with tfp_vae's dependencies (default: .venv/bin/python).
#   MUTANTS       optional mutmut name patterns, to test only some functions first, e.g.
#                 MUTANTS='tfp_vae.losses.x_negative_elbo* tfp_vae.evaluation.x_iwae*'.
#   TESTS         optional test files to select from instead of the default set below, e.g.
#                 TESTS='tests/test_heads.py tests/test_io.py' for a fast first pass over
#                 heads.py (a posterior_head mutant reaches ~3 min of tests in the full set);
#                 then rerun only its survivors against the full set in a new MUTATION_DIR:
#                 MUTANTS='name1 name2 ...'. A mutant no selected test reaches is "no tests".
# Afterwards:     cd $MUTATION_DIR && mutmut results   (survivors), mutmut show NAME (the diff).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
jobs=${JOBS:-1}
work=${MUTATION_DIR:-$(mktemp -d /tmp/tfp_vae_mutation.XXXXXX)}
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(kl losses evaluation heads)
export TFP_VAE_DATA_DIR=${TFP_VAE_DATA_DIR:-$(cd "$repo/.." && pwd)/shared/data}

mkdir -p "$work"
if [ ! -f "$work/setup.cfg" ]; then
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
     | xargs -0 -I{} sh -c 'test -f "{}" && printf "%s\0" "{}"' \
     | tar --null -T - -cf -) | tar -xf - -C "$work"
  only_mutate="" tests=""
  for module in "${modules[@]}"; do
    [ -f "$repo/tfp_vae/$module.py" ] || { echo "No module tfp_vae/$module.py." >&2; exit 2; }
    only_mutate+=$'\n    '"tfp_vae/$module.py"
  done
  # A mutant may be killed by any test of the numerical core, not only its module's file
  # (evaluation's tests exercise losses.py, for instance); mutmut runs only the tests that
  # reach the mutated function. The heads' get_config, flow posterior and save/load paths are
  # tested in test_io, test_posterior_flow and test_models; the analytic KL's refusal of a
  # learnable prior in test_priors; negative_iwae_bound (losses.py) in test_objectives.
  read -r -a test_files <<< "${TESTS:-}"
  for file in "${test_files[@]}"; do
    [ -f "$repo/$file" ] || { echo "No test file $file (TESTS takes paths like tests/test_heads.py)." >&2; exit 2; }
  done
  [ ${#test_files[@]} -gt 0 ] || test_files=(kl losses evaluation heads io posterior_flow models
                                             priors objectives "${modules[@]}")
  for module in "${test_files[@]}"; do
    module=${module#tests/test_}; module=${module%.py}
    case "$tests" in *"tests/test_$module.py"*) ;; *)
      [ ! -f "$repo/tests/test_$module.py" ] || tests+=$'\n    '"tests/test_$module.py" ;;
    esac
  done
  # forkserver: mutmut's own process never imports TensorFlow, whose thread pools do not
  # survive a fork. addopts is emptied so pytest's --durations report stays out of the way.
  cat >> "$work/setup.cfg" <<EOF
[mutmut]
source_paths=tfp_vae/
only_mutate=$only_mutate
pytest_add_cli_args_test_selection=$tests
pytest_add_cli_args=
    -o
    addopts=
    -p
    no:cacheprovider
process_isolation=forkserver
forkserver_warmup=import
preload_modules_file=mutmut_preload.txt
also_copy=
    tests/
EOF
  printf 'numpy\ntensorflow\ntensorflow_probability\ntf_keras\n' > "$work/mutmut_preload.txt"
fi

cd "$work"
echo "Mutation testing ${modules[*]} in $work ($jobs at a time)."
set -f  # the patterns are mutmut's, not the shell's
read -r -a patterns <<< "${MUTANTS:-}"
"$python" -m mutmut run --max-children "$jobs" "${patterns[@]}" || true
"$python" -m mutmut results
