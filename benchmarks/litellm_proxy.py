"""LiteLLM's proxy server as a peer to measure against, in its own virtualenv.

`prepare(...)` installs `litellm[proxy]` into `benchmarks/.venv-litellm` on first use
(reused afterwards), writes a proxy config that routes the benchmark's model names to
the same mock upstream, and returns how to start it: one uvicorn worker, no database,
no master key, no telemetry, no remote cost-map fetch. Starting, waiting for readiness
and stopping the process are the caller's job (benchmarks/overhead.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv-litellm"
READY_MARKER = ".flywheel-ready"  # written after a successful install; holds the version
REQUIREMENT = "litellm[proxy]"
READY_PATH = "/health/liveliness"
INSTALL_TIMEOUT_S = 1200


class LiteLLMUnavailable(RuntimeError):
    """LiteLLM could not be installed or configured; the message says why."""


@dataclass(frozen=True, slots=True)
class ProxyLaunch:
    """Everything needed to start the proxy and know when it is up."""

    argv: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    version: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _bin(name: str) -> Path:
    return VENV / "bin" / name


def installed_version() -> str | None:
    marker = VENV / READY_MARKER
    if marker.is_file() and _bin("litellm").exists():
        return marker.read_text().strip() or "unknown"
    return None


def ensure_installed(log: Path | None = None) -> str:
    """The installed LiteLLM version, installing it first if needed."""
    version = installed_version()
    if version is not None:
        return version
    print(f"litellm: installing {REQUIREMENT} into {VENV} (first use)...", file=sys.stderr)
    try:
        if not _bin("python").exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        pip = [str(_bin("python")), "-m", "pip"]
        result = subprocess.run(
            [
                *pip,
                "install",
                "--disable-pip-version-check",
                "--retries",
                "1",
                "--timeout",
                "20",
                REQUIREMENT,
            ],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise LiteLLMUnavailable(f"could not create {VENV.name}: {exc}") from exc
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
        reason = lines[-1] if lines else f"pip exited with {result.returncode}"
        raise LiteLLMUnavailable(f"pip install {REQUIREMENT} failed: {reason}")
    show = subprocess.run(
        [str(_bin("python")), "-m", "pip", "show", "litellm"],
        capture_output=True,
        text=True,
        check=False,
    )
    version = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in show.stdout.splitlines()
            if ln.startswith("Version")
        ),
        "unknown",
    )
    (VENV / READY_MARKER).write_text(version)
    return version


def config_yaml(mock_url: str, models: list[str]) -> str:
    """A proxy config routing each model name to the mock upstream (OpenAI protocol)."""
    lines = ["model_list:"]
    for name in models:
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: openai/{name}",
            f"      api_base: {mock_url.rstrip('/')}/v1",
            "      api_key: x",
        ]
    lines += [
        "litellm_settings:",
        "  telemetry: false",
        "  set_verbose: false",
        "  json_logs: false",
        "general_settings:",
        "  disable_spend_logs: true",
        "",
    ]
    return "\n".join(lines)


def prepare(mock_url: str, models: list[str], port: int, workdir: Path) -> ProxyLaunch:
    """Install if needed, write the config under `workdir`, and say how to start it."""
    version = ensure_installed(workdir / "litellm-install.log")
    config = workdir / "litellm.yaml"
    config.write_text(config_yaml(mock_url, models))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LITELLM_", "DATABASE_URL", "OPENAI_", "VIRTUAL_ENV"))
    }
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False",
        LITELLM_DONT_SHOW_FEEDBACK_BOX="True",
        DISABLE_SCHEMA_UPDATE="True",
        # Recent releases refuse to boot without a master key; the brief is "no master
        # key" (no per-request key check, which only flatters LiteLLM), so permit it.
        LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true",
        PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    argv = [
        str(_bin("litellm")),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    return ProxyLaunch(argv, env, port, READY_PATH, version, workdir / "litellm.log")
