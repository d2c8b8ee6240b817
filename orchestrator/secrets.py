"""Secrets: the values of environment variables named secret.

**Masking.** Every leaf of a secret (a string of 3 characters or more, or a
number written with 3 or more; each leaf of a mapping or list secret) is hidden
as ``***`` in API responses, events shown to users and log lines, and so are
the forms a secret takes on its way there: any letter case (``toUpper()``),
Python ``repr``/``ascii`` escapes (error messages), JSON escapes, URL encoding,
HTML escapes, and base64 at each of the three byte alignments (as secret
scanners match it: ``Authorization: Basic`` carries ``base64(user:secret)``).
Whatever the secrets, the credential of an ``Authorization`` header and an
``auth`` field (std.http's) are hidden too. One regular expression per set of
secrets does it in one pass over each string; it is compiled once and cached.

**At rest.** A secret variable's value is stored encrypted (Fernet, from
``cryptography``) as ``enc:v1:<token>``, in environments and in the copy an
execution pins (``params.env``). The key is ``ORCH_SECRET_KEY``, else the file
``ORCH_SECRET_KEY_FILE``, else ``secret.key`` in the data directory, created
(mode 0600) the first time a secret is stored. Either may hold several keys
(one a line, or comma-separated): the first encrypts, all decrypt, so a key can
be rotated. Values stored before encryption existed are read as they are.
Only the engine opens them: ``env()`` in expressions (and so action inputs).
"""
from __future__ import annotations

import base64
import binascii
import functools
import html
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

from orchestrator.errors import OrchestratorError

MASK = "***"
PREFIX = "enc:v1:"
MIN_LENGTH = 3  # masking "1" everywhere would hide more than secrets
B64_MIN = 6  # shorter base64 fragments would hide ordinary words
KEY_FILE = "secret.key"
log = logging.getLogger(__name__)

_known: set[str] = set()
_lock = threading.Lock()


class SecretKeyError(OrchestratorError):
    """The key that encrypts secrets at rest is missing or is not the right one."""

    status_code = 500


# -- which values are secret ------------------------------------------------------------------
def leaves(value) -> list[str]:
    """The texts to hide for one secret value: each leaf of a mapping or list,
    strings and numbers of at least :data:`MIN_LENGTH` characters."""
    out, stack = [], [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, (str, int, float)) and not isinstance(v, bool):
            text = str(v)
            if len(text.strip()) >= MIN_LENGTH:
                out.append(text)
    return out


def secret_names(env, names) -> list[str]:
    """The variables of ``env`` that are secret: those named, and any stored
    encrypted (a sub-execution's copy of its root's environment has no names)."""
    if not isinstance(env, dict):
        return []
    out = [n for n in (names or ()) if n in env]
    out += [k for k, v in env.items() if is_sealed(v) and k not in out]
    return out


def values_of(env: dict | None, names, strict: bool = False) -> list[str]:
    """The texts to hide for ``env``'s secret variables, longest first; also
    hidden in this process's log lines from now on. ``strict``: a value that
    cannot be decrypted raises :class:`SecretKeyError` (the API must not show
    what it cannot mask); otherwise it is skipped (nothing of it can leak)."""
    hidden = secret_names(env, names)
    if not hidden:
        return []
    out: set[str] = set()
    for name in hidden:
        try:
            value = open_value(env[name])
        except SecretKeyError:
            if strict:
                raise
            continue
        out.update(leaves(value))
    remember(out)
    return sorted(out, key=len, reverse=True)


def remember_params(params) -> None:
    """Hide the secrets of an execution (its ``params``) in this process's log lines."""
    if isinstance(params, dict) and isinstance(params.get("env"), dict):
        values_of(params["env"], params.get("secrets"))


def masked_env(env, names) -> dict:
    """``env`` as users see it: each secret variable (named, or stored encrypted) is ``***``."""
    if not isinstance(env, dict):
        return env
    hidden = set(secret_names(env, names))
    return {k: MASK if k in hidden else v for k, v in env.items()}


# -- log lines: every secret this process has seen ---------------------------------------------
class _Known:
    """The maskers of :data:`_known`: one for the bulk and one for recent additions,
    so a new execution's secrets cost a small compile, not one of everything."""

    old: frozenset = frozenset()
    recent: frozenset = frozenset()


def remember(values) -> None:
    """Hide these values (and their derived forms) in every log line of this process."""
    with _lock:
        new = set(values) - _known
        if not new:
            return
        _known.update(new)
        recent = _Known.recent | new
        if len(recent) > max(64, len(_Known.old) // 4):
            _Known.old, _Known.recent = frozenset(_known), frozenset()
        else:
            _Known.recent = recent


def known() -> Masker:
    """What masks every value remembered so far (give it to :func:`mask`)."""
    with _lock:
        old, recent = _Known.old, _Known.recent
    return _chain(old, recent)


@functools.lru_cache(maxsize=8)
def _chain(old: frozenset, recent: frozenset) -> Masker:
    if not recent:
        return masker(old)
    return _Chained(masker(old), masker(recent))


# -- masking ---------------------------------------------------------------------------------
_REQUESTS_SAFE = "!#$%&'()*+,/:;=?@[]~"  # what requests leaves as is in a URL


def _quoted(text: str) -> set[str]:
    """``text`` as it is written inside a Python or JSON string literal."""
    out = set()
    for r in (repr(text), ascii(text)):
        inner = r[1:-1]
        out.add(inner)
        if r[0] == '"':  # inside a larger string with both quotes, ' is escaped
            out.add(inner.replace("'", "\\'"))
    out.add(json.dumps(text)[1:-1])
    out.add(json.dumps(text, ensure_ascii=False)[1:-1])
    return out


def text_forms(secret: str) -> set[str]:
    """Forms of ``secret`` matched without regard to case."""
    out = set()
    for base in {secret, secret.upper(), secret.lower(), secret.casefold()}:
        quoted = _quoted(base)
        out.add(base)
        out.update(quoted)
        for q in quoted - {base}:  # escaped twice: the repr of a JSON text, and so on
            out.update(_quoted(q))
        out.update((quote(base, safe=""), quote(base, safe="/"), quote(base, safe=_REQUESTS_SAFE),
                    quote_plus(base), html.escape(base), html.escape(base, quote=False)))
    return {f for f in out if len(f) >= MIN_LENGTH}


def base64_forms(secret: str) -> set[str]:
    """The base64 characters that depend on ``secret`` alone, wherever it sits in
    the encoded bytes (3 alignments), standard and URL-safe alphabets."""
    encodings = {secret.encode("utf-8", "surrogatepass")}
    try:
        encodings.add(secret.encode("latin-1"))  # requests encodes Basic credentials so
    except UnicodeEncodeError:
        pass
    out = set()
    for data in encodings:
        for offset in range(3):
            encoded = base64.b64encode(b"\0" * offset + data).decode()
            start = -(-8 * offset // 6)  # the first character with no bit of the prefix
            end = 8 * (offset + len(data)) // 6  # nor any bit of what follows
            fragment = encoded[start:end]
            if len(fragment) >= B64_MIN:
                out.add(fragment)
                out.add(fragment.replace("+", "-").replace("/", "_"))
    return out


def _trie(words) -> str:
    """A regular expression matching any of ``words`` (longest first at a
    position), as a trie so each position costs one step per character matched."""
    root: dict = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        parts, singles, end = [], [], "" in node
        for ch in sorted(k for k in node if k):
            child, run = node[ch], [ch]
            while len(child) == 1 and "" not in child:  # a chain: one literal run
                (c, child), = child.items()
                run.append(c)
            literal = re.escape("".join(run))
            if child.keys() == {""}:
                if len(run) == 1:
                    singles.append(literal)
                else:
                    parts.append(literal)
            else:
                parts.append(literal + emit(child))
        if singles:
            parts.append(singles[0] if len(singles) == 1 else f"[{''.join(singles)}]")
        body = parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"
        return f"(?:{body})?" if end else body

    return emit(root) if root else ""


# Credentials hidden whatever the secrets: an Authorization header as text
# (``Authorization: Basic …``, ``'authorization': 'Bearer …'``) and a token
# encrypted at rest (never to be shown, even if a workflow copies it).
_AUTH = (r"(?P<a>\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?(?:[a-z][\w-]*[ \t]+)?)"
         r"[^\s\"',;}\]]+")
_SEALED = re.escape(PREFIX) + r"[\w=-]+"
_CREDENTIAL_KEYS = {"authorization", "proxy-authorization", "auth"}
_CREDENTIAL_LENGTHS = {len(k) for k in _CREDENTIAL_KEYS}
_SCHEME = re.compile(r"\s*([A-Za-z][\w-]*)\s+\S")


def _replace(m: re.Match) -> str:
    prefix = m.group("a")
    return MASK if prefix is None else prefix + MASK


_ALNUM = re.compile(r"[a-z0-9]+")
_B64_RUN = re.compile(r"[A-Za-z0-9]+")
_PREFILTER_MAX = 64  # more needles than this: one regex pass is cheaper than the checks


def _needle(text: str, runs: re.Pattern, minimum: int) -> str | None:
    """The longest run ``runs`` finds in ``text``: every form contains it."""
    best = max(runs.findall(text), key=len, default="")
    return best if len(best) >= minimum else None


def _substitution(secrets: frozenset):
    """``(sub, suspect)`` for these secrets. ``sub``: text -> masked text, with one
    case-insensitive regex (the credentials and the text forms, as a trie) and one
    case-sensitive (base64). ``suspect``: whether a text may hold something to
    mask. A regex costs tens of nanoseconds a character, a substring test about
    one: so a text goes through the regexes only when it holds a *needle*, a
    substring every form of a secret contains (its longest ASCII letter-and-digit
    run, which no escaping or encoding changes)."""
    texts, b64, low_needles, needles = set(), set(), {"authorization", PREFIX}, set()
    for secret in secrets:
        forms = text_forms(secret)
        texts.update(forms)
        needle = _needle(secret.lower(), _ALNUM, MIN_LENGTH)
        low_needles.update([needle] if needle else (f.lower() for f in forms))
        for fragment in base64_forms(secret):
            b64.add(fragment)
            needles.add(_needle(fragment, _B64_RUN, 4) or fragment)
    # Case-insensitive: the lower-case form stands for the others (unless
    # lowering changes its length, as for "İ").
    words = {t.lower() if len(t.lower()) == len(t) else t for t in texts}
    ci_sub = functools.partial(re.compile(
        "|".join([_AUTH, _SEALED, *([_trie(words)] if words else [])]), re.IGNORECASE).sub,
        _replace)
    b64_sub = functools.partial(re.compile(_trie(b64)).sub, MASK) if b64 else None
    low_needles, needles = tuple(low_needles), tuple(needles)

    def suspect(text: str, low: str | None = None) -> bool:
        low = text.lower() if low is None else low
        for n in low_needles:
            if n in low:
                return True
        for n in needles:
            if n in text:
                return True
        return False

    if len(low_needles) + len(needles) > _PREFILTER_MAX:
        def sub(text: str) -> str:
            text = ci_sub(text)
            return b64_sub(text) if b64_sub is not None else text
        return sub, lambda text: True

    def sub(text: str) -> str:
        low = text.lower()
        for n in low_needles:
            if n in low:
                text = ci_sub(text)
                break
        for n in needles:
            if n in text:
                return b64_sub(text)
        return text

    return sub, suspect


class Masker:
    """Hides one set of secrets (and every credential) in text and in JSON-like values."""

    __slots__ = ("_sub", "_suspect", "secrets")

    def __init__(self, secrets=()):
        self.secrets = frozenset(secrets)
        self._sub, self._suspect = _substitution(self.secrets)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        return self._sub(text)

    def __call__(self, value):
        """``value`` masked: a new value, or ``value`` itself when nothing in it
        needs masking (decided on its JSON text at C speed: the common case)."""
        if type(value) is str:
            return self._sub(value)
        if type(value) in (dict, list, tuple):
            blob = json.dumps(value, ensure_ascii=False, check_circular=False, default=str)
            low = blob.lower()
            if '"auth"' not in low and not self._suspect(blob, low):
                return value
        return self._walk(value)

    def _walk(self, value):
        sub = self._sub
        t = type(value)
        if t is str:
            return sub(value)
        if t is dict:
            out = {}
            for k, v in value.items():
                if type(k) is str:
                    if len(k) in _CREDENTIAL_LENGTHS and k.lower() in _CREDENTIAL_KEYS \
                            and v is not None and type(v) is not bool:
                        out[sub(k)] = _credential(v)
                        continue
                    k = sub(k)
                out[k] = self._walk(v)
            return out
        if t is list or t is tuple:
            return [self._walk(v) for v in value]
        if (t is int or t is float) and self.secrets:
            text = str(value)
            if sub(text) != text:
                return MASK
        return value


def _credential(value):
    """An Authorization header keeps its scheme (``Basic ***``); anything else is ``***``."""
    if isinstance(value, str):
        m = _SCHEME.match(value)
        if m:
            return f"{m.group(1)} {MASK}"
    return MASK


class _Chained(Masker):
    __slots__ = ("_parts",)

    def __init__(self, *parts: Masker):
        self._parts = parts
        self.secrets = frozenset().union(*(p.secrets for p in parts))
        subs = [p._sub for p in parts]
        suspects = [p._suspect for p in parts]

        def sub(text: str) -> str:
            for s in subs:
                text = s(text)
            return text

        def suspect(text: str, low: str | None = None) -> bool:
            return any(s(text, low) for s in suspects)

        self._sub, self._suspect = sub, suspect


@functools.lru_cache(maxsize=512)
def _masker(secrets: frozenset) -> Masker:
    return Masker(secrets)


def masker(secrets=()) -> Masker:
    """The (cached) :class:`Masker` of these secret values."""
    if isinstance(secrets, Masker):
        return secrets
    return _masker(frozenset(secrets))


def mask(value, secrets):
    """``value`` with every form of a secret, and every credential, replaced by ``***``.
    ``secrets``: secret values (as :func:`values_of` gives them) or a :class:`Masker`."""
    return masker(secrets or ())(value)


class MaskingFilter(logging.Filter):
    """A logging filter that hides every remembered secret (and credentials) in the
    message, the traceback and the stack of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        hide = known()
        message = record.getMessage()
        masked = hide.text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = hide.text(record.exc_text)
        if record.stack_info:
            record.stack_info = hide.text(record.stack_info)
        return True


# -- encryption at rest ----------------------------------------------------------------------
def key_file() -> Path:
    """Where the key is read from (and created): ``ORCH_SECRET_KEY_FILE``, else
    ``secret.key`` in the data directory."""
    given = os.environ.get("ORCH_SECRET_KEY_FILE")
    if given:
        return Path(given).expanduser()
    from orchestrator.store.db import data_dir

    return data_dir() / KEY_FILE


def _key_source() -> tuple:
    return (os.environ.get("ORCH_SECRET_KEY"), os.environ.get("ORCH_SECRET_KEY_FILE"),
            os.environ.get("XDG_DATA_HOME"), os.environ.get("HOME"))


_keyrings: dict[tuple, tuple] = {}
_opened: dict[str, str] = {}  # token -> JSON text: each token is decrypted once per process
_OPENED_MAX = 10_000


def reset() -> None:
    """Forget loaded keys and decrypted values (tests; a key file changed in place)."""
    with _lock:
        _keyrings.clear()
        _opened.clear()


def _parse_keys(text: str, where: str):
    from cryptography.fernet import Fernet, MultiFernet

    keys = []
    lines = [x.strip() for line in text.splitlines() for x in line.split(",")]
    for n, line in enumerate(lines, 1):
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(Fernet(line))
        except (ValueError, binascii.Error):
            raise SecretKeyError(
                f"{where}: entry {n} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'") from None
    if not keys:
        raise SecretKeyError(f"{where} holds no key")
    return MultiFernet(keys)


def _create_key_file(path: Path) -> None:
    """Write a new key, mode 0600; another process that won the race keeps its own."""
    from cryptography.fernet import Fernet

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as e:
        raise SecretKeyError(f"cannot create the key file {path} that encrypts secrets: "
                             f"{e.strerror}; set ORCH_SECRET_KEY_FILE (or ORCH_SECRET_KEY)"
                             ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(Fernet.generate_key() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    log.warning("created the key that encrypts secrets at rest: %s (back it up: without it "
                "the stored secrets cannot be read)", path)


def _read_key_file(path: Path) -> str:
    deadline = time.monotonic() + 2
    while True:
        text = path.read_text()
        if text.strip() or time.monotonic() > deadline:
            return text
        time.sleep(0.02)  # another process created it and is writing the key


def _keyring(create: bool):
    """(keys, where they come from); ``create``: make the key file if missing."""
    source = _key_source()
    found = _keyrings.get(source)
    if found is not None:
        return found
    if source[0]:
        found = (_parse_keys(source[0], "ORCH_SECRET_KEY"), "the key in ORCH_SECRET_KEY")
    else:
        path = key_file()
        where = f"the key file {path}" + ("" if source[1] else " (set ORCH_SECRET_KEY_FILE "
                                          "or ORCH_SECRET_KEY to use another)")
        if not path.exists():
            if not create:
                raise SecretKeyError(
                    f"secrets in the store are encrypted, but {where} does not exist; "
                    "restore the key file that encrypted them")
            _create_key_file(path)
        try:
            text = _read_key_file(path)
        except OSError as e:
            raise SecretKeyError(f"cannot read {where}: {e.strerror}") from None
        if path.stat().st_mode & 0o077:
            log.warning("%s can be read by other users; chmod 600 it", path)
        found = (_parse_keys(text, str(path)), where)
    with _lock:
        _keyrings[source] = found
    return found


def is_sealed(value) -> bool:
    """True when ``value`` is a secret encrypted at rest."""
    return isinstance(value, str) and value.startswith(PREFIX)


def seal(value) -> str:
    """``value`` (any JSON value) encrypted: ``enc:v1:<Fernet token>``."""
    if is_sealed(value):
        return value
    keys, _ = _keyring(create=True)
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    token = keys.encrypt(text.encode()).decode()
    _cache(token, text)
    return PREFIX + token


def _cache(token: str, text: str) -> None:
    with _lock:
        if len(_opened) >= _OPENED_MAX:
            _opened.clear()
        _opened[token] = text


def _is_token(token: str) -> bool:
    """A well-formed Fernet token (version 0x80, header, whole AES blocks, HMAC)."""
    try:
        raw = base64.urlsafe_b64decode(token.encode())
    except (ValueError, binascii.Error):
        return False
    return len(raw) >= 73 and raw[0] == 0x80 and (len(raw) - 57) % 16 == 0


def open_value(value):
    """A secret as stored, decrypted; a value stored before encryption (or one
    that only looks like a token) is returned as it is."""
    if not is_sealed(value):
        return value
    token = value[len(PREFIX):]
    text = _opened.get(token)
    if text is None:
        if not _is_token(token):
            return value
        from cryptography.fernet import InvalidToken

        for attempt in range(2):
            keys, where = _keyring(create=False)
            try:
                text = keys.decrypt(token.encode()).decode()
                break
            except InvalidToken:
                if attempt:
                    raise SecretKeyError(
                        f"a secret in the store cannot be decrypted with {where}: it was "
                        "encrypted with another key; restore that key (a key file may list "
                        "several keys, the first one encrypts)") from None
                with _lock:  # read the key again: it may have been restored since
                    _keyrings.pop(_key_source(), None)
        _cache(token, text)
    return json.loads(text)


def seal_env(env, names):
    """A copy of ``env`` whose variables named in ``names`` are encrypted. Their
    values are hidden in this process's log lines from now on."""
    if not isinstance(env, dict) or not names:
        return env
    out = dict(env)
    for name in names:
        if name in out and not is_sealed(out[name]):
            remember(leaves(out[name]))
            out[name] = seal(out[name])
    return out


def open_env(env):
    """A copy of ``env`` with its encrypted values decrypted (for ``env()``)."""
    if not isinstance(env, dict):
        return env
    if not any(is_sealed(v) for v in env.values()):
        return env
    return {k: open_value(v) for k, v in env.items()}


def open_params(params):
    """An execution's ``params`` with ``env`` decrypted (for ``execution()``)."""
    if not isinstance(params, dict) or not isinstance(params.get("env"), dict):
        return params
    env = open_env(params["env"])
    return params if env is params["env"] else {**params, "env": env}
