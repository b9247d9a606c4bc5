"""mqttchat.protocol.fastinit.dataclass behaves as ``dataclasses.dataclass`` does, class for class."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any, ClassVar

import pytest

from mqttchat.protocol import Publish
from mqttchat.protocol.fastinit import dataclass


def _pair(frozen: bool) -> tuple[type[Any], type[Any]]:
    """The same class made by the standard decorator and by ours."""

    def define(decorator: Any) -> type[Any]:
        @decorator(frozen=frozen, slots=True)
        class Record:
            KIND: ClassVar[str] = "record"
            name: str
            size: int = 0
            tags: Any = dataclasses.field(default_factory=list)
            note: str = dataclasses.field(default="", repr=False, compare=False)

        return Record

    return define(dataclasses.dataclass), define(dataclass)


@pytest.mark.parametrize("frozen", [True, False])
def test_same_behaviour_as_the_standard_decorator(frozen: bool) -> None:
    std, ours = _pair(frozen)
    assert [f.name for f in dataclasses.fields(ours)] == ["name", "size", "tags", "note"]
    assert ours.__slots__ == std.__slots__
    assert ours.__match_args__ == std.__match_args__
    assert ours.KIND == "record"
    a, b = std("x", 3, ["t"], "n"), ours("x", 3, ["t"], "n")
    assert repr(b) == repr(a)
    assert b == ours("x", 3, ["t"], "other note")  # compare=False leaves the note out
    assert b != ours("x", 4, ["t"])
    assert b != a  # another class: NotImplemented, as dataclasses have it
    assert ours("y").tags == [] and ours("y").tags is not ours("y").tags
    assert ours("y", size=2).size == 2
    with pytest.raises(TypeError):
        ours()
    if frozen:
        # Hashed as the standard class hashes: the compared fields (a tuple here: lists are unhashable).
        assert hash(ours("x", 3, ("t",), "n")) == hash(std("x", 3, ("t",), "m")) == hash(("x", 3, ("t",)))
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'size'"):
            b.size = 4
        with pytest.raises(dataclasses.FrozenInstanceError):
            del b.size
    else:
        assert ours.__hash__ is None is std.__hash__  # eq without frozen: unhashable
        b.size = 4
        assert b.size == 4
    b2 = dataclasses.replace(b, size=9)
    assert (b2.name, b2.size) == ("x", 9)
    assert dataclasses.asdict(b2) == dataclasses.asdict(dataclasses.replace(a, size=9))
    for clone in (copy.copy(b2), copy.deepcopy(b2)):
        assert clone == b2
    assert hasattr(ours, "__getstate__") == hasattr(std, "__getstate__")


def test_methods_a_class_defines_itself_win() -> None:
    @dataclass(frozen=True, slots=True)
    class Custom:
        value: int

        def __repr__(self) -> str:
            return "custom"

        def __hash__(self) -> int:
            return 7

    assert repr(Custom(1)) == "custom"
    assert hash(Custom(1)) == 7
    assert Custom(1) == Custom(1)


def test_post_init_runs() -> None:
    seen: list[int] = []

    @dataclass(slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            seen.append(self.value)

    Checked(5)
    assert seen == [5]


@dataclass(frozen=True, slots=True)
class Pickled:
    name: str
    size: int = 0


def test_frozen_records_pickle_and_are_documented() -> None:
    record = Pickled("x", 2)
    assert pickle.loads(pickle.dumps(record)) == record
    assert Pickled.__doc__ == "Pickled(name, size)"


def test_packets_compare_hash_and_stay_frozen() -> None:
    publish = Publish("a/b", b"payload", qos=1, packet_id=7)
    assert publish == Publish("a/b", b"payload", qos=1, packet_id=7)
    assert hash(publish) == hash(Publish("a/b", b"payload", qos=1, packet_id=7))
    assert repr(publish).startswith("Publish(topic='a/b', payload=b'payload', qos=1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        publish.qos = 2  # type: ignore[misc]


def test_builder_makes_the_same_object_as_the_constructor() -> None:
    from mqttchat.protocol.fastinit import builder

    build = builder(Pickled)
    built = build("x", 2)
    assert type(built) is Pickled
    assert built == Pickled("x", 2) and repr(built) == repr(Pickled("x", 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.size = 3  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(built)) == built


def test_builder_needs_the_fields_as_its_own_slots() -> None:
    from mqttchat.protocol.fastinit import builder

    @dataclass(frozen=True, slots=True)
    class Child(Pickled):
        extra: int = 0

    with pytest.raises(TypeError, match="builder needs"):
        builder(Child)
