"""The tree's filter on decoded payloads: Sparkplug B metric names and values, CBOR values, gzip'd JSON; decoding for
the filter bounded in time per pass and its texts bounded in bytes; JSON and text never decoded for it."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import cbor2
import pytest

from mqttchat.explorer.decoded_text import DecodedTexts
from mqttchat.explorer.decoders import DecoderRule, PayloadDecoders
from mqttchat.explorer.tree import TopicTree, parse_filter_text
from mqttchat.protocol import EMPTY_PROPERTIES, Properties
from tests.explorer.decoders import sparkplug_schema as spb
from tests.explorer.decoders.test_sparkplug import birth, payload

CBOR = Properties(content_type="application/cbor")
DDATA = "spBv1.0/G/DDATA/E/Boiler"


class Clock:
    """A clock the test moves: each reading advances it by ``step`` seconds."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 100.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def plant(tree: TopicTree, decoders: PayloadDecoders, pressure: float = 2.75) -> None:
    """A Sparkplug device whose data names its metric only by alias, a CBOR meter, a gzip'd inverter, and JSON."""

    def deliver(topic: str, data: bytes, at: float, properties: Properties = EMPTY_PROPERTIES) -> None:
        observation = decoders.observe(topic, data, at)
        tree.ingest(topic, data, properties=properties, received_at=at, observation=observation)

    deliver("spBv1.0/G/NBIRTH/E", birth(), 1.0)
    deliver("spBv1.0/G/DBIRTH/E/Boiler",
            payload([{"name": "Steam/Pressure", "alias": 20, "datatype": spb.DOUBLE, "double_value": 1.0}], seq=1),
            2.0)  # fmt: skip
    deliver(DDATA, payload([{"alias": 20, "double_value": pressure}], seq=2), 3.0)
    deliver("meters/m1", cbor2.dumps({"kwh": 1234.5}), 4.0, CBOR)
    deliver("solar/inverter", gzip.compress(json.dumps({"voltage": 231.5}).encode(), mtime=0), 5.0)
    deliver("home/temp", b'{"t": 21.5}', 6.0)


def shown(tree: TopicTree, text: str, texts: DecodedTexts | None, budget: float = 1.0) -> set[str]:
    if texts is not None:
        texts.begin(budget)
    visible = tree.visible(parse_filter_text(text), texts.text if texts is not None else None)
    assert visible is not None
    return {node.topic for node in visible if node.messages}


@pytest.fixture
def scene() -> Iterator[tuple[TopicTree, PayloadDecoders]]:
    tree, decoders = TopicTree(), PayloadDecoders()
    plant(tree, decoders)
    yield tree, decoders


def test_the_filter_finds_metrics_by_name_and_values_of_decoded_payloads(
    scene: tuple[TopicTree, PayloadDecoders],
) -> None:
    tree, decoders = scene
    texts = DecodedTexts(decoders)
    # The data names its metric by alias only: its name comes from the birth, found only in the decoded text.
    assert shown(tree, "steam/pressure", None) == set()
    assert shown(tree, "steam/pressure", texts) == {DDATA, "spBv1.0/G/DBIRTH/E/Boiler"}
    assert shown(tree, "/pressure = 2\\.7/", texts) == {DDATA}  # a regular expression over the decoded text
    assert shown(tree, "1234.5", texts) == {"meters/m1"}  # a CBOR float: eight bytes on the wire
    assert shown(tree, "voltage", texts) == {"solar/inverter"}  # inside gzip
    assert shown(tree, "21.5", texts) == {"home/temp"}  # JSON as it came
    assert shown(tree, "meters/+", texts) == {"meters/m1"}  # a wildcard filter looks at topics alone
    assert shown(tree, "home", texts) == {"home/temp"}


def test_json_and_text_are_not_decoded_for_the_filter() -> None:
    tree, decoders = TopicTree(), PayloadDecoders()
    tree.ingest("a/json", b'{"k": "v"}')
    tree.ingest("a/text", b"words")
    tree.ingest("a/bytes", bytes(range(1, 40)))
    texts = DecodedTexts(decoders)
    assert shown(tree, "nothing", texts) == set()
    assert texts.decoded == 0 and len(texts) == 0 and decoders.cache.stats.misses == 0


def test_a_pass_decodes_within_its_time_budget_and_matches_on_the_last_text_meanwhile(
    scene: tuple[TopicTree, PayloadDecoders],
) -> None:
    tree, decoders = scene
    clock = Clock()
    texts = DecodedTexts(decoders, clock=clock)
    assert shown(tree, "steam/pressure", texts, budget=0.0) == set()  # no time: nothing decoded yet
    assert texts.decoded == 0 and texts.deferred == 5  # the three Sparkplug topics, CBOR, gzip
    assert shown(tree, "steam/pressure", texts) == {DDATA, "spBv1.0/G/DBIRTH/E/Boiler"}
    decoded = texts.decoded
    assert shown(tree, "steam/pressure", texts, budget=0.0) == {DDATA, "spBv1.0/G/DBIRTH/E/Boiler"}
    assert texts.decoded == decoded  # the latest payloads did not change: nothing decoded again
    # A new message: without time to decode it, the topic is searched in its last text; then in the new one.
    data = payload([{"alias": 20, "double_value": 9.5}], seq=3)
    tree.ingest(DDATA, data, received_at=7.0, observation=decoders.observe(DDATA, data, 7.0))
    assert shown(tree, "= 2.75", texts, budget=0.0) == {DDATA}
    assert shown(tree, "= 2.75", texts) == set()
    assert shown(tree, "= 9.5", texts, budget=0.0) == {DDATA}
    # Each reading of this clock takes a second: a budget of 1.5 s lets one payload be decoded, the next pass the
    # rest.
    tree2, decoders2 = TopicTree(), PayloadDecoders()
    for i in range(4):
        tree2.ingest(f"m/{i}", cbor2.dumps({"reading": 1000 + i}), properties=CBOR)
    slow = DecodedTexts(decoders2, clock=Clock(step=1.0))
    assert len(shown(tree2, "100", slow, budget=1.5)) == 1  # in the CBOR integers' decoded text alone
    assert shown(tree2, "100", slow, budget=100.0) == {f"m/{i}" for i in range(4)}


def test_decoded_texts_stay_within_their_byte_budget() -> None:
    tree, decoders = TopicTree(), PayloadDecoders()
    topics = [f"meters/m{i:02}" for i in range(40)]
    for i, topic in enumerate(topics):
        tree.ingest(topic, cbor2.dumps({"serial": f"SN-{i:04}", "kwh": i + 0.5}), properties=CBOR)
    texts = DecodedTexts(decoders, max_bytes=2_000)
    assert shown(tree, "sn-0007", texts) == {"meters/m07"}
    assert texts.bytes <= 2_000 and 0 < len(texts) < len(topics)
    assert shown(tree, "sn-0031", texts) == {"meters/m31"}  # evicted texts are made again when needed
    assert texts.bytes <= 2_000


def test_new_rules_make_new_texts() -> None:
    tree, decoders = TopicTree(), PayloadDecoders()
    tree.ingest("dev/1", cbor2.dumps({"model": "X200"}))  # no content type: not decoded automatically
    texts = DecodedTexts(decoders)
    assert shown(tree, "model: x", texts) == set()
    decoders.choose(DecoderRule("dev/#", "cbor"))
    assert shown(tree, '"model": "x200"', texts) == {"dev/1"}


@pytest.mark.parametrize(
    ("topic", "data", "content_type", "rules", "expected"),
    [
        ("spBv1.0/G/DDATA/E/D", b"\x08\x01", None, (), True),
        ("spBv1.0/STATE/host", b'{"online": true}', None, (), False),
        ("a", b"\xa1", "application/cbor", (), True),
        ("a", b'{"a": 1}', "application/json", (), False),
        ("a", b"words", "text/plain", (), False),
        ("a", gzip.compress(b"x", mtime=0), None, (), True),
        ("a", b'{"a": 1}', None, (), False),
        ("a", b"\x00\x01", None, (), False),
        ("dev/1", b"\x00\x01", None, (DecoderRule("dev/#", "struct", struct="<h"),), True),
        ("dev/1", b"\x1f\x8b", None, (DecoderRule("dev/#", "text"),), False),
    ],
)  # fmt: skip
def test_which_payloads_a_decoder_transforms(
    topic: str, data: bytes, content_type: str | None, rules: tuple[DecoderRule, ...], expected: bool
) -> None:
    assert PayloadDecoders(rules).transforms(topic, data, content_type) is expected
