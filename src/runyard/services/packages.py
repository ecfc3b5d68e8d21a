"""Worker packages (spec §7): a directory or a ZIP of one, loaded and checked before it registers.

A package that fails is refused with every problem at once, one ``details`` line each, naming
the file, the property and the rule — a developer fixes the lot in one round instead of one
upload per mistake.

``input_schema.json`` is CoreClaw's format, a ``properties`` *list*::

    {"description": "...", "concurrency": {"fields": ["urls"]}, "b": "urls",
     "properties": [{"title", "name", "type", "editor", "description", "required",
                     "default", "options": [{"label", "value"}], "minimum", "maximum", ...}]}

Keys this module does not know (UI hints such as ``sectionCaption`` or ``placeholder``) are
kept and ignored, so a schema written for the hosted service registers unchanged.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from json import JSONDecodeError, loads
from pathlib import Path, PurePosixPath
from typing import Any

from runyard.services.errors import InvalidInput
from runyard.services.inputs import (
    TYPES,
    is_number,
    type_problem,
    value_problems,
)

MAX_ZIP_ENTRIES = 10_000
MAX_ZIP_BYTES = 200 * 1024 * 1024
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$")
MAX_TITLE = 256
WORKER_JSON_KEYS = ("slug", "title", "version", "description", "public")
#: CoreClaw's editors, and ``json``: a text box holding a JSON object or list, for fields no
#: other editor shows. ``radioGroup``/``checkboxGroup`` are older spellings still found in
#: published workers; they are accepted but not advertised.
EDITORS = (
    "input",
    "textarea",
    "number",
    "select",
    "radio",
    "checkbox",
    "switch",
    "datepicker",
    "stringList",
    "requestList",
    "requestListSource",
    "json",
)
_LEGACY_EDITORS = ("radioGroup", "checkboxGroup")
#: Editors whose values only make sense with these types. ``checkbox`` is a set of choices
#: (array) or, in older workers, a single tick box (boolean). ``input`` and ``textarea`` are
#: left open: workers use them for text, numbers and JSON alike.
_EDITOR_TYPES: dict[str, tuple[str, ...]] = {
    "number": ("integer", "number"),
    "switch": ("boolean",),
    "checkbox": ("array", "boolean"),
    "checkboxGroup": ("array",),
    "select": ("string", "integer", "number", "array"),
    "radio": ("string", "integer", "number", "boolean"),
    "radioGroup": ("string", "integer", "number", "boolean"),
    "datepicker": ("string",),
    "stringList": ("array",),
    "requestList": ("array",),
    "requestListSource": ("array",),
    # Free JSON typed into a text box: only containers; a string or a number has its own editor.
    "json": ("object", "array"),
}
_CHOICE_EDITORS = ("select", "radio", "radioGroup", "checkboxGroup")
_TEXT_KEYS = (
    "title",
    "description",
    "sectionCaption",
    "sectionDescription",
    "format",
    "valueFormat",
    "dateType",
)
#: Written by macOS's "Compress": resource forks, never part of the package.
_MACOS_JUNK = "__MACOSX"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Package:
    """A checked worker package. ``root`` is the directory holding ``main.py``."""

    root: Path
    slug: str | None
    title: str | None
    version: str | None
    description: str
    public: bool
    input_schema: dict[str, Any]
    output_schema: list[Any]
    readme: str
    requirements: str | None


def load_package(source: Path, *, extract_to: Path | None = None) -> Package:
    """Load and check the package in directory ``source``, or in the ZIP file ``source``.

    A ZIP is unpacked into ``extract_to`` (default: a new temporary directory, which the caller
    then owns and removes). Raises ``InvalidInput("invalid worker package", details)``.
    """
    if source.is_dir():
        return _load_dir(source)
    if not (source.is_file() and (source.suffix.lower() == ".zip" or zipfile.is_zipfile(source))):
        raise InvalidInput(
            "invalid worker package", details=[f"{source}: not a directory or a .zip file"]
        )
    if extract_to is not None:
        return _load_dir(extract_zip(source, extract_to))
    dest = Path(tempfile.mkdtemp(prefix="runyard-package-"))
    try:
        return _load_dir(extract_zip(source, dest))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # the caller never got to own it
        raise


def extract_zip(data: bytes | Path, dest: Path) -> Path:
    """Unpack an uploaded package into ``dest`` (new or empty) and return the package root.

    Refuses entries that would land outside ``dest`` (``..``, absolute paths), links and other
    special files, encrypted entries, more than 10,000 entries and more than 200 MB unpacked —
    counted while writing, so a lying header cannot slip a bomb through. When every entry sits
    under one top-level directory, that directory is the root. On failure ``dest`` is left empty.
    """
    if dest.exists() and any(dest.iterdir()):
        # Cleaning up after a failure empties ``dest``: it must hold nothing of anyone else's.
        raise ValueError(f"{dest} is not empty")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(
            "invalid worker package", details=[f"not a valid ZIP file: {exc}"]
        ) from None
    with archive:
        members = _safe_members(archive)
        dest.mkdir(parents=True, exist_ok=True)
        try:
            _write_members(archive, members, dest)
        except BaseException:
            _empty(dest)
            raise
    tops = {parts[0] for _, parts in members}
    if len(tops) == 1:
        only = dest / next(iter(tops))
        if only.is_dir():
            return only
    return dest


def input_schema_problems(schema: Any) -> list[str]:
    """Every rule ``input_schema.json`` breaks, one line each (empty when it is valid)."""
    where = "input_schema.json"
    if not isinstance(schema, dict):
        return [f'{where}: must be an object with a "properties" list']
    problems: list[str] = []
    if "description" in schema and not isinstance(schema["description"], str):
        problems.append(f'{where}: "description" must be a string')
    props = schema.get("properties")
    if props is None:
        problems.append(f'{where}: "properties" is missing')
        props = []
    elif isinstance(props, dict):
        # The shape of JSON Schema / Apify's INPUT_SCHEMA, the likeliest mix-up.
        problems.append(
            f'{where}: "properties" must be a list of fields (CoreClaw format), not an object'
        )
        props = []
    elif not isinstance(props, list):
        problems.append(f'{where}: "properties" must be a list of fields')
        props = []
    seen: dict[str, int] = {}
    for index, prop in enumerate(props):
        problems += _property_problems(index, prop, seen)
    arrays = {
        p["name"]
        for p in props
        if isinstance(p, dict) and isinstance(p.get("name"), str) and p.get("type") == "array"
    }
    problems += _split_problems(schema, arrays)
    return problems


def output_schema_problems(schema: Any) -> list[str]:
    """Every rule ``output_schema.json`` (a list of ``{name, type, description}``) breaks."""
    where = "output_schema.json"
    if not isinstance(schema, list):
        return [f"{where}: must be a list of {{name, type, description}}"]
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, column in enumerate(schema):
        if not isinstance(column, dict):
            problems.append(f"{where}: [{index}]: must be an object")
            continue
        name = column.get("name")
        label = f"{where}: [{index}]" + (
            f" ({name})" if isinstance(name, str) and name.strip() else ""
        )
        if "name" not in column:
            problems.append(f'{label}: "name" is missing')
        elif not isinstance(name, str) or not name.strip():
            problems.append(f'{label}: "name" must be a non-empty string')
        elif name in seen:
            problems.append(f'{label}: "name" repeats [{seen[name]}]')
        else:
            seen[name] = index
        problems += [
            f'{label}: "{key}" must be a string'
            for key in ("type", "description")
            if key in column and not isinstance(column[key], str)
        ]
    return problems


def worker_json_problems(meta: Any) -> list[str]:
    """Every rule ``worker.json`` (``{slug, title, version, description, public}``) breaks."""
    where = "worker.json"
    if not isinstance(meta, dict):
        return [f"{where}: must be an object"]
    allowed = ", ".join(WORKER_JSON_KEYS)
    problems = [
        f'{where}: "{key}" is not a known key (allowed: {allowed})'
        for key in meta
        if key not in WORKER_JSON_KEYS
    ]
    slug = meta.get("slug")
    if slug is not None and not (isinstance(slug, str) and SLUG_RE.match(slug)):
        problems.append(f'{where}: "slug" must match {SLUG_RE.pattern}')
    title = meta.get("title")
    if title is not None and not (isinstance(title, str) and 0 < len(title.strip()) <= MAX_TITLE):
        problems.append(
            f'{where}: "title" must be a non-empty string of at most {MAX_TITLE} characters'
        )
    version = meta.get("version")
    if version is not None:
        if not (isinstance(version, str) and VERSION_RE.match(version)):
            problems.append(f'{where}: "version" must match {VERSION_RE.pattern}')
        elif version.lower() == "latest":
            problems.append(
                f'{where}: "version" must not be "latest": that word names the newest version'
            )
    if "description" in meta and not isinstance(meta["description"], str):
        problems.append(f'{where}: "description" must be a string')
    if "public" in meta and not isinstance(meta["public"], bool):
        problems.append(f'{where}: "public" must be true or false')
    return problems


# --- the directory -------------------------------------------------------------------------


def _load_dir(root: Path) -> Package:
    problems: list[str] = []
    main = root / "main.py"
    if main.is_file():
        problems += _syntax_problems(main)
    else:
        problems.append("main.py: missing")

    input_schema = _read_json(root, "input_schema.json", problems, required=True)
    if input_schema is not _MISSING:
        problems += input_schema_problems(input_schema)
    output_schema = _read_json(root, "output_schema.json", problems, required=True)
    if output_schema is not _MISSING:
        problems += output_schema_problems(output_schema)
    meta = _read_json(root, "worker.json", problems, required=False)
    if meta is _MISSING:
        meta = {}
    else:
        problems += worker_json_problems(meta)

    requirements = None
    if (root / "requirements.txt").is_file():
        requirements = _read_requirements(root / "requirements.txt", problems)

    if problems:
        raise InvalidInput("invalid worker package", details=problems)
    # CoreClaw keeps a worker's summary in input_schema.json; use it when worker.json has none.
    description = meta.get("description") or input_schema.get("description") or ""
    return Package(
        root=root,
        slug=meta.get("slug"),
        title=meta.get("title"),
        version=meta.get("version"),
        description=description,
        public=meta.get("public", False),
        input_schema=input_schema,
        output_schema=output_schema,
        readme=_read_readme(root),
        requirements=requirements,
    )


_MISSING: Any = object()


def _read_json(root: Path, name: str, problems: list[str], *, required: bool) -> Any:
    path = root / name
    if not path.is_file():
        if required:
            problems.append(f"{name}: missing")
        return _MISSING
    try:
        # utf-8-sig: editors on Windows like to start files with a byte-order mark.
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(f"{name}: not UTF-8 text")
        return _MISSING
    try:
        return loads(text, parse_constant=_refuse_constant)
    except JSONDecodeError as exc:
        problems.append(f"{name}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except ValueError as exc:
        problems.append(f"{name}: invalid JSON: {exc}")
    return _MISSING


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _syntax_problems(main: Path) -> list[str]:
    # Caught here, a typo is a line in the upload's reply rather than a run that fails later.
    try:
        compile(main.read_bytes(), "main.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return [f"main.py: line {exc.lineno}: {exc.msg}"]
    except ValueError as exc:
        return [f"main.py: {exc}"]
    return []


def _read_requirements(path: Path, problems: list[str]) -> str | None:
    data = path.read_bytes()
    # Windows PowerShell's ``pip freeze > requirements.txt`` writes UTF-16; pip reads it fine.
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        problems.append("requirements.txt: not UTF-8 text")
        return None


def _read_readme(root: Path) -> str:
    for path in sorted(root.iterdir()):
        if path.name.lower() == "readme.md" and path.is_file():
            return path.read_bytes().decode("utf-8-sig", errors="replace")
    return ""


# --- input_schema.json ---------------------------------------------------------------------


def _property_problems(index: int, prop: Any, seen: dict[str, int]) -> list[str]:
    label = f"input_schema.json: properties[{index}]"
    if not isinstance(prop, dict):
        return [f"{label}: must be an object"]
    name = prop.get("name")
    if isinstance(name, str) and name:
        label += f" ({name})"
    problems: list[str] = []
    if "name" not in prop:
        problems.append(f'{label}: "name" is missing')
    elif not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f'{label}: "name" must match {NAME_RE.pattern}')
    elif name in seen:
        problems.append(f'{label}: "name" repeats properties[{seen[name]}]')
    else:
        seen[name] = index

    type_ = prop.get("type")
    if "type" not in prop:
        problems.append(f'{label}: "type" is missing')
    elif type_ not in TYPES:
        problems.append(f'{label}: "type" must be one of {", ".join(TYPES)}')
        type_ = None

    editor = prop.get("editor")
    if editor is not None and (
        not isinstance(editor, str) or editor not in EDITORS + _LEGACY_EDITORS
    ):
        problems.append(f'{label}: "editor" must be one of {", ".join(EDITORS)}')
        editor = None
    if editor and type_ and type_ not in _EDITOR_TYPES.get(editor, TYPES):
        wanted = " or ".join(_EDITOR_TYPES[editor])
        problems.append(f'{label}: editor "{editor}" needs "type" {wanted}')
        type_ = None

    if "required" in prop and not isinstance(prop["required"], bool):
        problems.append(f'{label}: "required" must be true or false')
    if "multiple" in prop and not isinstance(prop["multiple"], bool):
        problems.append(f'{label}: "multiple" must be true or false')
    problems += [
        f'{label}: "{key}" must be a string'
        for key in _TEXT_KEYS
        if key in prop and not isinstance(prop[key], str)
    ]

    options_ok = _options_problems(label, prop, type_, editor, problems)
    bounds_ok = _bounds_problems(label, prop, type_, problems)
    if editor == "requestListSource":
        _param_list_problems(label, prop, problems)
    if type_ and options_ok and bounds_ok and prop.get("default") is not None:
        problems += [
            f'{label}: "default"{sub} {reason}'
            for sub, reason in value_problems(prop, prop["default"])
        ]
    return problems


def _options_problems(
    label: str, prop: dict[str, Any], type_: str | None, editor: str | None, problems: list[str]
) -> bool:
    options = prop.get("options")
    needs = editor in _CHOICE_EDITORS or (editor == "checkbox" and type_ == "array")
    if options is None:
        if needs:
            problems.append(f'{label}: "options" is required for editor "{editor}"')
        return True
    if not isinstance(options, list) or not options:
        problems.append(f'{label}: "options" must be a non-empty list of {{label, value}}')
        return False
    if type_ == "object":
        problems.append(f'{label}: "options" does not apply to type object')
        return False
    before = len(problems)
    seen: list[tuple[int, Any]] = []
    for i, option in enumerate(options):
        where = f"{label}: options[{i}]"
        if not isinstance(option, dict) or "value" not in option or "label" not in option:
            problems.append(f'{where}: must be an object with "label" and "value"')
            continue
        if not isinstance(option["label"], str):
            problems.append(f'{where}: "label" must be a string')
        value = option["value"]
        reason = _option_value_problem(type_, value)
        if reason:
            problems.append(f'{where}: "value" {reason}')
            continue
        earlier = next((j for j, other in seen if _same(other, value)), None)
        if earlier is not None:
            problems.append(f'{where}: "value" repeats options[{earlier}]')
        seen.append((i, value))
    return len(problems) == before


def _same(a: Any, b: Any) -> bool:
    # 1 and 1.0 are one value; true and 1 are not, although Python says they are equal.
    return bool(a == b) and (type(a) is type(b) or (is_number(a) and is_number(b)))


def _option_value_problem(type_: str | None, value: Any) -> str | None:
    if type_ is None:
        return None
    if type_ == "array":
        # Options of an array are the choices for its items: any scalar.
        if isinstance(value, str | bool) or is_number(value):
            return None
        return "must be a string, a number or true/false"
    return type_problem(type_, value)


def _bounds_problems(
    label: str, prop: dict[str, Any], type_: str | None, problems: list[str]
) -> bool:
    before = len(problems)
    for key in ("minimum", "maximum"):
        if key not in prop:
            continue
        if not is_number(prop[key]):
            problems.append(f'{label}: "{key}" must be a number')
        elif type_ is not None and type_ not in ("integer", "number"):
            problems.append(f'{label}: "{key}" applies only to type integer or number')
    if len(problems) == before:
        low, high = prop.get("minimum"), prop.get("maximum")
        if low is not None and high is not None and low > high:
            problems.append(f'{label}: "minimum" must not be greater than "maximum"')
    return len(problems) == before


def _param_list_problems(label: str, prop: dict[str, Any], problems: list[str]) -> None:
    params = prop.get("param_list")
    if params is None:
        return
    if not isinstance(params, list):
        problems.append(f'{label}: "param_list" must be a list of {{param, title, ...}}')
        return
    seen: dict[str, int] = {}
    for i, param in enumerate(params):
        where = f"{label}: param_list[{i}]"
        name = param.get("param") if isinstance(param, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(f'{where}: "param" must be a non-empty string')
        elif name in seen:
            problems.append(f'{where}: "param" repeats param_list[{seen[name]}]')
        else:
            seen[name] = i


def _split_problems(schema: dict[str, Any], arrays: set[str]) -> list[str]:
    """``concurrency`` and the legacy ``b`` name the array fields the hosted service splits on."""
    where = "input_schema.json"
    problems: list[str] = []
    b = schema.get("b")
    if b is not None:
        if not isinstance(b, str):
            problems.append(f'{where}: "b" must be a string')
        elif b.strip() and b.strip() not in arrays:
            problems.append(f'{where}: "b" ({b.strip()}) must name a property of type array')
    concurrency = schema.get("concurrency")
    if concurrency is None:
        return problems
    if not isinstance(concurrency, dict):
        return [*problems, f'{where}: "concurrency" must be an object like {{"fields": [...]}}']
    fields = concurrency.get("fields", [])
    removed = concurrency.get("remove_fields", [])
    for key, names in (("fields", fields), ("remove_fields", removed)):
        if not isinstance(names, list):
            problems.append(f"{where}: concurrency.{key} must be a list of property names")
            continue
        for i, name in enumerate(names):
            at = f"{where}: concurrency.{key}[{i}]"
            if not isinstance(name, str):
                problems.append(f"{at}: must be a string")
            elif name not in arrays:
                problems.append(f"{at} ({name}): must name a property of type array")
            elif key == "remove_fields" and isinstance(fields, list) and name not in fields:
                problems.append(f"{at} ({name}): must also be in concurrency.fields")
    return problems


# --- ZIP -----------------------------------------------------------------------------------


def _safe_members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise InvalidInput(
            "invalid worker package",
            details=[
                f"the ZIP has {len(infos):,} entries; at most {MAX_ZIP_ENTRIES:,} are allowed"
            ],
        )
    problems: list[str] = []
    members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    declared = 0
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            problems.append(f"{info.filename}: absolute path")
        elif ".." in parts:
            problems.append(f"{info.filename}: path leads outside the package")
        elif stat.S_ISLNK(mode):
            problems.append(f"{info.filename}: symbolic link")
        elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            problems.append(f"{info.filename}: not a regular file")
        elif info.flag_bits & 0x1:
            problems.append(f"{info.filename}: encrypted")
        elif parts and parts[0] != _MACOS_JUNK:
            members.append((info, parts))
            declared += info.file_size
    if problems:
        raise InvalidInput(
            "invalid worker package", details=[f"unsafe ZIP entry {p}" for p in problems]
        )
    if declared > MAX_ZIP_BYTES:
        raise InvalidInput("invalid worker package", details=[_too_big()])
    return members


def _too_big() -> str:
    return f"the ZIP unpacks to more than {MAX_ZIP_BYTES // (1024 * 1024)} MB"


def _write_members(
    archive: zipfile.ZipFile, members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]], dest: Path
) -> None:
    base = dest.resolve()
    written = 0
    for info, parts in members:
        target = base.joinpath(*parts)
        if not target.resolve().is_relative_to(base):  # belt and braces after _safe_members
            raise InvalidInput(
                "invalid worker package", details=[f"unsafe ZIP entry {info.filename}"]
            )
        try:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("wb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    if written > MAX_ZIP_BYTES:
                        raise InvalidInput("invalid worker package", details=[_too_big()])
                    out.write(chunk)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise InvalidInput(
                "invalid worker package", details=[f"{info.filename}: damaged ZIP entry ({exc})"]
            ) from None
        except NotImplementedError:
            raise InvalidInput(
                "invalid worker package",
                details=[f"{info.filename}: compressed with a method this server cannot read"],
            ) from None
        except OSError as exc:
            raise InvalidInput(
                "invalid worker package",
                details=[f"{info.filename}: cannot be unpacked ({exc.strerror})"],
            ) from None
        # Keep an executable bit (a bundled helper binary); drop everything else the ZIP claims.
        target.chmod(0o755 if (info.external_attr >> 16) & 0o100 else 0o644)


def _empty(directory: Path) -> None:
    for child in _children(directory):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _children(directory: Path) -> Iterator[Path]:
    try:
        yield from list(directory.iterdir())
    except OSError:
        return
