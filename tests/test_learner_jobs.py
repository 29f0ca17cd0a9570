"""Training jobs (SFT, GRPO) on a tiny random Llama: adapters, kill switch, resume, MLflow."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402
from peft import PeftModel  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from learner.jobs.base import JobResult  # noqa: E402
from learner.jobs.kto import KTOJob, KTOJobConfig  # noqa: E402
from learner.jobs.rewards import Reward, brevity, no_repetition, one_line_summary  # noqa: E402
from learner.jobs.rl import GRPOJob, RLJobConfig  # noqa: E402
from learner.jobs.sft import SFTJob, SFTJobConfig, sft_rows  # noqa: E402
from learner.jobs.tracking import resolve_tracking_uri  # noqa: E402
from tests.support.tiny_model import build_tiny_model  # noqa: E402

EXAMPLES = [
    {"messages": [{"role": "user", "content": f"ticket {i}"}, {"role": "assistant", "content": a}]}
    for i, a in enumerate(["Refund issued.", "Password reset sent.", "Order shipped."] * 3)
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def sft_config(tiny: Path, out: Path, **overrides: Any) -> SFTJobConfig:
    values: dict[str, Any] = {
        "base_model": tiny,
        "output_dir": out,
        "served_base_name": "smollm2-135m",
        "max_steps": 4,
        "learning_rate": 1e-2,
        "batch_size": 2,
        "tracking_uri": (out.parent / "mlruns").as_uri(),
        "progress": False,
    }
    return SFTJobConfig(**{**values, **overrides})


def metric_steps(result: JobResult, key: str) -> list[tuple[int, float]]:
    history = MlflowClient(result.tracking_uri).get_metric_history(result.run_id, key)
    return sorted((m.step, m.value) for m in history)


def test_sft_publishes_a_peft_adapter_that_changes_outputs(tiny: Path, tmp_path: Path) -> None:
    result = SFTJob(sft_config(tiny, tmp_path / "job")).run(EXAMPLES, lambda: False)

    assert result.status == "completed", result.error
    assert result.global_step == 4 and result.wall_s > 0 and result.peak_rss_mb > 0
    assert result.snapshot_id.startswith("sha256:")
    adapter = result.adapter_dir
    assert adapter is not None and (adapter / "adapter_model.safetensors").is_file()
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "smollm2-135m"
    assert not (tmp_path / "job" / "adapter.tmp").exists()

    base = AutoModelForCausalLM.from_pretrained(str(tiny))
    ids = torch.tensor([[1, 42, 314, 2718]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(adapter))
        after = tuned(ids).logits
    assert (after - before).abs().max().item() > 1e-3

    run = MlflowClient(result.tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == "0.01"
    assert run.data.params["snapshot_id"] == result.snapshot_id
    assert run.data.tags["flywheel.adapter_dir"] == str(adapter)
    assert [step for step, _ in metric_steps(result, "loss")] == [1, 2, 3, 4]


def test_grpo_logs_reward_and_kl_per_step_and_publishes(tiny: Path, tmp_path: Path) -> None:
    def letters(prompts: list[str], completions: list[str]) -> list[float]:
        return [sum(ch.isalpha() for ch in c) / max(len(c), 1) for c in completions]

    config = RLJobConfig(
        base_model=tiny,
        output_dir=tmp_path / "job",
        max_steps=3,
        learning_rate=1e-2,
        num_generations=4,
        max_completion_length=6,
        beta=0.1,
        tracking_uri=(tmp_path / "mlruns").as_uri(),
        progress=False,
    )
    rewards = [Reward("letters", letters), brevity(40)]
    result = GRPOJob(config, rewards).run(["Say hi.", "Summarise my order."], lambda: False)

    assert result.status == "completed", result.error
    assert result.adapter_dir is not None
    assert [step for step, _ in metric_steps(result, "reward")] == [1, 2, 3]
    assert [step for step, _ in metric_steps(result, "rewards.letters.mean")] == [1, 2, 3]
    kl = metric_steps(result, "kl")
    assert len(kl) == 3 and kl[-1][1] > 0  # the policy moved away from the base
    params = MlflowClient(result.tracking_uri).get_run(result.run_id).data.params
    assert params["rewards"] == "letters*1,brevity*1" and params["beta"] == "0.1"


def test_kill_switch_stops_training_within_a_second(tiny: Path, tmp_path: Path) -> None:
    flipped: list[float] = []
    reads: list[float] = []

    def killed() -> bool:
        # The switch is read on every step and every 0.5 s by the job's watcher: flip it
        # once training is under way (2 s after the first read and 30 reads in, so steps
        # have run), however long a loaded machine takes to set the job up.
        now = time.monotonic()
        reads.append(now)
        if not flipped and len(reads) >= 30 and now - reads[0] >= 2.0:
            flipped.append(now)
        return bool(flipped)

    config = sft_config(tiny, tmp_path / "job", max_steps=100_000, save_steps=100_000)
    result = SFTJob(config).run(EXAMPLES, killed)
    returned = time.monotonic()

    assert flipped, "the job finished before the switch was flipped"
    assert returned - flipped[0] < 1.0
    assert result.status == "stopped" and result.stopped_by_kill_switch
    assert result.global_step > 0  # it was training when the switch flipped
    assert result.adapter_dir is None and not (tmp_path / "job" / "adapter").exists()
    run = MlflowClient(result.tracking_uri).get_run(result.run_id)
    assert run.info.status == "KILLED"


def test_a_switch_already_on_trains_nothing(tiny: Path, tmp_path: Path) -> None:
    result = SFTJob(sft_config(tiny, tmp_path / "job")).run(EXAMPLES, lambda: True)
    assert result.status == "stopped" and result.global_step == 0 and result.adapter_dir is None


def test_resume_continues_from_the_last_checkpoint(tiny: Path, tmp_path: Path) -> None:
    first = SFTJob(sft_config(tiny, tmp_path / "job", max_steps=2, save_steps=2))
    assert first.run(EXAMPLES, lambda: False).status == "completed"
    assert (tmp_path / "job" / "checkpoints" / "checkpoint-2").is_dir()

    second = SFTJob(sft_config(tiny, tmp_path / "job", max_steps=4, save_steps=2))
    result = second.run(EXAMPLES, lambda: False)

    assert result.status == "completed" and result.global_step == 4
    assert [step for step, _ in metric_steps(result, "loss")] == [3, 4]


def test_examples_are_validated() -> None:
    rows = sft_rows([{"prompt": "hi", "completion": "hello"}])
    assert rows[0]["completion"] == [{"role": "assistant", "content": "hello"}]
    with pytest.raises(ValueError, match="example 0"):
        sft_rows([{"messages": [{"role": "user", "content": "no answer"}]}])
    with pytest.raises(ValueError, match="example 1"):
        sft_rows([{"prompt": "a", "completion": "b"}, {"text": "c"}])


def test_programmatic_rewards() -> None:
    prompts = ["q", "q"]
    assert brevity(10).fn(prompts, ["short", "x" * 40]) == [1.0, 0.25]
    assert one_line_summary(20).fn(prompts, ["Done.\nDetails...", "\n"]) == [1.0, 0.0]
    looped = "go to the shop " * 4  # 16 words: 14 trigrams, 4 of them distinct
    assert no_repetition().fn(prompts, ["one two three four", looped]) == [1.0, 4 / 14]

    class Scorer:
        def score(self, prompt: str, response: str) -> float:
            return float(len(response))

    trl_reward = Reward.model(Scorer(), weight=0.5).as_trl()
    completions = [[{"role": "assistant", "content": "abc"}]]
    assert trl_reward(prompts=[[{"role": "user", "content": "q"}]], completions=completions) == [
        3.0
    ]
    assert trl_reward.__name__ == "reward_model"


@pytest.mark.skipif(importlib.util.find_spec("sqlalchemy") is not None, reason="sqlite usable")
def test_sqlite_tracking_falls_back_to_a_file_store(tmp_path: Path) -> None:
    uri = resolve_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    assert uri == (tmp_path / "mlruns").as_uri()


def test_kto_on_unpaired_thumbs_publishes_an_adapter(tiny: Path, tmp_path: Path) -> None:
    thumbs = [
        {"prompt": f"ticket {i}", "completion": answer, "label": i % 2 == 0}
        for i, answer in enumerate(["Refunded.", "No idea.", "Shipped.", "Go away."])
    ]
    config = KTOJobConfig(
        base_model=tiny,
        output_dir=tmp_path / "job",
        max_steps=2,
        batch_size=4,
        learning_rate=1e-3,
        tracking_uri=(tmp_path / "mlruns").as_uri(),
        progress=False,
    )
    result = KTOJob(config).run(thumbs, lambda: False)
    assert result.status == "completed", result.error
    assert result.adapter_dir is not None and result.global_step == 2
