"""Build the bundled persona library (personas/library.jsonl) from the attribute tables.

Every table under personas/attributes/ was written for this project. This script combines them
into short, natural persona descriptions (one to three sentences each), the people whose
requests the model role-plays when it writes user prompts.

The build is reproducible: a fixed seed, no network, the standard library plus PyYAML, and the
same tables always give a byte-identical library.jsonl.

    python personas/build_library.py                 # rewrite personas/library.jsonl
    python personas/build_library.py --out /tmp/x.jsonl --count 500
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable, Hashable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import yaml

HERE = Path(__file__).resolve().parent
ATTRIBUTES_DIR = HERE / "attributes"
DEFAULT_OUT = HERE / "library.jsonl"
SEED = 20240611
DEFAULT_COUNT = 6000

#: attribute name -> (table file stem, field holding the phrase)
TABLES: dict[str, tuple[str, str]] = {
    "occupation": ("occupation", "title"),
    "life_stage": ("life_stage", "age"),
    "place": ("place", "at"),
    "interest": ("interest", "does"),
    "expertise": ("expertise", "does"),
    "temperament": ("temperament", "trait"),
    "goal": ("goal", "goal"),
}
ATTRIBUTE_KEYS = (*TABLES, "pronouns")

DEFAULT_AGES = (23, 66)
KINDS = {"work", "student", "retired", "home"}
PRONOUN_PLACEHOLDERS = {"subj", "obj", "pos", "refl"}
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # same result, just faster
PLACEHOLDER = re.compile(r"\{([A-Za-z_-]+)\}")


# --------------------------------------------------------------------------- grammar helpers


class Pronouns(NamedTuple):
    """One pronoun set; `plural` says whether verbs agree as with "they"."""

    key: str
    subj: str
    obj: str
    pos: str
    refl: str
    plural: bool


PRONOUNS = (
    Pronouns("she", "she", "her", "her", "herself", False),
    Pronouns("he", "he", "him", "his", "himself", False),
    Pronouns("they", "they", "them", "their", "themselves", True),
)
PRONOUN_WEIGHTS = (0.42, 0.42, 0.16)

_IRREGULAR = {
    "be": ("is", "are"),
    "have": ("has", "have"),
    "do": ("does", "do"),
    "go": ("goes", "go"),
}
_MODALS = {"can", "could", "will", "would", "shall", "should", "may", "might", "must"}


def conjugate(verb: str, plural: bool) -> str:
    """Present tense of `verb` (given in the base form) for a singular or plural subject."""
    if verb in _IRREGULAR:
        return _IRREGULAR[verb][1 if plural else 0]
    if plural or verb in _MODALS:
        return verb
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if len(verb) > 1 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


_VOWEL_SOUND_LETTERS = set("AEFHILMNORSX")  # letters whose spoken name starts with a vowel
_CONSONANT_SOUND_PREFIXES = ("uni", "use", "usu", "uti", "eu", "one", "once", "ewe")
_SILENT_H_PREFIXES = ("hour", "honest", "honour", "heir")


def indefinite_article(phrase: str) -> str:
    """'a' or 'an' for the phrase, by how its first word is spoken."""
    word = phrase.split()[0].split("-")[0]
    letters = re.sub(r"[^A-Za-z]", "", word)
    if not letters:
        return "a"
    if len(letters) > 1 and letters.isupper():  # an acronym, spelled out letter by letter
        return "an" if letters[0] in _VOWEL_SOUND_LETTERS else "a"
    lower = letters.lower()
    if lower.startswith(_CONSONANT_SOUND_PREFIXES):
        return "a"
    if lower.startswith(_SILENT_H_PREFIXES) or lower[0] in "aeiou":
        return "an"
    return "a"


def cap(text: str) -> str:
    """Upper-case the first character only."""
    return text[:1].upper() + text[1:]


def render(phrase: str, pron: Pronouns, plural: bool, values: dict[str, str] | None = None) -> str:
    """Fill {placeholders}: given values, then pronouns, then verbs conjugated for `plural`."""
    values = values or {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        if name in PRONOUN_PLACEHOLDERS:
            return getattr(pron, name)
        if name in {"Subj", "Pos"}:
            return cap(getattr(pron, name.lower()))
        return conjugate(name, plural)

    return PLACEHOLDER.sub(fill, phrase)


# --------------------------------------------------------------------------- tables


def _ages(entry: dict[str, Any], default: tuple[int, int] | None) -> tuple[int, int] | None:
    ages = entry.get("ages")
    if ages is None:
        return default
    lo, hi = ages
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 < lo <= hi):
        raise ValueError(f"bad ages {ages!r} for {entry.get('key')!r}")
    return lo, hi


def load_tables(directory: Path = ATTRIBUTES_DIR) -> dict[str, list[dict[str, Any]]]:
    """Read and check every attribute table; returns attribute name -> list of entries."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for attr, (stem, field) in TABLES.items():
        path = directory / f"{stem}.yaml"
        entries = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: expected a non-empty list of entries")
        seen: set[str] = set()
        for entry in entries:
            key = entry.get("key")
            if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9_]+", key):
                raise ValueError(f"{path}: bad key {key!r}")
            if key in seen:
                raise ValueError(f"{path}: duplicate key {key!r}")
            seen.add(key)
            for name in (field, "does", "detail", "situation", "title"):
                text = entry.get(name)
                if name == field and not isinstance(text, str):
                    raise ValueError(f"{path}: {key} has no {field!r}")
                if isinstance(text, str) and re.search(r"[.!?;]|\s\s|^\s|\s$", text):
                    raise ValueError(f"{path}: {key}.{name} must be a bare phrase: {text!r}")
            kind = entry.get("kind", "work")
            kinds = entry.get("kinds", [])
            if kind not in KINDS or not set(kinds) <= KINDS:
                raise ValueError(f"{path}: {key} has an unknown kind")
        tables[attr] = entries
    place_tags = {tag for place in tables["place"] for tag in place.get("tags", [])}
    for attr in ("occupation", "interest"):
        for entry in tables[attr]:
            if not isinstance(entry.get("does"), str):
                raise ValueError(f"{attr} {entry['key']} has no 'does'")
            missing = set(entry.get("needs", [])) - place_tags
            if missing:
                raise ValueError(f"{attr} {entry['key']} needs unknown place tags {missing}")
    for place in tables["place"]:
        if not isinstance(place.get("detail"), str) or not place["at"].startswith(("in ", "on ")):
            raise ValueError(f"place {place['key']} needs 'at' (in/on ...) and 'detail'")
    return tables


def _overlap(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    if a is None:
        return b
    if b is None:
        return a
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return (lo, hi) if lo <= hi else None


def _fits(entry: dict[str, Any], kind: str, ages: tuple[int, int], span: int = 0) -> bool:
    """Whether the entry suits the occupation kind and overlaps `ages` by more than `span` years."""
    if entry.get("kinds") and kind not in entry["kinds"]:
        return False
    both = _overlap(_ages(entry, None), ages)
    return both is not None and both[1] - both[0] >= span


def _has_tag(entry: dict[str, Any], needs: frozenset[str]) -> bool:
    """Whether a place has one of the tags an occupation needs (any place if it needs none)."""
    return not needs or bool(needs & set(entry.get("tags", [])))


def _tag_needed(entry: dict[str, Any], tags: frozenset[str]) -> bool:
    """Whether an entry with optional `needs` suits a place with these tags."""
    needs = set(entry.get("needs", []))
    return not needs or bool(needs & tags)


def _suits_expertise(entry: dict[str, Any], kind: str, ages: tuple[int, int], tech: bool) -> bool:
    return _fits(entry, kind, ages) and not (tech and entry.get("nontech"))


# --------------------------------------------------------------------------- templates


GOAL_FRAMES = (
    "{be} trying to {goal}",
    "{want} to {goal}",
    "{hope} to {goal}",
    "{be} working out how to {goal}",
    "{be} determined to {goal}",
    "{be} looking for a sensible way to {goal}",
    "{be} keen to {goal}",
)

_HOW_GOALS = ("work out", "understand", "find a way", "make sense", "learn", "get a handle")


def _clashes(frame: str, goal: str) -> bool:
    """True for pairings like 'working out how to work out ...' that read badly."""
    return ("how to" in frame or "way to" in frame) and goal.startswith(_HOW_GOALS)


# Each template is one to three sentences. Besides pronouns and verbs it can use:
#   a_title/A_title (with article), title, at, frm, detail, age/Age, does, does_who,
#   interest, interest_who, exp, trait, goal, goalf (goal in a frame), and the life-stage
#   situation in several shapes: who (relative pronoun, optionally with the situation),
#   who_only, sit_and, sit_list, sit_tail, sit_comma (each empty when there is none).
TEMPLATES: tuple[str, ...] = (
    "{A_title} {at} {age} {who}{interest_who}; {subj} {be} {trait} and {goalf}. "
    "Day to day {subj} {does}, and {subj} {exp}.",
    "{A_title} {age}, living {at}, {detail}. {Subj} {does} and, in {pos} spare time, {interest}. "
    "Friends would describe {obj} as {trait}; {subj} {sit_list}{exp} and {goalf}.",
    "{Age}, this {title} {frm} {does_who}. {Subj} {be} {trait}, and on a free evening "
    "{subj} {interest}. {Subj} {sit_and}{exp}; right now {subj} {goalf}.",
    "{A_title} {age} who {does_who}, based {at}; {subj} {be} {trait}. "
    "{Subj} {sit_list}{interest} in {pos} free time and {exp}. "
    "{Pos} priority right now is to {goal}.",
    "{Subj} {be} {a_title} {age} living {at}, {detail}{sit_tail}. "
    "{Subj} {interest}, {exp} and {be} {trait}. At the moment {subj} {goalf}.",
    "{A_title} {frm} {age}{who_only}. {Subj} {does}; outside of that, {subj} {interest}. "
    "By temperament {subj} {be} {trait}, and {subj} {exp} and {goalf}.",
    "{Age}, {subj} {be} {a_title} {at} {who}{interest_who}. "
    "{Subj} {be} {trait}; {subj} {exp} and {goalf}.",
    "{A_title} {at}, {detail}. {Subj} {be} {age}{sit_comma} and {does}. "
    "People who know {obj} call {obj} {trait}; {subj} {interest}, {exp} and {goalf}.",
    "{A_title} {age} {at} {who}{interest_who}, {subj} {be} {trait}, {exp} and {goalf}.",
)


def compose(
    template: str, pron: Pronouns, goal_frame: str, chosen: dict[str, dict[str, Any]]
) -> str:
    """Write one persona description from a template and the chosen table entries."""
    occ, stage, place = chosen["occupation"], chosen["life_stage"], chosen["place"]

    def agree(phrase: str, **extra: str) -> str:  # verbs agree with the pronoun subject
        return render(phrase, pron, pron.plural, extra)

    def singular(phrase: str) -> str:  # verbs agree with a singular noun ("a nurse who keeps")
        return render(phrase, pron, False)

    title = occ["title"]
    a_title = f"{indefinite_article(title)} {title}"
    age = render(stage["age"], pron, False)
    sit = stage.get("situation")
    goal = agree(chosen["goal"]["goal"])
    values = {
        "a_title": a_title,
        "A_title": cap(a_title),
        "title": title,
        "at": place["at"],
        "frm": "from " + place["at"].split(" ", 1)[1],
        "detail": place["detail"],
        "age": age,
        "Age": cap(age),
        "does": agree(occ["does"]),
        "does_who": singular(occ["does"]),
        "interest": agree(chosen["interest"]["does"]),
        "interest_who": singular(chosen["interest"]["does"]),
        "exp": agree(chosen["expertise"]["does"]),
        "trait": chosen["temperament"]["trait"],
        "goal": goal,
        "goalf": agree(goal_frame, goal=goal),
        "who": f"who {singular(sit)} and " if sit else "who ",
        "who_only": f" who {singular(sit)}" if sit else "",
        "sit_and": f"{agree(sit)} and " if sit else "",
        "sit_list": f"{agree(sit)}, " if sit else "",
        "sit_tail": f", and {pron.subj} {agree(sit)}" if sit else "",
        "sit_comma": f", {agree(sit)}," if sit else "",
    }
    text = render(template, pron, pron.plural, values)
    return re.sub(r"\s+", " ", text).strip()


_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z]|$)")


def count_sentences(text: str) -> int:
    """Number of sentences: '.', '!' or '?' followed by a capital letter or the end."""
    return len(_SENTENCE_END.findall(text.strip()))


# --------------------------------------------------------------------------- build


class _Picker:
    """Chooses the least-used compatible entry of a table, breaking ties at random."""

    def __init__(self, entries: list[dict[str, Any]], rng: random.Random) -> None:
        self.entries = entries
        self.rng = rng
        self.used = [0] * len(entries)
        self._compatible: dict[Hashable, list[int]] = {}

    def pick(
        self, ok: Callable[[dict[str, Any]], bool] | None = None, key: Hashable = None
    ) -> dict[str, Any]:
        """Pick among entries passing `ok`; `key` names the filter so its result is cached."""
        indices = self._compatible.get(key)
        if indices is None:
            indices = [i for i, entry in enumerate(self.entries) if ok is None or ok(entry)]
            if not indices:
                raise ValueError(f"no compatible entry for {key!r}")
            self._compatible[key] = indices
        fewest = min(self.used[i] for i in indices)
        choice = self.rng.choice([i for i in indices if self.used[i] == fewest])
        self.used[choice] += 1
        return self.entries[choice]


def _choose(pickers: dict[str, _Picker]) -> dict[str, dict[str, Any]]:
    """Pick one compatible entry from every table, starting from the occupation."""
    occ = pickers["occupation"].pick()
    kind = occ.get("kind", "work")
    occ_ages = _ages(occ, DEFAULT_AGES)
    assert occ_ages is not None
    stage = pickers["life_stage"].pick(
        partial(_fits, kind=kind, ages=occ_ages, span=1), key=(kind, occ_ages)
    )
    ages = _overlap(occ_ages, _ages(stage, None))
    assert ages is not None
    needs = frozenset(occ.get("needs", []))
    place = pickers["place"].pick(partial(_has_tag, needs=needs), key=needs)
    tags = frozenset(place.get("tags", []))
    tech = bool(occ.get("tech"))
    return {
        "occupation": occ,
        "life_stage": stage,
        "place": place,
        "interest": pickers["interest"].pick(partial(_tag_needed, tags=tags), key=tags),
        "expertise": pickers["expertise"].pick(
            partial(_suits_expertise, kind=kind, ages=ages, tech=tech), key=(kind, ages, tech)
        ),
        "temperament": pickers["temperament"].pick(),
        "goal": pickers["goal"].pick(partial(_fits, kind=kind, ages=ages), key=(kind, ages)),
    }


def build(count: int = DEFAULT_COUNT, seed: int = SEED) -> list[dict[str, Any]]:
    """Compose `count` distinct personas; returns the records written to library.jsonl."""
    tables = load_tables()
    rng = random.Random(seed)
    pickers = {attr: _Picker(entries, rng) for attr, entries in tables.items()}
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(records) < count:
        attempts += 1
        if attempts > count * 20:
            raise RuntimeError("could not compose enough distinct personas")
        chosen = _choose(pickers)
        pron = rng.choices(PRONOUNS, weights=PRONOUN_WEIGHTS)[0]
        template = rng.choice(TEMPLATES)
        goal_text = chosen["goal"]["goal"]
        frames = [f for f in GOAL_FRAMES if not _clashes(f, goal_text)]
        text = compose(template, pron, rng.choice(frames), chosen)
        if text in seen:
            continue
        if not 1 <= count_sentences(text) <= 3 or "{" in text or "}" in text:
            raise RuntimeError(f"malformed persona: {text!r}")
        seen.add(text)
        attributes = {attr: entry["key"] for attr, entry in chosen.items()}
        attributes["pronouns"] = pron.key
        record_id = f"p{len(records) + 1:06d}"
        records.append({"id": record_id, "persona": text, "attributes": attributes})
    return records


def write(records: list[dict[str, Any]], out_path: Path) -> None:
    """Write records as JSON lines (UTF-8, '\\n' line ends, stable key order)."""
    lines = [json.dumps(record, ensure_ascii=False, separators=(",", ":")) for record in records]
    out_path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def main(out_path: str | Path = DEFAULT_OUT, count: int = DEFAULT_COUNT) -> Path:
    """Build the library and write it to `out_path`; returns the path."""
    out = Path(out_path)
    write(build(count), out)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output JSONL path")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="number of personas")
    args = parser.parse_args()
    path = main(args.out, args.count)
    print(f"wrote {args.count} personas to {path}", file=sys.stderr)
