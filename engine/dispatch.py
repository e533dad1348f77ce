"""Dispatch on IR nodes (and on breakdown dimensions) that fails loudly.

Each walker over the IR (compiler, checker, reference evaluator, breakdown domain,
canonical form) keeps one `Dispatch` per kind of node it handles, declared over the
whole set it must cover: a union of IR classes (`ir.Cond`, `ir.Filter`, `ir.Event`) or
the vocabulary's dimension names. A node without a handler raises `InternalError`
naming its type, instead of falling through to another node's meaning (an unknown
dimension compiled as `hospital`, an unknown filter read as `not`). Every `Dispatch` is
listed in `DISPATCHERS`, so that one test can check that each covers its whole domain
(tests/test_dispatch.py): adding an IR class or a dimension without a handler in every
walker fails there, before any cohort is counted.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

from antal.engine.errors import InternalError

__all__ = ["DISPATCHERS", "Dispatch", "members"]

F = TypeVar("F", bound=Callable[..., Any])

DISPATCHERS: list[Dispatch[Any]] = []


def members(domain: Any) -> tuple[Hashable, ...]:
    """The keys a domain stands for: a union's classes, or the items of a tuple of names."""
    if typing.get_origin(domain) in (typing.Union, types.UnionType):
        return typing.get_args(domain)
    if isinstance(domain, type):
        return (domain,)
    return tuple(domain)


def _name(key: Hashable) -> str:
    return key.__name__ if isinstance(key, type) else repr(key)


class Dispatch(Generic[F]):
    """A handler per key (an IR class, looked up by exact type, or a dimension name)."""

    def __init__(self, what: str, domain: Any) -> None:
        self.what = what  # e.g. "compiler: condition", used in the error's message
        self.domain = members(domain)
        self.handlers: dict[Hashable, F] = {}
        DISPATCHERS.append(self)

    def on(self, *keys: Hashable) -> Callable[[F], F]:
        """Register the decorated function as the handler of `keys` (all in the domain)."""

        def register(fn: F) -> F:
            for key in keys:
                if key not in self.domain:
                    raise InternalError(f"{self.what}: {_name(key)} is not in its domain")
                if key in self.handlers:
                    raise InternalError(f"{self.what}: {_name(key)} has two handlers")
                self.handlers[key] = fn
            return fn

        return register

    def __call__(self, key: Hashable) -> F:
        """The handler of a key; `InternalError` naming the key when there is none."""
        try:
            return self.handlers[key]
        except KeyError:
            raise InternalError(f"{self.what}: no handler for {_name(key)}") from None
        except TypeError:  # an unhashable key is not in any domain either
            raise InternalError(f"{self.what}: no handler for {key!r}") from None

    def of(self, node: object) -> F:
        """The handler of a node's exact type."""
        return self(type(node))

    def missing(self) -> list[str]:
        """Keys of the domain without a handler (the generative guard's question)."""
        return [_name(k) for k in self.domain if k not in self.handlers]

    def __repr__(self) -> str:
        return f"Dispatch({self.what!r}, {len(self.handlers)}/{len(self.domain)} handled)"

    def keys(self) -> Iterable[Hashable]:
        return self.handlers.keys()
