"""Command-line flags made from config fields, and the argparse types of numeric flags.

Every field of `ModelConfig` and `TrainingConfig` describes its flag in its metadata (see
`tfp_vae.config`); `add_config_flags` turns them into argparse options, so a new config field
gets its flag without a line here, and `given_fields` reads back the fields a user gave.
Importing this module does not import TensorFlow (the configs are imported on use).

#### Examples

```python
parser = argparse.ArgumentParser()
add_config_flags(parser)
given = given_fields(parser.parse_args(["--latent-dim", "16", "--kl-attachment", "loss-fn"]))
assert given == {"model": {"latent_dim": 16, "kl_attachment": "loss-fn"}, "training": {}}
```
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

__all__ = ["add_config_flags", "given_fields", "int_at_least", "number"]


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum` (0 or 1).

    Args:
      minimum: `0` or `1`.

    Returns:
      A function that parses the text or raises `argparse.ArgumentTypeError` saying what it
      expected, e.g. "expected a positive integer, got '0'".
    """
    description = {0: "an integer >= 0", 1: "a positive integer"}[minimum]

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
        return value

    return parse


def number(positive: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite non-negative number, or with `positive` one above zero.

    Args:
      positive: Refuse zero too. Default: `False`.

    Returns:
      A function that parses the text or raises `argparse.ArgumentTypeError` saying what it
      expected.
    """
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(
                f"expected a finite non-negative number, got {text!r}")
        if positive and value == 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def _options(spec: dataclasses.Field, default: Any, flag: str) -> dict[str, Any]:
    """argparse options of a config field's flag, from its type and metadata."""
    from tfp_vae.config import cli_name

    meta, kind = spec.metadata, spec.type.split(" | ")[0]
    text = meta.get("help")
    text = text() if callable(text) else text
    if kind == "bool":
        return {"action": "store_false" if default else "store_true", "help": text}
    shown = cli_name(default) if isinstance(default, str) else default
    options = {"help": f"{text + ' ' if text else ''}(default: {shown})"}
    if "choices" in meta:
        # Either spelling is accepted (`mixed_bfloat16`, `mixed-bfloat16`); help shows dashes.
        return {**options, "choices": [cli_name(n) for n in meta["choices"]], "type": cli_name}
    options["metavar"] = meta.get("metavar", flag[2:].upper().replace("-", "_"))
    if "nargs" in meta:
        options["nargs"] = meta["nargs"]
    if kind == "float":
        options["type"] = number(meta.get("positive", False))
    elif kind == "int" or "nargs" in meta:
        minimum = meta.get("minimum", 1)
        options["type"] = int if minimum is None else int_at_least(minimum)
    elif kind != "str":
        raise TypeError(f"Config field {spec.name} ({spec.type}) has no flag type; give it "
                        "flag=None in tfp_vae.config.")
    return options


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Adds a flag per `TrainingConfig` and `ModelConfig` field, in a group per config.

    A flag not given is absent from the parsed arguments (not set to the default), so a
    resumed run keeps its saved value; the help shows the config's default.

    Args:
      parser: The parser (e.g. `tfp-vae train`'s).

    Raises:
      TypeError: If a field has a type no flag is made for and no `flag=None`.
    """
    from tfp_vae.config import ModelConfig, TrainingConfig, flag_name

    for key, config in (("training", TrainingConfig()), ("model", ModelConfig())):
        group = parser.add_argument_group(f"{key} ({type(config).__name__})")
        for spec in dataclasses.fields(config):
            flag = flag_name(spec.name)
            if flag:
                group.add_argument(flag, *spec.metadata.get("aliases", ()),
                                   dest=f"{key}.{spec.name}", default=argparse.SUPPRESS,
                                   **_options(spec, getattr(config, spec.name), flag))


def given_fields(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config fields given on the command line: `{"model": {...}, "training": {...}}`.

    Args:
      args: Arguments parsed by a parser with `add_config_flags`.

    Returns:
      Field values by name, in the spelling typed (the configs translate it).
    """
    given: dict[str, dict[str, Any]] = {"model": {}, "training": {}}
    for key, value in vars(args).items():
        if key.startswith(("model.", "training.")):
            config, name = key.split(".")
            given[config][name] = value
    return given
