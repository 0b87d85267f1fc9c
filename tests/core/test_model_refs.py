from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import model_refs
from core.errors import ModelNotFoundError
from core.model_refs import PACKAGED, SHIPPED, is_adapter_dir, resolve


def test_packaged_minilm_resolves_to_a_local_model_dir(tmp_path):
    r = resolve("minilm-l6", tmp_path / "cache")
    assert r.ref == "minilm-l6"
    assert r.local is True and r.adapter is False
    assert (Path(r.path) / "config.json").is_file()
    assert not (tmp_path / "cache").exists()  # a ready directory needs no conversion


def test_reference_is_stripped(tmp_path):
    assert resolve("  minilm-l6 \n", tmp_path).ref == "minilm-l6"


def test_local_transformers_dir_resolves_to_absolute_path(tmp_path, monkeypatch):
    model = tmp_path / "models" / "clf"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    r = resolve("models/clf", tmp_path / "cache")
    assert r.ref == "models/clf"
    assert r.path == str(model.resolve())
    assert r.local is True and r.adapter is False


def test_adapter_dir_is_detected(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert not is_adapter_dir(adapter)
    (adapter / "supportbot.json").write_text(json.dumps({"base": "minilm-l6", "labels": ["a", "b"], "task": "intent"}))
    assert is_adapter_dir(adapter)
    r = resolve(str(adapter), tmp_path / "cache")
    assert r.adapter is True and r.local is True
    assert r.path == str(adapter.resolve())


def test_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert resolve("~/m", tmp_path / "cache").path == str((tmp_path / "m").resolve())


@pytest.mark.parametrize("ref", ["org/name", "sentence-transformers/paraphrase-MiniLM-L3-v2", "Qwen/Qwen2.5-0.5B-Instruct"])
def test_hub_id_passes_through(tmp_path, ref):
    r = resolve(ref, tmp_path / "cache")
    assert (r.ref, r.path, r.local, r.adapter) == (ref, ref, False, False)


def test_existing_local_dir_wins_over_hub_id(tmp_path, monkeypatch):
    (tmp_path / "org" / "name").mkdir(parents=True)
    (tmp_path / "org" / "name" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    r = resolve("org/name", tmp_path / "cache")
    assert r.local is True and r.path == str((tmp_path / "org" / "name").resolve())


def _error(ref: str, cache: Path) -> str:
    with pytest.raises(ModelNotFoundError) as info:
        resolve(ref, cache)
    message = str(info.value)
    assert "\n" not in message  # one line
    return message


def test_unknown_name_lists_the_known_ones(tmp_path):
    message = _error("no-such-model", tmp_path)
    assert "'no-such-model'" in message
    for name in [*PACKAGED, *SHIPPED]:
        assert name in message
    assert "org/name" in message  # says what a hub id looks like


@pytest.mark.parametrize("ref", ["", "   "])
def test_empty_reference(tmp_path, ref):
    assert "empty model reference" in _error(ref, tmp_path)


@pytest.mark.parametrize("ref", ["./missing/dir", "/nonexistent/model", "~/nonexistent-model-dir"])
def test_missing_paths_are_not_hub_ids(tmp_path, ref):
    assert "unknown model" in _error(ref, tmp_path)


def test_file_instead_of_directory(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    message = _error(str(f), tmp_path)
    assert "is a file" in message and "directory" in message


def test_directory_without_config_json(tmp_path):
    d = tmp_path / "empty-model"
    d.mkdir()
    message = _error(str(d), tmp_path)
    assert "no config.json" in message and str(d) in message


def test_shipped_adapter_missing_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(model_refs, "SHIPPED_DIR", tmp_path / "shipped")
    message = _error("sentiment-en", tmp_path)
    assert "make setup" in message


def test_shipped_adapter_resolves_to_its_directory(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    (shipped / "sentiment-en").mkdir(parents=True)
    (shipped / "sentiment-en" / "supportbot.json").write_text("{}")
    monkeypatch.setattr(model_refs, "SHIPPED_DIR", shipped)
    r = resolve("sentiment-en", tmp_path / "cache")
    assert (r.path, r.local, r.adapter) == (str(shipped / "sentiment-en"), True, True)


def test_unconverted_gguf_without_convert_is_an_error_not_a_conversion(tmp_path):
    # convert=False must never start the minute-long conversion
    with pytest.raises(ModelNotFoundError) as info:
        resolve("smollm2-135m", tmp_path / "cache", convert=False)
    assert "models prepare" in str(info.value) or "package" in str(info.value)
    assert not (tmp_path / "cache" / "smollm2-135m").exists()


def test_a_converted_copy_that_still_says_gguf_is_repaired(tmp_path):
    """Copies converted before the fix kept quantization_config {quant_method: gguf}, which
    made transformers refuse a BitsAndBytes config (QLoRA) on the de-quantized weights."""
    import json

    target = tmp_path / "cache" / "smollm2-135m"
    target.mkdir(parents=True)
    (target / ".complete").write_text("converted\n")
    config = {"model_type": "llama", "hidden_size": 8,
              "quantization_config": {"quant_method": "gguf", "gguf_file": "x.gguf", "dequantize": False}}
    (target / "config.json").write_text(json.dumps(config))
    r = resolve("smollm2-135m", tmp_path / "cache", convert=False)
    repaired = json.loads((target / "config.json").read_text())
    assert r.path == str(target)
    assert "quantization_config" not in repaired and repaired["hidden_size"] == 8
