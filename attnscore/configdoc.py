"""config/README.md: every key of the config with its role, its value in the reference config and
what it does, from the schema (`make config-readme` writes it; tests/test_config.py keeps them equal)."""

import json

from attnscore import schema


def keys_markdown(reference: dict) -> str:
    """The text of config/README.md for the reference config (config/config.yaml)."""
    root = schema.load()
    optional = ", ".join(f"`{key}`" for key in root["properties"] if key not in root["required"])
    lines = [
        "# Configuration keys",
        "",
        "Every key of a config, from `attnscore/schemas/config.schema.yaml` (written by `make config-readme`;",
        f"a test keeps the two equal). Every key but {optional} is required: a config file is complete on its own.",
        "**Changes** is the key's role (`x-role`): what changing it changes, so what re-runs.",
        "**Reference** is its value in `config/config.yaml`, the published experiment.",
        "",
        "| role | what changing it changes |",
        "|---|---|",
        *(f"| `{role}` | {meaning} |" for role, meaning in schema.ROLES.items()),
        "",
        "| key | changes | reference | what it does |",
        "|---|---|---|---|",
    ]
    for section in schema.SECTIONS:
        values = reference.get(section, {}) if section else reference
        for key, spec in schema.properties(section).items():
            if "x-role" not in spec:
                continue
            name = f"{section}.{key}" if section else key
            value = json.dumps(values.get(key), ensure_ascii=False).replace("|", "\\|")
            what = " ".join(str(spec.get("description", "")).split()).replace("|", "\\|")
            lines.append(f"| `{name}` | {', '.join(spec['x-role'])} | `{value}` | {what} |")
    return "\n".join(lines) + "\n"
