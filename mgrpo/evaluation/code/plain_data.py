"""Plain-data JSON: how values cross the sandbox boundary (a candidate's outputs, a canonical solution's outputs).

The grader must never run code chosen by the candidate: a returned object whose `__eq__` always says True would
"pass" any comparison. So the sandboxed drivers only report VALUES, and the host compares them. This file is used
on both sides: the drivers get its source prepended (inside the sandbox they cannot import mgrpo; standard library
only, no `from __future__`), the host imports `decode`.

`encode` writes the built-in types None, bool, int, float (nan/inf too), str, bytes, list, tuple, dict, set,
frozenset, nested. A subclass of one of them (a namedtuple, Counter, OrderedDict, defaultdict, one with its own
`__eq__`) and a numpy scalar are written as the plain value they hold: the benchmarks compare them with `==`, which
for these is the plain value's comparison unless the subclass overrides it, and the host compares only plain values,
so an override never runs. Anything else (a custom class, a numpy array, a cycle, nesting deeper than MAX_DEPTH) is
written as `{"unserialisable": "<type name>"}`, which `decode` turns into an object equal to nothing: a wrong
answer.
Format: None/bool/str/finite float/int below 2**63 as JSON; other values as one-key objects: {"int": hex},
{"float": "nan"|"inf"|"-inf"}, {"bytes": hex}, {"tuple"|"set"|"frozenset": [...]}, {"dict": [[key, value], ...]}.

`decode` never unpickles or evals: it reads JSON (NaN/Infinity literals refused) and builds only those types; the
caller bounds the text's size. Anything malformed raises `MalformedData`. On the host, a text whose JSON could hold
more than MAX_NODES values (counted before parsing: '[', '{' and ',' outside strings) and a value of more than
MAX_NODES nodes are refused, so a small text of many empty containers cannot take the host's memory.
"""
import json
import math
import re

MAX_DEPTH = 100  # nesting; also stops cycles
MAX_NODES = 2_000_000  # values in one encoded output; on the host also in one report text and one decoded value
MAX_SAME_HASH = 64  # distinct values sharing one hash in one set/dict: more is a hash-flooding attempt on the host
_PLAIN_BASES = (bool, int, float, str, bytes, list, tuple, set, frozenset)
_BIG_INT = 1 << 63


class NotPlainData(Exception):
    """The value holds something that is not plain data (sandbox side)."""


def encode(value):
    """The JSON-ready form of `value`, or the unserialisable marker when it is not plain data."""
    budget = [MAX_NODES]
    try:
        return _encode(value, 0, budget)
    except NotPlainData as error:
        return {"unserialisable": str(error)[:200]}
    except RecursionError:
        return {"unserialisable": "too deep"}


def _encode(value, depth, budget):
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise NotPlainData("too deep or too large")
    kind = type(value)  # exact types here; a subclass is first turned into its base type (below)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -_BIG_INT < value < _BIG_INT else {"int": format(value, "x")}  # hex: no 4300-digit limit
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is list:
        return [_encode(item, depth + 1, budget) for item in value]
    if kind in (tuple, set, frozenset):
        return {kind.__name__: [_encode(item, depth + 1, budget) for item in value]}
    if kind is dict:
        return {"dict": [[_encode(k, depth + 1, budget), _encode(v, depth + 1, budget)]
                         for k, v in value.items()]}
    # The value a subclass or a numpy scalar holds, built by the base type (what the candidate's code does here
    # is its own business: it can return any value it likes; only the host's comparison must be plain).
    if isinstance(value, dict):
        return _encode(dict(dict.items(value)), depth + 1, budget)
    for base in _PLAIN_BASES:
        if isinstance(value, base):
            return _encode(base(value), depth + 1, budget)
    if kind.__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _encode(value.item(), depth + 1, budget)
    raise NotPlainData(f"{kind.__module__}.{kind.__qualname__}")


# ------------------------------------------------------------------------------------------------ host side
class MalformedData(ValueError):
    """The text is not plain-data JSON."""


class Unserialisable:
    """What a non-plain value becomes on the host: equal to nothing (not even itself), never None."""

    __slots__ = ("type_name",)
    __hash__ = None  # a set of it fails, as a set of anything unhashable does

    def __init__(self, type_name):
        self.type_name = type_name

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    def __repr__(self):
        return f"<unserialisable {self.type_name}>"


def _refuse_constant(name):
    raise MalformedData(f"bare {name} is not plain-data JSON")


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"', re.S)  # a whole string, or a lone quote (not JSON)


def _max_json_values(text, limit):
    """An upper bound on the values json.loads would build from `text`: every value after the first is preceded by
    '[', '{' or ',' (object keys are strings and come with their value); those inside strings do not count."""
    count = text.count("[") + text.count("{") + text.count(",") + 1
    if count <= limit:
        return count  # the cheap bound is enough
    for match in _JSON_STRING.finditer(text):  # linear: the first unterminated string ends it
        token = match.group()
        if token == '"':
            raise MalformedData("not JSON: unterminated string")
        count -= token.count("[") + token.count("{") + token.count(",")
    return count


def loads(text, max_nodes=MAX_NODES):
    """Parse JSON text strictly (no NaN/Infinity literals); any failure is MalformedData, as is a text that could
    hold more than `max_nodes` values (checked before parsing)."""
    if _max_json_values(text, max_nodes) > max_nodes:
        raise MalformedData(f"the text holds more than {max_nodes} values")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except MalformedData:
        raise
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise MalformedData(f"not JSON: {error}"[:300]) from None


def decode(obj, max_nodes=MAX_NODES):
    """The value an `encode` result (already parsed from JSON) stands for; MalformedData if it is not one or has
    more than `max_nodes` nodes."""
    try:
        return _decode(obj, 0, {"budget": max_nodes})
    except MalformedData:
        raise
    except (TypeError, ValueError, RecursionError) as error:  # e.g. a list inside a set, bad hex
        raise MalformedData(f"not plain data: {error!r}"[:300]) from None


def _decode(obj, depth, hashes):
    if depth > MAX_DEPTH:
        raise MalformedData("nested too deeply")
    hashes["budget"] -= 1  # the node budget rides in the numbers' hash table under a key no hash() returns
    if hashes["budget"] < 0:
        raise MalformedData("too many values")
    kind = type(obj)
    if obj is None or kind is bool or kind is str:
        return obj
    if kind is int or kind is float:
        return _number(obj, hashes)
    if kind is list:
        return [_decode(item, depth + 1, hashes) for item in obj]
    if kind is not dict or len(obj) != 1:
        raise MalformedData(f"unexpected {kind.__name__}")
    (tag, payload), = obj.items()
    if tag == "int" and type(payload) is str and payload.lstrip("-") and set(payload.lstrip("-")) <= set(
            "0123456789abcdef"):
        return _number(int(payload, 16), hashes)
    if tag == "float" and payload in ("nan", "inf", "-inf"):
        return float(payload)
    if tag == "bytes" and type(payload) is str:
        return bytes.fromhex(payload)
    if tag == "unserialisable" and type(payload) is str:
        return Unserialisable(payload)
    if type(payload) is not list:
        raise MalformedData(f"bad payload for {tag!r}")
    if tag in ("tuple", "set", "frozenset"):
        items = [_decode(item, depth + 1, hashes) for item in payload]
        if tag != "tuple":
            check_hash_spread(items)
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
    if tag == "dict":
        if not all(type(pair) is list and len(pair) == 2 for pair in payload):
            raise MalformedData("dict items must be [key, value] pairs")
        pairs = [(_decode(k, depth + 1, hashes), _decode(v, depth + 1, hashes)) for k, v in payload]
        check_hash_spread([k for k, _ in pairs])
        return dict(pairs)
    raise MalformedData(f"unknown tag {tag!r}")


def check_hash_spread(values):
    """MalformedData when more than MAX_SAME_HASH distinct values among `values` share one hash (call it before
    building a set or dict of them on the host: with one shared hash each insertion compares against all the others,
    so building it is quadratic; tuples of crafted numbers are easy to give one hash). Equal values may repeat freely
    (a repeated value is found at its first probe). An unhashable value raises TypeError, as set() would."""
    counts = {}
    for value in values:
        key = hash(value)
        counts[key] = counts.get(key, 0) + 1
    crowded = {key: [] for key, count in counts.items() if count > MAX_SAME_HASH}
    if not crowded:
        return
    for value in values:
        bucket = crowded.get(hash(value))
        if bucket is None or any(value is other or value == other for other in bucket):
            continue  # at most MAX_SAME_HASH comparisons per value
        if len(bucket) >= MAX_SAME_HASH:
            raise MalformedData("too many distinct values with the same hash (hash flooding)")
        bucket.append(value)


def _number(value, hashes):
    """Refuse many distinct numbers with one hash: building a set/dict of them on the host would be quadratic."""
    bucket = hashes.setdefault(hash(value), [])
    if value not in bucket:  # == on numbers only; the bucket stays small
        if len(bucket) >= MAX_SAME_HASH:
            raise MalformedData("too many distinct numbers with the same hash")
        bucket.append(value)
    return value


def read_report(stdout, nonce, max_nodes=MAX_NODES):
    """The JSON object on the last stdout line `<nonce> <json>` (raw: decode its values with `decode`).

    The nonce only tells the driver's line from the candidate's prints; a candidate that learns it can write its
    own line, which claims outputs but cannot make them right: they are compared on the host."""
    prefix = nonce + " "
    for line in reversed(stdout.splitlines()):
        if line.startswith(prefix):
            report = loads(line[len(prefix):], max_nodes)
            if type(report) is not dict:
                raise MalformedData("the report is not a JSON object")
            return report
    raise MalformedData("no report line")
