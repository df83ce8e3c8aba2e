"""A source's licence statement (a URL or a name) as a catalogue `rights` value.

Creative Commons URLs and names map to their `cc-*` value, the CC0 and Public Domain Mark
URLs to `cc0` and `public-domain`, "All rights reserved" to `all-rights-reserved`; anything
not recognised maps to `unknown`. Both keep the file dark (preserved, never in a public
torrent).
"""

from __future__ import annotations

import re

_CC_URL = re.compile(r"creativecommons\.org/licen[cs]es/([a-z\-]+)/", re.IGNORECASE)
_CC_PD = re.compile(r"creativecommons\.org/publicdomain/(zero|mark)/", re.IGNORECASE)
_CC_CODES = {
    "by": "cc-by",
    "by-sa": "cc-by-sa",
    "by-nd": "cc-by-nd",
    "by-nc": "cc-by-nc",
    "by-nc-sa": "cc-by-nc-sa",
    "by-nc-nd": "cc-by-nc-nd",
    "by-nd-nc": "cc-by-nc-nd",
}
# Words of licence names (as the Free Music Archive spells them) -> code parts.
_WORDS = (("attribution", "by"), ("noncommercial", "nc"), ("sharealike", "sa"), ("noderiv", "nd"))


def licence_rights(licence: str | None) -> str:
    """`rights` for a licence URL or name; `unknown` when it says nothing we recognise."""
    if not licence:
        return "unknown"
    text = licence.strip()
    pd = _CC_PD.search(text)
    if pd:
        return "cc0" if pd.group(1).lower() == "zero" else "public-domain"
    cc = _CC_URL.search(text)
    if cc:
        return _CC_CODES.get(cc.group(1).lower(), "unknown")
    low = re.sub(r"[^a-z0-9]+", "", text.lower())
    if low in ("cc0", "cczero", "publicdomaindedicationcc0") or "cc010" in low:
        return "cc0"
    if "publicdomain" in low:
        return "public-domain"
    if "allrightsreserved" in low:
        return "all-rights-reserved"
    if "attribution" in low:
        parts = ["by"] + [code for word, code in _WORDS[1:] if word in low]
        return _CC_CODES.get("-".join(parts), "unknown")
    if low.startswith("ccby"):
        parts = ["by"] + [c for c in ("nc", "sa", "nd") if c in low[4:]]
        return _CC_CODES.get("-".join(parts), "unknown")
    return "unknown"
