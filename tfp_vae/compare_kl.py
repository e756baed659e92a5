"""The KL-estimator study's old home: a thin alias of `tfp_vae.study`.

`python -m tfp_vae.compare_kl` and `tfp-vae compare-kl` run `tfp_vae.study.main` with the one
argument parser of `tfp_vae.study.configure_parser`. New code imports from `tfp_vae.study`.

#### Examples

```python
from tfp_vae.compare_kl import run_study  # same as tfp_vae.study.run_study
```
"""

import sys

from tfp_vae.quiet import import_tensorflow_quietly

if __name__ == "__main__":
    import_tensorflow_quietly(sys.argv[1:])  # before tfp_vae.study imports TensorFlow

from tfp_vae.study import (  # noqa: E402
    KLStudyResult,
    StudySettings,
    configure_parser,
    gaussian_estimator_variances,
    main,
    run_from_args,
    run_study,
)
from tfp_vae.study.estimators import DISTANCES, ONE_D_CASES  # noqa: E402

__all__ = ["DISTANCES", "ONE_D_CASES", "KLStudyResult", "StudySettings", "configure_parser",
           "gaussian_estimator_variances", "main", "run_from_args", "run_study"]

if __name__ == "__main__":
    sys.exit(main())
