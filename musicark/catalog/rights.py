"""The `rights` vocabulary and what each value allows."""

from __future__ import annotations

from musicark.errors import UsageError

# Values allowing verbatim, non-commercial redistribution: these may enter a public release.
REDISTRIBUTABLE = (
    "public-domain",
    "cc0",
    "cc-by",
    "cc-by-sa",
    "cc-by-nd",
    "cc-by-nc",
    "cc-by-nc-sa",
    "cc-by-nc-nd",
)
RESTRICTED = ("all-rights-reserved", "unknown")
RIGHTS = REDISTRIBUTABLE + RESTRICTED

# Other spellings, after lower-casing and turning spaces and underscores into hyphens.
ALIASES = {
    "pd": "public-domain",
    "publicdomain": "public-domain",
    "cc-0": "cc0",
    "arr": "all-rights-reserved",
}


def normalize_rights(value: str | None, *, default: str | None = None) -> str:
    """Canonical rights value; raises `UsageError` for one outside the vocabulary."""
    if value is None or value == "":
        if default is None:
            raise UsageError("no rights value given")
        return normalize_rights(default)
    key = value.strip().lower().replace("_", "-").replace(" ", "-")
    key = ALIASES.get(key, key)
    if key not in RIGHTS:
        raise UsageError(f"unknown rights value {value!r} (one of: {', '.join(RIGHTS)})")
    return key
