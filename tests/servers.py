"""A real vLLM OpenAI server (`vllm serve`) of the embedded model on loopback, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sao.models import resolve_model

# as the vllm engine runs on CPU (sao/engines/vllm.py): no torch.compile, whole prefills,
# 32-token blocks so the judge's shared prefixes hit the prefix cache
CPU_FLAGS = [
    "--enforce-eager",
    "--max-num-batched-tokens", "65536",
    "--block-size", "32",
    "--max-model-len", "4096",
    "--dtype", "bfloat16",
    "--seed", "0",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """`vllm serve` in its own process group; `kill()` and `start()` again on the same port."""

    def __init__(
        self, log: Path, api_key: str | None = None, chat_template: Path | None = None
    ) -> None:
        self.model = resolve_model("smollm2-135m-instruct").path
        self.port = free_port()
        self.log = log
        self.api_key = api_key
        self.chat_template = chat_template  # a template file served instead of the model's
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 300) -> None:
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": "2",
            "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            "VLLM_LOGGING_LEVEL": "WARNING",
        }
        # `vllm serve` itself asks for the "vllm" distribution, which vllm-cpu is not named
        args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model]
        args += ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.api_key:
            args += ["--api-key", self.api_key]
        if self.chat_template:
            args += ["--chat-template", str(self.chat_template)]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [*args, *CPU_FLAGS], stdout=log, stderr=log, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited {self.proc.returncode}: see {self.log}")
            if self.healthy():  # /health needs no key
                return
            time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"vllm serve not healthy after {timeout} s: see {self.log}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server and its engine process, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None
