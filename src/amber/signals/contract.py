"""The contract every signal type keeps, checked the same way for built-ins and plug-ins
(python-threatexchange's ``SignalTypeAutoTest``).

``check_signal_type(signal_type, workdir=...)`` raises ``SignalContractError`` listing
every broken promise; a plug-in's own tests can call it on its type. It checks that:

- each example validates to itself; ``distance(x, x) == 0``; distance is symmetric;
- invalid text raises ``SignalValueError`` naming the type;
- values computed from generated content are named for the type and validate to themselves;
- a media type's index (``SignalType.index``) finds exactly what ``BruteForceIndex`` finds,
  with the type's values stored as bank entries in a real SQLite database in ``workdir``.
"""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path

import sqlalchemy as sa
from PIL import Image, ImageOps

from amber.errors import InternalError, SignalValueError
from amber.signals.base import Content, Reads, Role, SignalType, SignalValue
from amber.signals.registry import Registry

#: Values compared pairwise and banked for the index check, at most (spread evenly).
MAX_VALUES = 400
#: Texts no signal type accepts as a value.
INVALID_TEXTS = ("", "not a value", "\x00", "g" * 600)


class SignalContractError(InternalError):
    """A signal type breaks the signal-type contract; ``problems`` lists how."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"signal type {name!r} breaks the contract:\n- " + "\n- ".join(problems))
        self.problems = problems


def check_signal_type(signal_type: SignalType, *, workdir: Path) -> None:
    """Check ``signal_type`` against the contract. Raises ``SignalContractError``."""
    problems: list[str] = []
    name = signal_type.name
    examples = signal_type.examples()
    if not examples:
        problems.append("examples() is empty")
    for example in examples:
        _check_value(signal_type, example, "example", problems)
    for text in INVALID_TEXTS:
        try:
            signal_type.validate(text)
        except SignalValueError as exc:
            if exc.signal_type != name:
                problems.append(f"validate({text!r}) names type {exc.signal_type!r}, not {name!r}")
        except Exception as exc:  # the contract is about which error, so catch any
            problems.append(f"validate({text!r}) raised {type(exc).__name__}, not SignalValueError")
        else:
            problems.append(f"validate({text!r}) accepted an invalid value")
    computed = _computed(signal_type, problems)
    for value in computed:
        if value.signal_type != name:
            problems.append(f"compute() gave a value named {value.signal_type!r}, not {name!r}")
        elif signal_type.reads is Reads.media:
            _check_value(signal_type, value.value, "computed value", problems)
    values = list(dict.fromkeys([*examples, *(v.value for v in computed)]))
    if len(values) > MAX_VALUES:  # keypoint types give hundreds an image: a spread of them
        step = len(values) / MAX_VALUES
        values = [values[int(n * step)] for n in range(MAX_VALUES)]
    for a, b in itertools.combinations(values, 2):
        if signal_type.distance(a, b) != signal_type.distance(b, a):
            problems.append(f"distance({a!r}, {b!r}) is not symmetric")
    if signal_type.reads is Reads.media and not problems:
        _check_index(signal_type, values, workdir, problems)
    if problems:
        raise SignalContractError(name, problems)


def sample_contents() -> list[Content]:
    """Generated content every media type is computed on: photos, near copies, a flat
    image, a short video, and bytes that are neither."""
    import tempfile

    from amber.synthetic import photo, video

    contents = []
    for image in (
        photo(1, 320, 240),
        photo(1, 320, 240).resize((300, 225)),
        ImageOps.mirror(photo(1, 320, 240)),
        photo(2, 320, 240),
        photo(2, 320, 240).crop((8, 8, 312, 232)),
        Image.new("RGB", (64, 64), (200, 10, 10)),
    ):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        contents.append(Content(data=buffer.getvalue(), image=image))
    with tempfile.TemporaryDirectory(prefix="amber-contract-") as folder:
        clip = video(Path(folder) / "clip.mp4", 1, width=160, height=96, fps=5, seconds=3)
        contents.append(Content(data=clip.read_bytes()))
    contents.append(Content(data=b"not an image"))
    return contents


def _check_value(signal_type: SignalType, value: str, what: str, problems: list[str]) -> None:
    try:
        canonical = signal_type.validate(value)
    except SignalValueError as exc:
        problems.append(f"{what} {value!r} does not validate: {exc}")
        return
    if canonical != value:
        problems.append(f"{what} {value!r} validates to {canonical!r}, not to itself")
    if signal_type.distance(value, value) != 0:
        problems.append(f"distance({value!r}, {value!r}) is not 0")


def _computed(signal_type: SignalType, problems: list[str]) -> list[SignalValue]:
    if signal_type.reads is Reads.post:
        contents = [
            Content(text="Vote now: should we keep the bakery open on Sundays?"),
            Content(text="", question="Which colour?", options=("red", "blue")),
        ]
        roles = [Role.query]
    else:
        contents = sample_contents()
        roles = [Role.query, Role.bank]
    out: list[SignalValue] = []
    for content, role in itertools.product(contents, roles):
        try:
            out.extend(signal_type.compute(content, role=role))
        except Exception as exc:  # report which content broke it, whatever it raised
            problems.append(f"compute() on generated content ({role}) raised {exc!r}")
    if not out:
        problems.append("compute() gave no value for any generated content")
    return out


def _check_index(
    signal_type: SignalType, values: list[str], workdir: Path, problems: list[str]
) -> None:
    """Bank ``values`` in a fresh database and compare the type's index with brute force."""
    from amber.banks import BankStore
    from amber.index.signal import BruteForceIndex
    from amber.matching import Matcher
    from amber.store.db import connect
    from amber.store.tables import entry_signals

    workdir.mkdir(parents=True, exist_ok=True)
    db = connect(workdir / f"contract-{signal_type.name}.db")
    try:
        registry: Registry[SignalType] = Registry("signal type")
        registry.register(signal_type)
        banks = BankStore(db, registry)
        banks.create("contract", threshold=max(0, min(63, signal_type.default_threshold)))
        rows = io.StringIO()
        csv.writer(rows).writerows([signal_type.name, v] for v in values)
        rows.seek(0)
        banks.import_csv("contract", rows, source="contract")
        matcher = Matcher(db, registry, workdir / f"index-{signal_type.name}")
        index = matcher.indexes[signal_type.name]
        reference = BruteForceIndex(signal_type)
        query = sa.select(entry_signals.c.id, entry_signals.c.value).where(
            entry_signals.c.signal_type == signal_type.name
        )
        with db.connect() as conn:
            stored = conn.execute(query).all()
        reference.add([int(r.id) for r in stored], [str(r.value) for r in stored])
        radii = sorted({0, signal_type.default_threshold // 2, signal_type.default_threshold})
        for radius in radii:
            found = index.search(values, radius)
            expected = reference.search(values, radius)
            if index.max_hits is not None:  # the nearest so many: distances must agree
                expected = [
                    hits if len(hits) <= index.max_hits else _nearest(hits, f)
                    for hits, f in zip(expected, found, strict=True)
                ]
            if found != expected:
                problems.append(
                    f"index {type(index).__name__} at radius {radius} found {found}, "
                    f"brute force {expected}"
                )
    finally:
        db.dispose()


def _nearest(
    expected: list[tuple[int, int]], found: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Brute force's answer as an index that keeps the nearest ``len(found)`` would give
    it, when ``found`` is such an answer: the same distances, rows among those at each."""
    ok = [d for _, d in found] == [d for _, d in expected[: len(found)]] and set(found) <= set(
        expected
    )
    return found if ok else expected
