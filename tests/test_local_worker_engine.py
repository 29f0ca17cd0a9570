"""The dynamic batcher on a tiny model: batching changes nothing a request sees."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from local_worker.adapter_paths import AdapterRoots  # noqa: E402
from local_worker.adapters import AdapterError, Adapters  # noqa: E402
from local_worker.engine import Engine, Job, Step  # noqa: E402
from local_worker.sampling import Release, Sampling  # noqa: E402
from tests.support.tiny_model import build_adapter, build_tiny_model  # noqa: E402

PROMPTS = ["hello there", "a much longer prompt about the weather in Paris today", "x", "why?"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def engine(tiny: Path) -> Iterator[Engine]:
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(str(tiny)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny))
    eng = Engine(model, tokenizer, max_model_len=256, max_batch=8, eos_ids=set())
    eng.start()
    yield eng
    eng.stop()


async def generate(
    engine: Engine, prompt: str, sampling: Sampling, adapter: str | None = None
) -> tuple[str, Step]:
    ids = engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    job = Job(list(ids), sampling, adapter, asyncio.get_running_loop())
    engine.submit(job)
    text = ""
    while True:
        step = await job.queue.get()
        if isinstance(step, BaseException):
            raise step
        text += step.text
        if step.finish_reason:
            return text, step


GREEDY = Sampling(max_tokens=12, temperature=0)


async def test_batched_greedy_equals_alone(engine: Engine) -> None:
    alone = [await generate(engine, p, GREEDY) for p in PROMPTS]
    together = await asyncio.gather(*(generate(engine, p, GREEDY) for p in PROMPTS))
    assert [t for t, _ in together] == [t for t, _ in alone]
    assert all(s.completion_tokens == 12 and s.finish_reason == "length" for _, s in together)


async def test_late_arrivals_join_a_running_batch(engine: Engine) -> None:
    long = Sampling(max_tokens=40, temperature=0)
    alone = [await generate(engine, p, long) for p in PROMPTS]

    async def later(i: int, prompt: str) -> tuple[str, Step]:
        await asyncio.sleep(0.02 * i)
        return await generate(engine, prompt, long)

    steps_before = engine.steps
    together = await asyncio.gather(*(later(i, p) for i, p in enumerate(PROMPTS)))
    assert [t for t, _ in together] == [t for t, _ in alone]
    assert engine.steps - steps_before < 4 * 40  # they shared forward passes


async def test_seeded_sampling_is_reproducible_in_any_batch(engine: Engine) -> None:
    seeded = Sampling(max_tokens=16, temperature=0.9, top_p=0.9, seed=42)
    first, _ = await generate(engine, "tell me", seeded)
    crowd = await asyncio.gather(
        generate(engine, "tell me", seeded), *(generate(engine, p, GREEDY) for p in PROMPTS)
    )
    assert crowd[0][0] == first
    other, _ = await generate(engine, "tell me", Sampling(16, 0.9, 0.9, seed=43))
    assert other != first


async def test_stop_string_ends_the_text_before_it(engine: Engine) -> None:
    text, _ = await generate(engine, PROMPTS[1], Sampling(max_tokens=30, temperature=0))
    stop = text[5:8]
    cut, step = await generate(engine, PROMPTS[1], Sampling(30, 0, stop=(stop,)))
    assert step.finish_reason == "stop" and cut == text[: text.index(stop)]


async def test_cancelled_job_leaves_the_batch(engine: Engine) -> None:
    ids = engine.tokenizer("go on", add_special_tokens=False)["input_ids"]
    job = Job(list(ids), Sampling(max_tokens=200, temperature=0), None, asyncio.get_running_loop())
    engine.submit(job)
    await job.queue.get()
    job.cancelled = True
    for _ in range(100):
        if engine.running == 0:
            break
        await asyncio.sleep(0.01)
    assert engine.running == 0


def test_release_holds_back_a_possible_stop_prefix() -> None:
    release = Release(stop=("END",))
    assert release.next("hello E", final=False) == "hello "
    assert release.next("hello EN", final=False) == ""
    assert release.find_stop("hello END") == 6
    assert release.next("hello ", final=True) == ""
    assert Release(stop=()).next("caf\ufffd", final=False) == "caf"


async def test_adapters_in_one_batch_each_answer_with_their_own(
    engine: Engine, tiny: Path, tmp_path: Path
) -> None:
    adapters = Adapters(engine, AdapterRoots([tmp_path]), max_loras=2)
    await adapters.load("a", str(build_adapter(tiny, tmp_path / "a", seed=1)))
    await adapters.load("b", str(build_adapter(tiny, tmp_path / "b", seed=2)))
    names = [None, "a", "b"]
    alone = [await generate(engine, PROMPTS[1], GREEDY, n) for n in names]
    assert len({t for t, _ in alone}) == 3  # the adapters really change the output
    mixed = await asyncio.gather(*(generate(engine, PROMPTS[1], GREEDY, n) for n in names * 2))
    assert [t for t, _ in mixed] == [t for t, _ in alone] * 2


async def test_lru_bound_and_corrupt_adapter(engine: Engine, tiny: Path, tmp_path: Path) -> None:
    adapters = Adapters(engine, AdapterRoots([tmp_path]), max_loras=1)
    await adapters.load("a", str(build_adapter(tiny, tmp_path / "a", seed=1)))
    adapters.paths["b"] = str(build_adapter(tiny, tmp_path / "b", seed=2))
    await generate(engine, "hi", GREEDY, "b")  # loaded lazily, evicting "a"
    assert list(adapters.loaded) == ["b"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterError, match="not valid JSON"):
        await adapters.load("broken", str(broken))
    wrong = build_adapter(tiny, tmp_path / "wrong", seed=3)
    (wrong / "adapter_config.json").write_text('{"peft_type": "PREFIX_TUNING"}')
    with pytest.raises(AdapterError, match="not a LoRA adapter"):
        await adapters.load("wrong", str(wrong))
    text, _ = await generate(engine, "hi", GREEDY, "b")  # still serving
    assert text


async def test_prefix_cache_reuses_a_shared_head_without_changing_the_output(
    engine: Engine,
) -> None:
    head = "You are a careful assistant for the billing team of a large shop. " * 2
    prompts = [head + tail for tail in ("alpha?", "beta and gamma?", "delta")]
    prompts.append(prompts[1] + " And then the second turn of the same chat goes on.")
    engine.prefixes.max_tokens = 0  # off: the reference outputs
    cold = [await generate(engine, p, GREEDY) for p in prompts]
    engine.prefixes.max_tokens = 8192
    await generate(engine, prompts[0], GREEDY)  # computes and keeps the head
    warm = await asyncio.gather(*(generate(engine, p, GREEDY) for p in prompts[1:3]))
    saved = engine.prefixes.saved_tokens
    later = await generate(engine, prompts[3], GREEDY)  # extends a prompt that itself hit
    assert [t for t, _ in warm] + [later[0]] == [t for t, _ in cold[1:]]
    assert engine.prefixes.hits >= 3 and saved >= 2 * 20
    assert engine.prefixes.saved_tokens - saved > saved / 2  # the longer head was reused
