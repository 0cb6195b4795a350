"""Contract templates: this project's own wording, laid out like the national model
contracts, one TOML file per version (``<id>/<version>.toml``); chapters the templates
share live in ``common/<version>.toml`` and are pulled in with ``include``.

A template names the terms it renders (``terms = "contract" | "resale" |
"termination"``). Its chapters hold clauses: a string with ``{field}`` placeholders, or
``{ text = "...", when = "flag" }`` for a clause that only some contracts carry
(``when`` is a flag, ``!flag`` for its absence, or ``a|b`` for either). Chapters and
clauses are numbered when rendered (第一章, 第一条), so a template never numbers by hand.

A version, once used, is never edited: a change is a new file with a higher version.
``sha256`` is the hash of the resolved template (its title and chapters with the shared
chapters filled in), so a document's ``template_sha256`` names the exact wording it was
rendered from.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cn2an

from signing.canonical import canonical_json, sha256_hex

HERE = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_VERSION = re.compile(r"(\d{4})\.(\d+)")


class TemplateError(ValueError):
    """A template is malformed, or a contract's terms leave one of its fields empty."""


@dataclass(frozen=True, slots=True)
class Clause:
    text: str
    when: str = ""

    def applies(self, flags: set[str]) -> bool:
        if not self.when:
            return True
        return any(
            (option[1:] not in flags) if option.startswith("!") else (option in flags)
            for option in self.when.split("|")
        )


@dataclass(frozen=True, slots=True)
class Chapter:
    heading: str
    clauses: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    version: str
    title: str
    terms: str
    chapters: tuple[Chapter, ...]
    sha256: str

    def render(self, fields: dict[str, str], flags: set[str]) -> dict[str, Any]:
        """The text: ``{"title", "chapters": [{"heading", "clauses"}]}``, numbered, every
        placeholder filled with a non-empty value."""

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            value = fields.get(name, "")
            if not value.strip():
                raise TemplateError(f"{self.id} {self.version}: field {name!r} is empty")
            return value

        chapters = []
        number = 0
        for position, chapter in enumerate(self.chapters, start=1):
            clauses = []
            for clause in chapter.clauses:
                if clause.applies(flags):
                    number += 1
                    text = _PLACEHOLDER.sub(fill, clause.text)
                    clauses.append(f"第{cn2an.an2cn(number)}条　{text}")
            if clauses:
                heading = f"第{cn2an.an2cn(position)}章　{chapter.heading}"
                chapters.append({"heading": heading, "clauses": clauses})
        return {"title": self.title, "chapters": chapters}


def _clause(raw: Any, where: str) -> Clause:
    if isinstance(raw, str):
        return Clause(raw)
    if isinstance(raw, dict) and set(raw) <= {"text", "when"} and isinstance(raw.get("text"), str):
        return Clause(raw["text"], str(raw.get("when", "")))
    raise TemplateError(f"{where}: a clause is a string or {{ text, when }}")


def _chapter(raw: dict[str, Any], where: str) -> Chapter:
    if set(raw) != {"heading", "clauses"} or not isinstance(raw["clauses"], list):
        raise TemplateError(f"{where}: a chapter has a heading and clauses")
    return Chapter(str(raw["heading"]), tuple(_clause(c, where) for c in raw["clauses"]))


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TemplateError(f"{path.name}: {error}") from None


def _load(path: Path) -> Template:
    raw = _read(path)
    where = f"{path.parent.name}/{path.name}"
    if raw.get("id") != path.parent.name or raw.get("version") != path.stem:
        raise TemplateError(f"{where}: id and version must match the file's place")
    common = _read(HERE / "common" / f"{raw['common']}.toml") if "common" in raw else {}
    chapters = []
    for entry in raw["chapters"]:
        if set(entry) == {"include"}:
            shared = common.get("chapters", {}).get(entry["include"])
            if shared is None:
                raise TemplateError(f"{where}: no shared chapter {entry['include']!r}")
            chapters.append(_chapter(shared, where))
        else:
            chapters.append(_chapter(entry, where))
    body = {
        "title": raw["title"],
        "chapters": [
            {"heading": c.heading, "clauses": [[k.text, k.when] for k in c.clauses]}
            for c in chapters
        ],
    }
    return Template(
        id=raw["id"],
        version=raw["version"],
        title=str(raw["title"]),
        terms=str(raw["terms"]),
        chapters=tuple(chapters),
        sha256=sha256_hex(canonical_json(body)),
    )


def _version_key(version: str) -> tuple[int, int]:
    match = _VERSION.fullmatch(version)
    if match is None:
        raise TemplateError(f"template version {version!r} is not YYYY.N")
    return int(match.group(1)), int(match.group(2))


@functools.cache
def catalogue() -> dict[str, dict[str, Template]]:
    """Every template and every version of it, read once from the package."""
    found: dict[str, dict[str, Template]] = {}
    for path in sorted(HERE.glob("*/*.toml")):
        if path.parent.name == "common":
            continue
        template = _load(path)
        found.setdefault(template.id, {})[template.version] = template
    return found


def current_version(template_id: str) -> str:
    return max(catalogue()[template_id], key=_version_key)


def template(template_id: str, version: str | None = None) -> Template:
    """A template's given version, or its current one; ``KeyError`` when unknown."""
    versions = catalogue()[template_id]
    return versions[version or current_version(template_id)]
