"""How text becomes search terms, the same way at index time and at query time.

Text is first brought to Unicode NFKC by `normalize_text` (composed accents, so that a
decomposed `de\u0301ja\u0300` is `déjà`; compatibility forms folded, so that full-width
`Ｂｅｅｔｌｅｓ`, ligatures and roman numerals read as plain letters), at index time
(`index.make_document`) and at query time (`parse_query`) alike. Words are then split on
anything that is not a letter or digit, lower-cased and folded to ASCII (`Café` -> `cafe`,
`Straße` -> `strasse`), by tantivy's own analyzer so that a query term is exactly an
indexed term. Identifiers (ISRC, UPC, external ids) are kept
whole in a separate `keys` field, normalised by `normalize_key`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import tantivy

from musicark.errors import QueryError

ANALYZER = "musicark_fold"
KEYS_ANALYZER = "musicark_keys"  # identifiers, space-separated in one value
MAX_QUERY_CHARS = 256
_ISRC_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")
_UPC_RE = re.compile(r"^[0-9]{8,14}$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_KIND_VALUE_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]{0,31}):(\S+)$")


def make_analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.lowercase())  # ascii_fold maps small capitals (ʀ) to R
        .build()
    )


_ANALYZER = make_analyzer()
_KEYS = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


def register_analyzer(index: tantivy.Index) -> None:
    """tantivy forgets custom analyzers on every `Index.open`: register ours again."""
    index.register_tokenizer(ANALYZER, _ANALYZER)
    index.register_tokenizer(KEYS_ANALYZER, _KEYS)


def normalize_text(text: str) -> str:
    """`text` in Unicode NFKC (ASCII, the common case, is returned as it is)."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def has_text(text: str) -> bool:
    """Whether `text` is a query at all: anything left after control characters and
    spaces go (else `parse_query` says the query is empty)."""
    return bool(normalize_text(CONTROL_RE.sub(" ", text)).strip())


def words(text: str) -> list[str]:
    """The folded words of `text`, as the index holds them."""
    return list(_ANALYZER.analyze(normalize_text(text)))


def normalize_key(value: str) -> str:
    """An identifier as stored in `keys`: trimmed, lower-case, no inner spaces or hyphens
    (ISRCs are often written `US-ABC-12-34567`)."""
    return re.sub(r"[\s-]+", "", value.strip()).lower()


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    text: str
    words: tuple[str, ...]
    prefix: bool  # the last word is still being typed: match it as a prefix
    keys: tuple[str, ...]  # identifier forms to look up exactly, best first


def parse_query(text: str) -> ParsedQuery:
    """Check and analyse a user query; raises `QueryError` with a readable reason."""
    if not isinstance(text, str):
        raise QueryError("the query must be text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise QueryError("the query is not valid text") from None
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"the query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}"
        )
    text = normalize_text(CONTROL_RE.sub(" ", text))
    stripped = text.strip()
    if not stripped:
        raise QueryError("the query is empty")
    found = words(stripped)
    keys: list[str] = []
    compact = re.sub(r"[\s-]+", "", stripped)
    if _ISRC_RE.match(compact.upper()) or _UPC_RE.match(compact):
        keys.append(compact.lower())
    m = _KIND_VALUE_RE.match(stripped)
    if m:
        kind, value = m.group(1).lower(), normalize_key(m.group(2))
        keys.append(value if kind in ("isrc", "upc", "ean") else f"{kind}:{value}")
    if " " not in stripped and len(stripped) <= 128 and any(c.isalnum() for c in stripped):
        key = normalize_key(stripped)
        if key not in keys:
            keys.append(key)
    # A trailing space means the last word is complete; otherwise it may be half typed.
    prefix = bool(found) and not text[-1].isspace()
    return ParsedQuery(text=stripped, words=tuple(found), prefix=prefix, keys=tuple(keys))
