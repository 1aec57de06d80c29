"""plain_data: the only form in which values leave a sandbox for the host's comparisons."""
import collections
import json
import math

import pytest

from mgrpo.evaluation.code import plain_data
from mgrpo.evaluation.code.plain_data import MalformedData, Unserialisable


def round_trip(value):
    return plain_data.decode(plain_data.loads(json.dumps(plain_data.encode(value))))


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2 ** 63, -(10 ** 400), 1.5, -0.0, 1e300, "", "a\n\udc80é", b"\x00\xff",
    [1, [2.0, "x"]], (1, (2,)), (), {1, "a", (2, 3)}, frozenset({1}), {"k": [1], 2: (3,), (4, 5): None},
])
def test_plain_values_round_trip_with_their_types(value):
    back = round_trip(value)
    assert back == value and type(back) is type(value)
    assert repr(back) == repr(value)  # nested types too (1 vs 1.0 vs True, list vs tuple)


def test_ints_beyond_the_decimal_conversion_limit_round_trip():
    value = -(10 ** 5000) - 1  # str() of it fails (4300-digit limit): sent as hex
    assert round_trip(value) == value


def test_non_finite_floats_round_trip():
    assert math.isnan(round_trip(float("nan")))
    assert round_trip([float("inf"), float("-inf")]) == [float("inf"), float("-inf")]


def test_stdlib_dicts_become_the_plain_dict_they_equal():
    assert round_trip(collections.Counter("aab")) == {"a": 2, "b": 1}
    assert type(round_trip(collections.defaultdict(int, {1: 2}))) is dict


class AlwaysEqual:
    def __eq__(self, other):
        return True


class IntEqualsAll(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def test_a_subclass_or_numpy_scalar_crosses_as_the_plain_value_it_holds():
    """What `==` compares for them under the benchmarks (evalplus: `out == exp`), unless a subclass overrides it;
    the host compares the plain value, so an override (IntEqualsAll) never runs."""
    import numpy as np

    Point = collections.namedtuple("Point", "x y")
    assert type(round_trip(Point(1, 2))) is tuple and round_trip(Point(1, 2)) == (1, 2)
    back = round_trip(IntEqualsAll(3))
    assert type(back) is int and back == 3 and back != 4
    assert round_trip({"k": IntEqualsAll(1)}) == {"k": 1} and round_trip({"k": IntEqualsAll(1)}) != {"k": 2}
    assert round_trip([np.int64(7), np.float64(0.5), np.bool_(True)]) == [7, 0.5, True]
    assert type(round_trip(np.bool_(True))) is bool


@pytest.mark.parametrize("value", [AlwaysEqual(), [1, AlwaysEqual()], {"k": AlwaysEqual()},
                                   (x for x in "generator"), object, "numpy array"])
def test_anything_else_is_unserialisable_and_equal_to_nothing(value):
    if isinstance(value, str):  # "numpy array": evalplus's `assert out == exp` fails on an array (ambiguous truth value)
        import numpy as np

        value = np.array([1, 2])
    back = round_trip(value)
    assert isinstance(back, Unserialisable)
    assert back != back and not back == 3 and not 3 == back and back is not None


def test_cycles_and_deep_nesting_are_unserialisable():
    cycle = []
    cycle.append(cycle)
    assert isinstance(round_trip(cycle), Unserialisable)
    deep = []
    for _ in range(plain_data.MAX_DEPTH + 5):
        deep = [deep]
    assert isinstance(round_trip(deep), Unserialisable)


@pytest.mark.parametrize("text", [
    "NaN", "[Infinity]", "{", '{"tuple": [1], "set": [2]}', '{"eval": "1"}', '{"int": "0x10"}', '{"int": "1 "}',
    '{"set": [[1]]}', '{"dict": [[1]]}', '{"bytes": "zz"}', '{"float": "1.5"}', "[" * 100000 + "]" * 100000,
    '{"unserialisable": 3}',
])
def test_malformed_text_is_refused(text):
    with pytest.raises(MalformedData):
        plain_data.decode(plain_data.loads(text))


def test_many_numbers_with_one_hash_are_refused():
    # ints k * (2**61 - 1) all hash to 0: a set of 10**5 of them would take minutes to build on the host
    colliding = [k * (2 ** 61 - 1) for k in range(1, plain_data.MAX_SAME_HASH + 2)]
    with pytest.raises(MalformedData, match="same hash"):
        plain_data.decode(plain_data.encode(set(colliding)))
    assert plain_data.decode(plain_data.encode([0] * 1000)) == [0] * 1000  # equal values are fine


M64 = 1 << 64


def colliding_pairs(n, target=12345):
    """n distinct [a, b] whose tuples all have hash `target` (CPython 3.8+ xxHash-based tuple hash, 64-bit)."""
    p1, p2, p5 = 11400714785074694791, 14029467366897019727, 2870177450012600261
    rotl = lambda x: ((x << 31) | (x >> 33)) & (M64 - 1)  # noqa: E731
    rotr = lambda x: ((x >> 31) | (x << 33)) & (M64 - 1)  # noqa: E731
    x = rotr(((target - (2 ^ (p5 ^ 3527539))) * pow(p1, -1, M64)) % M64)
    out, a = [], 0
    while len(out) < n:
        a += 1
        acc1 = (rotl((p5 + (hash(a) % M64) * p2) % M64) * p1) % M64
        b = ((x - acc1) * pow(p2, -1, M64)) % M64
        b = b - M64 if b >= 1 << 63 else b
        if abs(b) <= (1 << 61) - 2 and b != -1:
            out.append([a, b])
    return out


def test_tuples_with_one_hash_are_refused_in_sets_and_dict_keys():
    # the reviewer's construction: 5000 distinct 2-tuples with one hash; a set of them is quadratic to build
    pairs = colliding_pairs(5000)
    assert len({hash(tuple(p)) for p in pairs[:3]}) == 1
    for text in ({"set": [{"tuple": p} for p in pairs]}, {"frozenset": [{"tuple": p} for p in pairs]},
                 {"dict": [[{"tuple": p}, 0] for p in pairs]}):
        with pytest.raises(MalformedData, match="same hash"):
            plain_data.decode(plain_data.loads(json.dumps(text)))
    few = pairs[:plain_data.MAX_SAME_HASH]
    assert len(plain_data.decode({"set": [{"tuple": p} for p in few]})) == len(few)  # a few collisions are fine
    assert plain_data.decode({"tuple": [{"tuple": p} for p in pairs]})[0] == tuple(pairs[0])  # no set: no limit


def test_node_budget_on_the_host():
    # ~6 MB of empty lists would be ~2M list objects (hundreds of MiB) once parsed: refused before json.loads
    flood = "[" + "[]," * plain_data.MAX_NODES + "[]]"
    with pytest.raises(MalformedData, match="more than"):
        plain_data.loads(flood)
    with pytest.raises(MalformedData, match="more than"):
        plain_data.read_report("n " + '{"a": ' + flood + "}", "n")
    # brackets and commas inside strings are not values; an unterminated string is not JSON
    assert plain_data.loads(json.dumps(["[,{" * 1000]), max_nodes=10) == ["[,{" * 1000]
    with pytest.raises(MalformedData):
        plain_data.loads('["' + '\\"' * 1000 + ",[" * 20, max_nodes=10)
    # the decoded value's nodes are counted too
    with pytest.raises(MalformedData, match="too many values"):
        plain_data.decode([[1, 2]] * 600, max_nodes=1000)
    assert plain_data.decode([[1, 2]] * 300, max_nodes=1000) == [[1, 2]] * 300


def test_report_line_is_the_last_one_with_the_nonce():
    stdout = 'noise\nabc {"a": 1}\nabc {"a": 2}\nother {"a": 3}\n'
    assert plain_data.read_report(stdout, "abc") == {"a": 2}
    for bad in ("abc [1]\n", "abc {\n", "nothing here\n"):
        with pytest.raises(MalformedData):
            plain_data.read_report(bad, "abc")
