"""Dataclasses that are quick to define and quick to build: :func:`dataclass`, and :func:`fast_init`.

Packets, messages and flow events are dataclasses, and both their definition and their construction cost:

* Defining one: Python 3.11's ``dataclasses.dataclass`` compiles each generated method (``__init__``,
  ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``) with an ``exec`` of its own, and asks
  ``inspect.signature`` for the docstring of a class without one: about 1 ms a frozen class, and the forty of the
  protocol core and the client were a fifth of ``mqttchat pub``'s start. :func:`dataclass` lets the standard
  decorator collect the fields and make the slots but generate nothing, compiles ``__init__`` alone and makes
  the other methods closures. The result is a genuine dataclass (``dataclasses.fields``, ``replace`` and
  ``asdict`` work) with the same ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, frozenness and pickling;
  ``__dataclass_params__`` says the methods were not generated. Type checkers see ``dataclasses.dataclass``.
* Building one: a frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__``, about
  0.2 µs a field; the ``__init__`` of a frozen class made by :func:`dataclass` stores each field through its slot
  descriptor, two to three times faster (:func:`fast_init` does that to a class of the standard decorator).
  Assignment after construction still raises ``FrozenInstanceError``.
* Building one in a hot path (a packet decoded, a message handed out, an acknowledgement settled):
  :func:`builder` returns a function that takes every field positionally and builds the object as an instance of
  a twin class with the same slots and no frozen ``__setattr__`` (plain slot stores, which Python 3.11
  specialises) and then makes it an instance of the real class (one ``__class__`` assignment, which Python allows
  between classes of the same layout). About half the time of the slot-setting ``__init__``, and no ``__init__``
  runs: the callers give already-checked values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["builder", "dataclass", "fast_init", "slot_setter"]

C = TypeVar("C", bound=type[Any])
T = TypeVar("T")


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


def builder(cls: type[T]) -> Callable[..., T]:
    """A function ``build(field0, field1, ...)`` returning a ``cls`` (a slots dataclass, frozen or not) with those
    fields, set in definition order, without calling ``__init__`` (see the module)."""
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    slots = cls.__dict__.get("__slots__")
    if slots is None or tuple(slots) != names:
        raise TypeError(f"builder needs a slots dataclass declaring all its fields itself, not {cls.__name__}")
    # The twin has the same bases and slots, so that Python accepts the __class__ assignment.
    twin = type(f"_{cls.__name__}Builder", cls.__bases__, {"__slots__": names})
    ns: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    body = "".join(f"    obj.{name} = {name}\n" for name in names)
    exec(f"def build({', '.join(names)}):\n    obj = _new(_twin)\n{body}    obj.__class__ = _cls\n    return obj\n", ns)
    build: Callable[..., T] = ns["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    build.__doc__ = f"A {cls.__name__} from its fields in order, without __init__ (see mqttchat.protocol.fastinit)."
    return build


def _frozen_setattr(cls: type[Any], names: frozenset[str]) -> tuple[Any, Any]:
    def setattr_(self: Any, name: str, value: object) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def delattr_(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return setattr_, delattr_


def _values(names: list[str]) -> Any:
    """A function returning the named attributes of an object as a tuple (``attrgetter``, always a tuple)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    return lambda obj: ()


def _methods(cls: type[Any], frozen: bool, slots: bool) -> None:
    """Give ``cls`` (its fields collected by ``dataclasses``) the methods ``dataclasses`` would: ``__init__``
    compiled (it builds every packet), the others closures (compiling each is what costs)."""
    fields = dataclasses.fields(cls)
    own = cls.__dict__
    names = [f.name for f in fields]
    ns: dict[str, Any] = {"__object_setattr": object.__setattr__, "__missing": dataclasses.MISSING}
    params: list[str] = []
    body: list[str] = []
    for f in fields:
        if f._field_type is not dataclasses._FIELD:  # type: ignore[attr-defined]  # an InitVar
            raise TypeError(f"{cls.__name__}.{f.name}: mqttchat's dataclass does not support InitVar")
        if not f.init or f.kw_only:
            raise TypeError(f"{cls.__name__}.{f.name}: mqttchat's dataclass needs positional __init__ fields")
        value = f.name
        if f.default is not dataclasses.MISSING:
            ns[f"__default_{f.name}"] = f.default
            params.append(f"{f.name}=__default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"__factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=__missing")
            value = f"__factory_{f.name}() if {f.name} is __missing else {f.name}"
        else:
            params.append(f.name)
        if not frozen:
            body.append(f"  self.{f.name} = {value}")
        elif slots:
            ns[f"__set_{f.name}"] = slot_setter(cls, f.name)
            body.append(f"  __set_{f.name}(self, {value})")
        else:
            body.append(f"  __object_setattr(self, {f.name!r}, {value})")
    if hasattr(cls, "__post_init__"):
        body.append("  self.__post_init__()")
    methods: dict[str, Any] = {}
    if "__init__" not in own:
        exec("\n".join([f"def __init__(self, {', '.join(params)}):", *(body or ["  pass"])]) + "\n", ns)
        methods["__init__"] = ns["__init__"]

    shown = [(f.name, f"{f.name}=") for f in fields if f.repr]

    def repr_(self: Any) -> str:
        inner = ", ".join(label + repr(getattr(self, name)) for name, label in shown)
        return f"{self.__class__.__qualname__}({inner})"

    compared = _values([f.name for f in fields if f.compare])

    def eq_(self: Any, other: object) -> Any:
        if other.__class__ is self.__class__:
            return compared(self) == compared(other)
        return NotImplemented

    methods["__repr__"] = repr_
    methods["__eq__"] = eq_
    if frozen:
        methods["__setattr__"], methods["__delattr__"] = _frozen_setattr(cls, frozenset(names))
        if slots:
            state = _values(names)

            def getstate_(self: Any) -> list[Any]:
                return list(state(self))

            def setstate_(self: Any, values: list[Any]) -> None:
                for name, value in zip(names, values, strict=True):
                    object.__setattr__(self, name, value)

            methods["__getstate__"] = getstate_
            methods["__setstate__"] = setstate_
    for name, method in methods.items():
        if name in own:
            if name in ("__setattr__", "__delattr__"):
                raise TypeError(f"cannot overwrite attribute {name} in class {cls.__name__}")
            continue  # a method the class defines itself wins, as with dataclasses
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)
    class_hash = own.get("__hash__", dataclasses.MISSING)
    explicit_hash = not (class_hash is dataclasses.MISSING or (class_hash is None and "__eq__" in own))
    if not explicit_hash:
        if frozen:
            hashed = _values([f.name for f in fields if (f.compare if f.hash is None else f.hash)])

            def hash_(self: Any) -> int:
                return hash(hashed(self))

            hash_.__qualname__ = f"{cls.__qualname__}.__hash__"
            cls.__hash__ = hash_  # type: ignore[assignment]
        else:
            cls.__hash__ = None  # type: ignore[assignment]  # eq without frozen: unhashable, as with dataclasses


if TYPE_CHECKING:
    from dataclasses import dataclass
else:

    def dataclass(cls=None, /, *, frozen=False, slots=False):
        """``dataclasses.dataclass`` with ``init``, ``repr`` and ``eq`` (the defaults), ``frozen`` and ``slots``,
        quicker to define and, frozen, quicker to build (see the module)."""

        def wrap(cls):
            # A class without a docstring gets one naming its fields: the standard decorator's asks
            # inspect.signature, which tokenizes text signatures.
            documented = bool(cls.__doc__)
            if not documented:
                cls.__doc__ = cls.__name__
            cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False, slots=slots)
            if not documented:
                cls.__doc__ = f"{cls.__name__}({', '.join(f.name for f in dataclasses.fields(cls))})"
            _methods(cls, frozen, slots)
            return cls

        return wrap if cls is None else wrap(cls)
