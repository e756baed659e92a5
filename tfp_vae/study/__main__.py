"""`python -m tfp_vae.study`: the KL study from the shell (same options as `tfp-vae compare-kl`)."""

import sys

from tfp_vae.quiet import import_tensorflow_quietly

import_tensorflow_quietly(sys.argv[1:])  # before the runner imports TensorFlow

from tfp_vae.study.runner import main  # noqa: E402

sys.exit(main())
