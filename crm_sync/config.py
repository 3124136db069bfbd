"""The customer store's configuration files: identity rules and per-source mappings.

``crm/rules.yaml`` (optional) sets ``identity.Rules``; ``crm/mappings/*.yaml`` are the
per-source field mappings the HTTP push uses (a file import names its own ``--mapping``).
A source without a mapping file uses ``mapping.default_mapping`` (our own field names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crm_sync.identity import Rules
from crm_sync.mapping import (
    Mapping,
    MappingError,
    default_mapping,
    load_mapping,
    read_yaml_file,
)

RULE_KEYS = ("match_on", "name_similarity", "field_policy", "source_priority")


def load_rules(path: Path) -> Rules:
    """Identity rules from YAML; a missing file means the defaults."""
    if not path.exists():
        return Rules()
    data: Any = read_yaml_file(path, "the rules file").data or {}
    if not isinstance(data, dict):
        raise MappingError(f"{path}:1:1: expected a mapping with {', '.join(RULE_KEYS)}")
    unknown = sorted(set(data) - set(RULE_KEYS))
    if unknown:
        raise MappingError(f"{path}: unknown key(s) {unknown}; expected {list(RULE_KEYS)}")
    try:
        return Rules(
            match_on=tuple(data.get("match_on", Rules.match_on)),
            name_similarity=float(data.get("name_similarity", Rules.name_similarity)),
            field_policy={**dict.fromkeys(Rules().field_policy, "newest"),
                          **(data.get("field_policy") or {})},
            source_priority=tuple(data.get("source_priority") or ()),
        )
    except (TypeError, ValueError) as exc:
        raise MappingError(f"{path}: {exc}") from None


class Mappings:
    """The mapping files of a folder, by (source, kind)."""

    def __init__(self, folder: Path) -> None:
        self.by_key: dict[tuple[str, str], Mapping] = {}
        self.files: dict[tuple[str, str], Path] = {}
        if folder.is_dir():
            for path in sorted(folder.glob("*.y*ml")):
                mapping = load_mapping(path)
                key = (mapping.source, mapping.kind)
                if key in self.by_key:
                    raise MappingError(f"{path}: source {mapping.source!r} ({mapping.kind}) "
                                       f"is already mapped by {self.files[key]}")
                self.by_key[key] = mapping
                self.files[key] = path

    def get(self, source: str, kind: str = "customers") -> Mapping:
        return self.by_key.get((source, kind)) or default_mapping(source, kind)
