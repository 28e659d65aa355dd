"""The workflow configuration: validation against the schema, which is the only source of defaults.

`config/schema/config.schema.yaml` documents every key and holds every default (the paper's settings, Sec. 6.2,
App. A, B.1, D, where the paper gives one); `config/schema/traits.schema.yaml` describes a trait-sheet row.
Every object of the schema is closed, so a mistyped key is an error; `validate_config` reports it in a few
lines (the key, where it is, the closest valid name) instead of the schema dump of a raw jsonschema error.

- `validate_config(config)`: fill the defaults in place and validate, with the one rule across keys that the
  schema cannot state (ld.source local needs ld.panel_size) (Snakefile: workflow/rules/common.smk).
- `load_config(*paths)`: the effective config of config files merged in order, as the Snakefile builds it.
- `block_defaults(name)`: one block filled from the schema, for package code called outside Snakemake.
- `validate_traits(frame)`: the trait sheet, columns and values, with its defaults filled.
- `write_effective_config(config, path)`: results/config.yaml, rewritten only when its content changes.
"""
from __future__ import annotations

import copy
import difflib
import functools
import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Optional

import yaml

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_DIR = ROOT / "config" / "schema"
CONFIG_SCHEMA = SCHEMA_DIR / "config.schema.yaml"
TRAITS_SCHEMA = SCHEMA_DIR / "traits.schema.yaml"
DEMO_CONFIG = ROOT / "config" / "config.yaml"
MAX_VALUE_CHARS = 120


class ConfigError(ValueError):
    """A config or trait sheet that does not match its schema; the message is a few lines, no schema dump."""


@functools.lru_cache(maxsize=None)
def _schema(path: str) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def load_schema(path=CONFIG_SCHEMA) -> dict:
    """The schema as a dict (a copy: callers may modify it)."""
    return copy.deepcopy(_schema(str(Path(path).resolve())))


def _validator(schema: dict):
    """A Draft 2020-12 validator that fills `default`s as it descends (an absent object with a default is
    created, then its own properties are filled), as in the jsonschema FAQ and snakemake.utils.validate."""
    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, subschema)

    cls = validators.extend(Draft202012Validator, {"properties": set_defaults})
    return cls(schema)


def _keypath(path: Iterable) -> str:
    return ".".join(str(p) for p in path)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 3] + "..."


def _find_source(keypath: list, sources: Iterable) -> Optional[str]:
    """The last of the config files `sources` that sets `keypath` (later files win, as in Snakemake)."""
    found = None
    for src in sources or ():
        try:
            node = yaml.safe_load(Path(src).read_text())
        except (OSError, yaml.YAMLError):
            continue
        for key in keypath:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            found = os.path.relpath(src) if not os.path.relpath(src).startswith("..") else str(src)
    return found


def _describe(error, sources, what: str) -> str:
    """A short message for one jsonschema error: unknown keys with the closest valid name, or the value."""
    where = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in known]
        lines = []
        for key in unknown:
            name = _keypath(where + [key])
            src = _find_source(where + [key], sources)
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"; did you mean '{_keypath(where + [close[0]])}'?" if close else ""
            lines.append(f"{what}: unknown key '{name}'" + (f" in {src}" if src else "") + hint)
        block = f"'{_keypath(where)}'" if where else "the top level"
        lines.append(f"  valid keys at {block}: {', '.join(known)}")
        return "\n".join(lines)
    name = _keypath(where) or "(top level)"
    src = _find_source(where, sources) if where else None
    message = error.message if len(error.message) <= 2 * MAX_VALUE_CHARS else \
        f"{_short(error.instance)} does not match the schema ({error.validator})"
    desc = error.schema.get("description") if isinstance(error.schema, dict) else None
    out = f"{what}: '{name}'" + (f" in {src}" if src else "") + f": {message}"
    if desc:
        out += f"\n  {name}: {desc[:200]}"
    return out


def validate_config(config: dict, schema_path=CONFIG_SCHEMA, sources: Iterable = (),
                    what: str = "config") -> dict:
    """Fill the schema's defaults into `config` (in place) and validate it; return it.

    Raises ConfigError with one short paragraph per problem: an unknown key is named with its place in the
    config, the file that sets it (from `sources`, the config files in merge order) and the closest valid key
    (difflib); any other mismatch names the key, its value and the key's description.
    """
    schema = _schema(str(Path(schema_path).resolve()))
    errors = sorted(_validator(schema).iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)),
                                                                            e.validator != "additionalProperties"))
    if errors:
        # an unknown key first; a oneOf / anyOf mismatch is reported by the branch of the value's type
        parts, seen = [], set()
        for err in errors:
            branch = [e for e in err.context or () if e.validator != "type"]
            err = branch[0] if branch else err
            text = _describe(err, sources, what)
            if text not in seen:
                seen.add(text)
                parts.append(text)
        raise ConfigError("\n".join(parts) + f"\n  (every key is documented in config/README.md; schema: "
                                             f"{_rel(schema_path)})")
    _check_ld(config, what)
    return config


def _check_ld(config: Mapping, what: str) -> None:
    """What the schema cannot say of the `ld` block: ld.source local needs ld.panel_size. It has no default:
    UK Biobank's 337,545 for a panel of a few hundred people leaves the LD scores uncorrected and makes the
    finite-panel correction silently wrong (the LD-mismatch simulation's 500-person panel: s2 0.64 and h2 0.88
    of 0.5 with n = 337,545, against 1.17 and 0.43 with n = 500)."""
    ld = config.get("ld")
    if not isinstance(ld, Mapping) or ld["source"] != "local" or ld["panel_size"] is not None:
        return
    raise ConfigError(
        f"{what}: 'ld.panel_size' is required with ld.source: local: set it to the number of people the LD windows in ld.dir ({ld.get('dir')}) were computed on, e.g. "
        "`ld: {source: local, panel_size: 503}` for 1000 Genomes Europeans. It is the n of the LD-score bias "
        "correction r^2 - (1 - r^2) / (n - 2) and of the finite-panel correction (likelihood.mismatch: auto); "
        "for LD computed on the GWAS sample itself give the sample's size and set likelihood.mismatch: none.")


def _rel(path) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def merge(base: dict, update: Mapping) -> dict:
    """Recursively merge `update` into `base` (in place), as Snakemake merges config files."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config(*paths, overrides: Optional[Mapping] = None, schema_path=CONFIG_SCHEMA) -> dict:
    """The effective config: the files merged in order, then `overrides`, defaults filled and validated.

    No path means the demo (config/config.yaml), as the Snakefile does when no --configfile is given.
    """
    files = [Path(p) for p in paths] or [DEMO_CONFIG]
    config: dict = {}
    for p in files:
        merge(config, yaml.safe_load(p.read_text()) or {})
    merge(config, overrides or {})
    return validate_config(config, schema_path, sources=files)


def block_defaults(name: str, user: Optional[Mapping] = None, schema_path=CONFIG_SCHEMA) -> dict:
    """One top-level block of the config with the schema's defaults filled (and `user`'s keys validated)."""
    config = {name: copy.deepcopy(dict(user or {}))}
    sub = {"type": "object", "additionalProperties": False,
           "properties": {name: _schema(str(Path(schema_path).resolve()))["properties"][name]}}
    errors = list(_validator(sub).iter_errors(config))
    if errors:
        raise ConfigError("\n".join(_describe(e, (), "config") for e in errors))
    return config[name]


# ------------------------------------------------------------------------------------------ trait sheet
def validate_traits(frame, path: str = "trait sheet", schema_path=TRAITS_SCHEMA):
    """Validate a trait sheet read as strings (pandas DataFrame) and return it with defaults filled.

    Columns are checked first (an unknown column is named with the closest valid one), then each row against
    the row schema (numbers parsed, empty cells absent); duplicated trait names are an error.
    """
    schema = _schema(str(Path(schema_path).resolve()))
    known = list(schema["properties"])
    unknown = [c for c in frame.columns if c not in known]
    if unknown:
        lines = []
        for col in unknown:
            close = difflib.get_close_matches(str(col), known, n=1, cutoff=0.6)
            lines.append(f"{path}: unknown column '{col}'" + (f"; did you mean '{close[0]}'?" if close else ""))
        lines.append(f"  valid columns: {' '.join(known)} (config/README.md, 'Trait sheet')")
        raise ConfigError("\n".join(lines))
    missing = [c for c in schema.get("required", []) if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {missing}; columns: {' '.join(known)}")
    frame = frame.copy()
    rows = []
    for i, rec in enumerate(frame.to_dict("records")):
        row = {}
        for col, value in rec.items():
            if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
                continue
            kind = schema["properties"][col].get("type")
            kinds = kind if isinstance(kind, list) else [kind]
            if "number" in kinds:
                try:
                    value = float(value)
                except ValueError:
                    raise ConfigError(f"{path}: row {i + 1} ({rec.get('trait')}), column '{col}': {value!r} is "
                                      f"not a number") from None
            row[col] = value
        errors = list(_validator(schema).iter_errors(row))
        if errors:
            e = errors[0]
            col = _keypath(e.absolute_path) or "(row)"
            raise ConfigError(f"{path}: row {i + 1} ({rec.get('trait')}), column '{col}': {e.message[:200]}\n"
                              f"  {col}: {schema['properties'].get(col, {}).get('description', '')}")
        rows.append(row)
    for col in known:
        frame[col] = [r.get(col) for r in rows]
    dup = frame["trait"][frame["trait"].duplicated()].tolist()
    if dup:
        raise ConfigError(f"{path}: duplicated trait names {sorted(dup)}")
    return frame


# ------------------------------------------------------------------------------------------ effective config
def write_effective_config(config: Mapping, path="results/config.yaml") -> bool:
    """Write the effective (validated, defaults filled) config to `path` when its content differs.

    Atomic (temporary file + rename) and unchanged files are left alone, so jobs that re-read the Snakefile
    do not race or touch its modification time. Returns whether the file was written.
    """
    path = Path(path)
    text = ("# The effective configuration of the last run: config files merged, schema defaults filled\n"
            "# (config/schema/config.schema.yaml). Written by the Snakefile; do not edit.\n"
            + yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=None, width=120))
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def _plain(value):
    """Plain Python containers (Snakemake's config may hold its own Mapping types)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
