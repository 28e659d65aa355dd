"""Regenerate the key table of config/README.md from the schema: `python workflow/scripts/render_config_docs.py`."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def rows(props, prefix=""):
    out = []
    for k, v in props.items():
        typ = v.get("type", "")
        if "enum" in v:
            typ = f"{typ} ({' / '.join(map(str, v['enum']))})"
        default = v.get("default", "")
        out.append(f"| `{prefix + k}` | {typ} | {default} | {v.get('description', '')} |")
        if v.get("type") == "object" and "properties" in v:
            out += rows(v["properties"], prefix + k + ".")
    return out


def main():
    schema = yaml.safe_load(open(ROOT / "config/schema/config.schema.yaml"))
    readme = ROOT / "config/README.md"
    text = readme.read_text()
    head, rest = text.split("| key | type | default | meaning |", 1)
    tail = rest[rest.index("\n## "):]
    table = "\n".join(["| key | type | default | meaning |", "| --- | --- | --- | --- |"] + rows(schema["properties"]))
    readme.write_text(head + table + "\n" + tail)


if __name__ == "__main__":
    main()
