"""All of supportbot's settings, in one place.

Values come from (highest first): CLI flags (passed as overrides), `SUPPORTBOT_*`
environment variables, a `.env` file in the working directory, then the defaults below.
Nothing else in the code base reads `os.environ` for configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.pii import parse_pii_kinds


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SUPPORTBOT_", env_file=".env", extra="ignore", validate_default=True
    )

    environment: Literal["development", "production", "test"] = "development"
    home: Path = Field(Path("var"), description="data directory: SQLite file, model cache, logs")
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file under home"
    )
    sqlite_busy_timeout_ms: int = Field(5000, ge=0)

    # Model references: a packaged short name (see core.model_refs), a local directory or
    # a Hugging Face hub id.
    sentiment_model: str = "sentiment-en"
    sentiment_model_zh: str | None = Field(
        # me5-small LoRA: ChnSentiCorp test 93.0 vs 91.1 for sentiment-zh (Gemma), several times faster
        "sentiment-zh-me5", description="model for Chinese texts; empty: use sentiment_model for all"
    )
    chat_model: str = "chat-bitext"
    embedding_model: str = Field("minilm-l6", description="retrieval encoder (English with the default)")
    embedding_model_multilingual: str | None = Field(
        "me5-small", description="retrieval encoder for the languages embedding_model does not read (Chinese...); "
        "'none': those rank by words alone")
    intent_model: str | None = Field("intent-bitext", description="intent of each customer turn; 'none': off")
    intent_model_zh: str | None = Field(
        "intent-me5", description="intent of Chinese turns (me5-small, Bitext's 27 intents); 'none': off")

    # Generation: the local chat model, or any OpenAI-compatible server (vLLM, TGI, ...).
    chat_backend: Literal["local", "remote"] = "local"
    chat_remote_url: str | None = Field(None, description="base URL of the server, e.g. http://gpu-box:8000/v1")
    chat_remote_key: str | None = None
    chat_remote_model: str | None = Field(None, description="model name on the remote server")
    chat_context_tokens: int = Field(2048, ge=256, description="prompt + reply token budget")
    chat_max_tokens: int = Field(160, ge=1, le=4096, description="default reply length limit")
    chat_timeout_s: float = Field(60.0, gt=0, description="time limit for one reply")
    # Local model: greedy replies written at the same time are decoded together
    # (bot.continuous_batching); each one reserves a context window of KV cache
    # (~46 KB per token for SmolLM2-135M: 8 x 2048 tokens = 0.75 GB).
    chat_batch_requests: int = Field(8, ge=1, le=64, description="replies decoded together; 1: one at a time")
    # The engine of the local chat model: llama.cpp (bot.llama_cpp_engine) for GGUF models,
    # a chat adapter on one merged into a GGUF copy once; PyTorch (transformers) for the rest.
    chat_engine: Literal["auto", "llama_cpp", "torch"] = Field(
        "auto", description="auto: llama_cpp when llama-cpp-python is installed and the chat model is GGUF-backed "
        "(the default is), else torch")
    chat_generate_languages: str = Field(
        "none", description="languages the chat model writes (comma list, e.g. en); 'none' (default): every reply "
        "is the selected sentences of the knowledge base's articles (README 'The dialogue: measured')")
    # The chat model by its name on /v1/chat/completions: a plain completion without the
    # pipeline's grounding and guards (how one supportbot serves another's generation).
    plain_model_endpoint: Literal["admin", "off"] = Field("admin", description="admin: admin keys only; off: not served")
    answer_threshold: float = Field(0.35, ge=0, le=1, description="retrieval score needed to answer")
    demo_kb: bool = Field(True, description="import the demo knowledge base when the knowledge base is empty")

    # Privacy: PII is redacted before anything is stored or exported (bot.redaction).
    pii_redact: str = Field("all", description="kinds to redact: all, none, or a comma list of "
                            "email,phone,card,cn_id,iban,address")
    pii_keep_original: bool = Field(False, description="also store the text before redaction (opt-in), "
                                    "encrypted with pii_original_key")
    pii_original_key: SecretStr | None = Field(None, description="Fernet key that seals kept originals at rest")

    # The periodic job (`supportbot retrain`): per task, the original training data the new
    # data is mixed with (FILE or FILE@WEIGHT, comma list) and the fixed benchmark sets.
    retrain_dir: Path | None = Field(None, description="exports and candidates; default: <home>/retrain")
    retrain_min_new: int = Field(20, ge=1, description="new rows a task needs before it is retrained")
    retrain_holdout_fraction: float = Field(0.3, gt=0, lt=1, description="share of new rows kept to judge")
    retrain_tolerance: float = Field(0.5, ge=0, description="benchmark points a candidate may lose")
    retrain_confirmed_min_score: float | None = Field(
        None, gt=0, le=1, description="also export confident predictions a 👍 confirmed (sentiment)")
    retrain_sentiment_data: str | None = None
    retrain_sentiment_benchmark: str | None = None
    retrain_sentiment_zh_data: str | None = None
    retrain_sentiment_zh_benchmark: str | None = None
    retrain_intent_data: str | None = None
    retrain_intent_benchmark: str | None = None
    retrain_chat_data: str | None = None
    retrain_chat_benchmark: str | None = None
    # The chat gate: answer quality (fact recall, invented values; finetune/answer_quality.py) on
    # this grounded evaluation file (scripts/prepare_grounded_eval.py); without it a chat
    # candidate is not trained (perplexity cannot say whether replies carry the facts).
    retrain_chat_eval: Path | None = Field(None, description="grounded evaluation JSONL that gates chat")
    retrain_max_steps: int = Field(0, ge=0, description="cap on fine-tune steps per run; 0: one epoch")
    retrain_epochs: float = Field(1.0, gt=0)
    retrain_learning_rate: float | None = Field(None, gt=0, description="default: the recipe's")
    # Every confirmed correction so far is trained on again (it keeps counting until the
    # model gets it right); false: only the rows new since the last finished run.
    retrain_accumulate: bool = True
    # Candidates tried: alpha * retrained + (1 - alpha) * active weights (finetune/interpolation.py);
    # the gate keeps the one best on the held-out feedback slice among those it passes.
    retrain_interpolation: str = Field("1,0.5", pattern=r"^\s*(0(\.\d+)?|1(\.0+)?)(\s*,\s*(0(\.\d+)?|1(\.0+)?))*\s*$",
                                       description="alphas in [0, 1], comma-separated")
    model_versions_poll_s: float = Field(2.0, gt=0, description="how often a server checks for a new active version")

    model_cache: Path | None = Field(None, description="converted packaged models; default: <home>/models")
    # Model versions (fine-tunes, retrain candidates) are stored relative to this directory,
    # so every host that mounts it (at its own path) resolves them; rows stored as absolute
    # paths before keep working.
    models_dir: Path | None = Field(None, description="root of model version directories; default: home")
    api_keys_file: Path | None = None
    # Per caller (API key, or client address while no keys exist): a token bucket that
    # refills at this rate and holds `rate_limit_burst` requests; 0 turns limiting off.
    rate_limit_per_minute: float = Field(600.0, ge=0, description="/v1 requests per minute per key or client")
    rate_limit_burst: int = Field(100, ge=1, description="requests a caller may send at once")

    max_request_bytes: int = Field(8_000_000, ge=1024, description="largest request body (413 beyond)")
    max_texts_per_request: int = Field(256, ge=1)
    max_text_chars: int = Field(5000, ge=1)
    inference_batch_size: int = Field(32, ge=1)
    # Serving speed (measured by scripts/bench_sentiment.py): concurrent sentiment calls are
    # classified together, up to sentiment_batch_max_texts texts per model call; under
    # concurrent load a batch waits up to sentiment_batch_wait_ms for more callers, a lone
    # call never waits (bot/batching.py). int8: bot/quantization.py (off: it costs accuracy).
    sentiment_micro_batching: bool = True
    sentiment_batch_wait_ms: float = Field(2.0, ge=0, le=1000, description="longest wait for other callers' texts")
    sentiment_batch_max_texts: int = Field(64, ge=1)
    sentiment_quantize: Literal["none", "int8"] = Field("none", description="none: fp32; int8: dynamic int8 linear layers")
    # Classifiers (sentiment, intent) and retrieval encoders: auto computes in bf16 where the
    # CPU has AMX bf16 tiles (core.hardware), fp32 elsewhere; int8 (above) keeps fp32.
    inference_dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 with AMX, else fp32; fp32; bf16")
    threads: int | None = Field(None, ge=1, description="torch threads; default: all cores")
    ui: bool = True
    # UI logins (`supportbot users add NAME --role agent|admin`): once the file holds a user,
    # the staff UI at / asks for a login; the customer chat at /chat stays open (ui_open_chat).
    ui_users_file: Path | None = Field(None, description="UI users (name:role:salted hash); default: <home>/ui_users")
    ui_open_chat: bool = Field(True, description="serve the customer chat at /chat without a login")
    # The open /chat page, per client address: requests (send, hand off, rate, open) and new
    # conversations; a person types a few messages a minute.
    ui_chat_per_minute: float = Field(30.0, gt=0, description="/chat requests per minute per client address")
    ui_chat_burst: int = Field(10, ge=1, description="/chat requests a client may send at once")
    ui_chat_conversations_per_hour: int = Field(20, ge=1, description="new /chat conversations per client an hour")
    # Operations (bot.logs): one readable line per record, or one JSON object per line
    # (time, level, logger, message, request_id) for a log pipeline.
    log_format: Literal["plain", "json"] = Field("plain", description="plain (default) or json log lines")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="least severe level logged")
    workers: int = Field(1, ge=1, le=64, description="serve: worker processes (app.server); >1 serves the API only")

    @field_validator("sentiment_model_zh", "intent_model", "intent_model_zh", "embedding_model_multilingual",
                     mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        return None if v in ("", "none", "None") else v

    @field_validator("pii_redact")
    @classmethod
    def _known_pii_kinds(cls, v):
        parse_pii_kinds(v)  # raises ValueError naming the valid kinds
        return v

    @model_validator(mode="after")
    def _remote_needs_url_and_model(self):
        if self.chat_backend == "remote" and not (self.chat_remote_url and self.chat_remote_model):
            raise ValueError("chat_backend=remote needs SUPPORTBOT_CHAT_REMOTE_URL and SUPPORTBOT_CHAT_REMOTE_MODEL")
        return self

    @model_validator(mode="after")
    def _originals_need_a_key(self):
        if self.pii_keep_original and not (self.pii_original_key and self.pii_original_key.get_secret_value()):
            raise ValueError("SUPPORTBOT_PII_KEEP_ORIGINAL=true needs SUPPORTBOT_PII_ORIGINAL_KEY (originals are "
                             "stored encrypted): make one with python -c \"from cryptography.fernet import Fernet; "
                             "print(Fernet.generate_key().decode())\"")
        return self

    @property
    def generate_languages(self) -> tuple[str, ...]:
        return tuple(x.strip() for x in self.chat_generate_languages.split(",") if x.strip() and x.strip() != "none")

    @property
    def retrain_path(self) -> Path:
        return self.retrain_dir or self.home / "retrain"

    @property
    def ui_users_path(self) -> Path:
        return self.ui_users_file or self.home / "ui_users"

    @property
    def models_path(self) -> Path:
        return self.models_dir or self.home

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache or self.home / "models"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'supportbot.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_with(**overrides) -> Settings:
    """Settings from the environment with CLI flags on top (None means: not given)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)
