"""One registry helper for everything tfp_vae looks up by name.

KL estimators, network bodies, posterior and likelihood heads, priors and datasets are each a
`Registry`: a read-only mapping from a name to an object, filled by a `register` decorator, that
answers an unknown name with one sentence listing the known ones. A user adds an estimator or a
network body from their own code, without editing the package:

```python
from tfp_vae.kl import register_kl_estimator

@register_kl_estimator("my_mc")
def my_mc_kl(posterior, prior, num_samples=1, seed=None, test_points=None):
    ...
```

Renamed entries keep their old name as a deprecated alias: looking it up warns once with
`DeprecationWarning` and returns the new entry.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A named collection of tfp_vae building blocks of one kind.

    Iterating, `len`, `in` and `sorted(registry)` see the canonical names only (deprecated
    aliases are hidden but still resolve in `registry[name]` and `get`).

    Args:
      kind: What the entries are, in words, for error messages (e.g. `'KL estimator'`).

    #### Examples

    ```python
    NETWORKS = Registry("network")

    @NETWORKS.register("tiny")
    def tiny(...): ...

    NETWORKS.get("tiny")
    NETWORKS.get("tiyn")  # ValueError: Unknown network 'tiyn'; choose one of ['tiny'].
    ```
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """A decorator that adds its argument under `name` and returns it unchanged.

        Args:
          name: The entry's name (a non-empty `str`).
          replace: Allow replacing an existing entry of the same name. Default: `False`.

        Returns:
          The decorator.

        Raises:
          ValueError: If `name` is empty, or already registered and `replace` is `False`.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
        if (name in self._entries or name in self._aliases) and not replace:
            raise ValueError(f"A {self.kind} named {name!r} is already registered; pick another "
                             "name or pass replace=True.")

        def decorator(entry: T) -> T:
            self._entries[name] = entry
            self._aliases.pop(name, None)
            return entry

        return decorator

    def add(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Registers `entry` under `name` (the non-decorator form of `register`)."""
        return self.register(name, replace=replace)(entry)

    def alias(self, old_name: str, name: str) -> None:
        """Keeps `old_name` working, with a `DeprecationWarning`, for the entry `name`."""
        if name not in self._entries:
            raise ValueError(f"Cannot alias {old_name!r} to unknown {self.kind} {name!r}.")
        self._aliases[old_name] = name

    def canonical(self, name: str) -> str:
        """The canonical name for `name` (resolving a deprecated alias, with a warning).

        Raises:
          ValueError: If `name` is neither an entry nor an alias.
        """
        if isinstance(name, str) and name in self._aliases:
            new = self._aliases[name]
            warnings.warn(f"The {self.kind} name {name!r} is deprecated; use {new!r}.",
                          DeprecationWarning, stacklevel=3)
            return new
        if isinstance(name, str) and name in self._entries:
            return name
        raise ValueError(f"Unknown {self.kind} {name!r}; choose one of {sorted(self._entries)}.")

    def get(self, name: str) -> T:  # type: ignore[override]
        """The entry registered as `name`.

        Raises:
          ValueError: If `name` is unknown; the message lists the known names.
        """
        return self._entries[self.canonical(name)]

    def __getitem__(self, name: str) -> T:
        try:
            return self.get(name)
        except ValueError as error:
            raise KeyError(str(error)) from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"
