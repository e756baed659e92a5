"""Loading TensorFlow without its C++ start-up log lines, for the command-line entry points.

TensorFlow prints about eight lines when it loads and probes its devices (oneDNN, cuInit
"E0000", absl's "WARNING: All log messages before absl::InitializeLog()", CPU features). The
entry points (`tfp-vae`, `python -m tfp_vae.compare_kl`, `python -m tfp_vae.study`) call
`import_tensorflow_quietly` before anything imports TensorFlow; `--verbose` or a
`TF_CPP_MIN_LOG_LEVEL` set by the user keeps the lines. This module imports nothing of
tfp_vae and TensorFlow only inside the function.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["VERBOSE_FLAG", "VERBOSE_HELP", "import_tensorflow_quietly"]

VERBOSE_FLAG = "--verbose"
VERBOSE_HELP = "show TensorFlow's own start-up and C++ log lines (hidden by default)"


def import_tensorflow_quietly(argv: Sequence[str] = ()) -> bool:
    """Loads TensorFlow without its C++ start-up lines (oneDNN, CUDA probing, absl).

    `TF_CPP_MIN_LOG_LEVEL` alone does not silence them in TF 2.16+ (some are written before
    absl's logging starts), so it is set to 2 and stderr goes to /dev/null while TensorFlow
    loads and probes its devices; errors after that are printed as usual.

    Args:
      argv: The command-line arguments; `--verbose` among them keeps TensorFlow's lines.
        Default: `()`.

    Returns:
      `True` if TensorFlow was loaded quietly, `False` if it was left alone: `--verbose` was
      given, the user set `TF_CPP_MIN_LOG_LEVEL`, or TensorFlow was already imported.

    #### Examples

    ```python
    import_tensorflow_quietly(sys.argv[1:])  # first thing in an entry point
    ```
    """
    if (VERBOSE_FLAG in argv or "TF_CPP_MIN_LOG_LEVEL" in os.environ
            or "tensorflow" in sys.modules):
        return False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return True
