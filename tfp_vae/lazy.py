"""Names a package imports on first use (PEP 562), so importing it loads no TensorFlow.

`tfp_vae` and `tfp_vae.study` export their public names lazily: `python -m tfp_vae.cli` and
`python -m tfp_vae.study` can then set TensorFlow's C++ log level before TensorFlow is imported.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's module-level `__getattr__` and `__dir__` for lazily imported names.

    Args:
      package: The package's `__name__`, e.g. `"tfp_vae"`.
      exports: Public name -> the submodule (relative to `package`) that defines it.

    Returns:
      `(__getattr__, __dir__)`: the first imports the defining submodule on first use and caches
      the value in the package; the second lists loaded and lazy names.

    Raises:
      AttributeError: (from `__getattr__`) for a name that is not exported.

    #### Examples

    ```python
    _EXPORTS = {"train_run": "runs"}
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
    ```
    """
    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        vars(sys.modules[package])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[package]), *exports])

    return __getattr__, __dir__
