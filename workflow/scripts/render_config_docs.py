"""Regenerate the key tables of config/README.md from the schemas: `python workflow/scripts/render_config_docs.py`.

The config key table comes from config/schema/config.schema.yaml and the trait-sheet column table from
config/schema/traits.schema.yaml; the prose around them is kept. `--check` exits 1 when the README is stale.
"""
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KEY_HEADER = "| key | type | default | meaning |"
COLUMN_HEADER = "| column | type | default | meaning |"


def _flow(value) -> str:
    """A default as it would be written in the YAML config."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _type(schema: dict) -> str:
    if "oneOf" in schema or "anyOf" in schema:
        return " or ".join(_type(s) for s in schema.get("oneOf", schema.get("anyOf")))
    typ = schema.get("type", "")
    typ = " or ".join(typ) if isinstance(typ, list) else typ
    if "enum" in schema:
        choices = " / ".join(_flow(v) for v in schema["enum"])
        typ = f"{typ} ({choices})" if typ else f"one of {choices}"
    return typ


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def rows(props: dict, prefix: str = "") -> list[str]:
    """One table row per key, nested objects (and the entries of a by-name mapping) after their parent."""
    out = []
    for key, sub in props.items():
        default = f"`{_flow(sub['default'])}`" if "default" in sub else ""
        meaning = _cell(sub.get("description", ""))
        out.append(f"| `{prefix + key}` | {_cell(_type(sub))} | {_cell(default)} | {meaning} |")
        if "properties" in sub:
            out += rows(sub["properties"], prefix + key + ".")
        entry = sub.get("additionalProperties")
        if isinstance(entry, dict) and "properties" in entry:
            out += rows(entry["properties"], prefix + key + ".<name>.")
    return out


def _replace_table(text: str, header: str, table: list[str]) -> str:
    head, rest = text.split(header, 1)
    end = rest.find("\n\n")
    tail = rest[end:] if end >= 0 else "\n"
    return head + "\n".join([header, "| --- | --- | --- | --- |"] + table) + tail


def render(readme_text: str) -> str:
    config = yaml.safe_load(open(ROOT / "config/schema/config.schema.yaml"))
    traits = yaml.safe_load(open(ROOT / "config/schema/traits.schema.yaml"))
    text = _replace_table(readme_text, KEY_HEADER, rows(config["properties"]))
    return _replace_table(text, COLUMN_HEADER, rows(traits["properties"]))


def main(argv=()) -> int:
    readme = ROOT / "config/README.md"
    old = readme.read_text()
    new = render(old)
    if "--check" in argv:
        if new != old:
            print(f"{readme} is stale: run python workflow/scripts/render_config_docs.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
