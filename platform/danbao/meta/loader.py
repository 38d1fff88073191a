"""Load packs into one immutable Meta, or report every problem at once.

The pipeline is pure and in fixed phases, so a pack with any error changes
nothing (design principle 1):

1. read every file of every pack: YAML with line numbers, then JSON Schema;
2. check the packs themselves: names, ``requires`` order;
3. lay the content files over each other in load order (core first), and
   add the code lists made from products and counter-guarantee kinds;
4. cross-check the merged result (names, references, layout, scorecards,
   workflows, the guarantee business);
5. only with zero errors, freeze it into ``Meta``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from danbao.meta import business, names, recordrules, schema, yamlio
from danbao.meta.build import build, build_warnings, label
from danbao.meta.crosschecks import RESOLUTION_CODES, cross_check
from danbao.meta.expressions import compile_all
from danbao.meta.scorecards import build_scorecards, check_scorecards
from danbao.meta.controls import build_controls, check_controls
from danbao.meta.workflows import build_workflows, check_workflows
from danbao.meta.errors import PackError, PackErrors, display_path, format_errors
from danbao.meta.model import Meta, PackInfo, Source
from danbao.meta.overlay import Doc, overlay

__all__ = ["load_packs", "validate_packs", "format_errors", "PackError", "PackErrors"]

PACK_FILE = "pack.yaml"
#: A pack file larger than this is refused rather than parsed.
MAX_FILE_BYTES = 5 * 1024 * 1024
#: Codes after which a file's declarations are unknown.
_UNREADABLE = frozenset({"DB100", "DB101", "DB103"})


@dataclass
class PackRead:
    """One pack directory as read from disk, before any merging."""
    index: int
    path: Path
    name: str | None = None
    name_src: Source | None = None
    info: dict = field(default_factory=dict)
    requires: list[tuple[str, Source]] = field(default_factory=list)
    docs: list[Doc] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)   # for the digest
    errors: list[PackError] = field(default_factory=list)


def validate_packs(paths) -> list[PackError]:
    """Every problem of the packs at ``paths`` (in overlay order), sorted by
    file and line; an empty list means ``load_packs`` would succeed."""
    return _load(paths)[1]


def load_packs(paths) -> Meta:
    """The Meta of the packs at ``paths`` (core first, then customer packs).

    Raises PackErrors holding every problem found; nothing else escapes for
    bad input.
    """
    meta, errors = _load(paths)
    if errors:
        raise PackErrors(errors)
    return meta


def _load(paths) -> tuple[Meta | None, list[PackError]]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    packs = [read_pack(i, Path(p)) for i, p in enumerate(paths)]
    errors = [e for p in packs for e in p.errors]
    unreadable = any(e.code in _UNREADABLE for e in errors)
    errors += check_packs(packs, unreadable)
    merged, overlay_errors = overlay(d for p in packs for d in p.docs)
    errors += overlay_errors
    errors += business.synthesize_codelists(merged)
    errors += cross_check(merged)
    errors += recordrules.check_access(merged)
    errors += check_scorecards(merged)
    errors += check_workflows(merged)
    errors += business.check_business(merged)
    errors += check_controls(merged)
    if unreadable:
        # "unknown name" errors are likely declared in the file that failed
        errors = [e for e in errors if e.code not in RESOLUTION_CODES | business.RESOLUTION_CODES
                                                | recordrules.RESOLUTION_CODES]
    errors = sorted(set(errors))
    if errors:
        return None, errors
    entities, codelists, roles, menus = build(merged)
    infos = tuple(PackInfo(name=p.name, version=p.info["version"], path=display_path(p.path),
                           requires=tuple(r for r, _ in p.requires), label=label(p.info.get("label")))
                  for p in packs)
    meta = Meta(packs=infos, entities=entities, codelists=codelists, roles=roles, menus=menus,
                warnings=build_warnings(merged), scorecards=build_scorecards(merged),
                workflows=build_workflows(merged), **business.build_business(merged), controls=build_controls(merged),
                digest=digest(packs))
    meta = business.with_product_sections(meta)
    compiled, expr_errors = compile_all(meta)
    if expr_errors:
        return None, sorted(set(expr_errors))
    return dataclasses.replace(meta, expressions=compiled), []


# -- reading ------------------------------------------------------------------
def read_pack(index: int, path: Path) -> PackRead:
    """Read and schema-check pack.yaml and every content file of one pack."""
    pack = PackRead(index=index, path=path)
    shown = display_path(path)
    if not path.is_dir():
        pack.errors.append(PackError(shown, 0, "DB200", "pack directory does not exist"))
        return pack
    pack_file = path / PACK_FILE
    if not pack_file.is_file():
        pack.errors.append(PackError(display_path(pack_file), 0, "DB201",
                                     "pack.yaml is missing: every pack needs one (name, version, label)"))
    else:
        _read_pack_file(pack, pack_file)
    for file in content_files(path):
        data, shown_file = _read(pack, file)
        if data is None:
            continue
        doc, errors = schema.check(data, schema.CONTENT, shown_file)
        pack.errors.extend(errors)
        if doc is not None:
            pack.docs.append(Doc(pack=index, file=shown_file, data=doc))
    return pack


def content_files(root: Path) -> list[Path]:
    """Every ``*.yaml`` below ``root`` except its pack.yaml, in a fixed order
    (sorted by path); hidden files and folders are skipped."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.endswith(".yaml") and not name.startswith("."):
                found.append(Path(folder, name))
    found = [f for f in found if f.relative_to(root).as_posix() != PACK_FILE]
    return sorted(found, key=lambda f: f.relative_to(root).parts)


def _read(pack: PackRead, file: Path):
    """Bytes of one file, parsed; records the bytes for the digest."""
    shown = display_path(file)
    try:
        if not file.is_file():
            pack.errors.append(PackError(shown, 0, "DB100", "not a regular file"))
            return None, shown
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            pack.errors.append(PackError(shown, 0, "DB100", f"file is larger than "
                                                            f"{MAX_FILE_BYTES // 1024 // 1024} MB"))
            return None, shown
        raw = file.read_bytes()
    except OSError as exc:
        pack.errors.append(PackError(shown, 0, "DB100", f"cannot read the file: {exc.strerror or exc}"))
        return None, shown
    pack.files.append((file.relative_to(pack.path).as_posix(), raw))
    data, errors = yamlio.parse(raw, shown)
    pack.errors.extend(errors)
    return data, shown


def _read_pack_file(pack: PackRead, file: Path) -> None:
    data, shown = _read(pack, file)
    if data is None:
        return
    data, errors = schema.check(data, schema.PACK, shown)
    pack.errors.extend(errors)
    if data is None:
        return
    pack.info = data
    if isinstance(data.get("name"), str):
        pack.name = data["name"]
        pack.name_src = Source(shown, data.key_line("name"))
    requires = data.get("requires")
    if isinstance(requires, yamlio.LineList):
        pack.requires = [(r, Source(shown, requires.item_line(i)))
                         for i, r in enumerate(requires) if isinstance(r, str)]


# -- pack-level checks --------------------------------------------------------
def check_packs(packs: list[PackRead], unreadable: bool) -> list[PackError]:
    """Pack names are safe and distinct; each required pack comes earlier."""
    errors: list[PackError] = []
    first: dict[str, PackRead] = {}
    for pack in packs:
        if pack.name is None:
            continue
        src = pack.name_src
        reason = names.unsafe_reason(pack.name)
        if reason:
            errors.append(PackError(src.file, src.line, "DB210", f"pack name '{pack.name}' {reason}"))
        if pack.name in first:
            errors.append(PackError(src.file, src.line, "DB202", f"a pack named '{pack.name}' is already loaded "
                                                                 f"from {display_path(first[pack.name].path)}"))
        else:
            first[pack.name] = pack
    for pack in packs:
        for required, src in pack.requires:
            earlier = first.get(required)
            if earlier is not None and earlier.index < pack.index:
                continue
            if earlier is not None:
                errors.append(PackError(src.file, src.line, "DB204",
                                        f"requires '{required}', which is loaded after this pack: "
                                        f"list '{required}' first"))
            elif not unreadable:
                errors.append(PackError(src.file, src.line, "DB203",
                                        f"requires pack '{required}', which is not loaded"))
    return errors


def digest(packs: list[PackRead]) -> str:
    """sha256 over each pack's file paths (relative to the pack) and contents,
    in load order: any change to any file gives a new Meta version."""
    h = hashlib.sha256()
    for pack in packs:
        h.update(f"pack {pack.index}\0".encode())
        for rel, raw in pack.files:
            h.update(f"{rel}\0{len(raw)}\0".encode())
            h.update(raw)
    return h.hexdigest()
