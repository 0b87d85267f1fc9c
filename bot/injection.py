"""Prompt injection: instructions hidden in a customer's message or in a knowledge-base
article must not make the bot reveal its instructions, other customers' data or keys.

Three layers, each cheap:

- **context isolation** (bot.dialogue): the model sees only this conversation's turns
  and the retrieved article, inside marked blocks that the system prompt calls data; no
  key and no other conversation is ever in its context, so none can be echoed.
- **input screening** (`suspicious`): a turn or an article that reads like a known
  injection ("ignore previous instructions…", "你现在是开发者模式…", asks for the system
  prompt, keys or other customers' data) is answered without the model, from retrieval.
- **output guard** (`guard`): the model's reply is streamed through a filter that stops
  it as soon as it repeats a stretch of the instructions (`WINDOW` characters, compared
  case- and punctuation-blind) or writes something shaped like an API key; what was held
  back is never sent, and the dialogue answers from the article instead. The filter holds
  back only a tail that could still grow into such a stretch, so ordinary replies stream
  as before.

The persona sentence ("You are the customer service assistant of Lumo Shop…") is not
treated as secret: the bot may say who it is.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Iterator

from bot.generation import GenerationError

WINDOW = 32  # characters of the instructions that may not appear in a reply (normalised)

# An API key (storage.repositories.api_keys: "sb_" + 43 url-safe characters), or any long
# bearer-token-like string after "sk-"/"sb_" (remote backends' keys).
_KEY = re.compile(r"\b(?:sb_|sk-)[A-Za-z0-9_\-]{16,}")
_KEY_TAIL = re.compile(r"(?:\bs(?:[bk](?:[_\-][A-Za-z0-9_\-]*)?)?)$")  # could become a key: hold back

_PATTERNS = [
    # English
    r"\b(ignore|disregard|forget|override|bypass)\b.{0,20}\b(previous|prior|above|earlier|all|any|your|these|those|"
    r"system|original)\b.{0,20}\b(instructions?|prompts?|rules|guidelines|directives)\b",
    r"\b(ignore|disregard)\s+(all\s+|everything\s+)?(the\s+)?above\b",
    r"\b(system|initial|hidden|original|developer|secret)\s+(prompt|instructions?)\b",
    r"\b(reveal|print|show|repeat|output|display|leak|dump|tell me)\b.{0,40}\b(your|the)\s+(instructions|prompt)\b",
    r"\b(what|which) (are|were|is) your (instructions|prompt|rules|guidelines|configuration)\b",
    r"\b(developer|debug|god|admin|jailbreak|dan)\s+mode\b", r"\bjailbreak",
    r"\byou are now (an? |in )?(dan|developer|unrestricted|unfiltered|jailbroken|evil|admin|root)\b",
    r"\bpretend (that )?you are\b", r"<\s*/?\s*(system|article|instructions?)\b",
    r"\b(api|secret|admin|bearer)[\s_-]*(key|token)s?\b", r"\bpasswords? (of|for) (other|another|all)\b",
    r"\b(other|another|previous|all|every)\s+(customers?|users?|clients?|people)('s|s'|’s)?\s+"
    r"(data|orders?|messages?|conversations?|chats?|details|emails?|addresses|information|info|history)\b",
    # Chinese
    r"(忽略|无视|忘记|忘掉|不要理会|跳过).{0,12}(指令|指示|规则|提示|设定|要求)",
    r"(系统|初始|隐藏|原始)(提示词|指令|设定)", r"提示词", r"开发者模式|调试模式|管理员模式|越狱模式",
    r"(输出|显示|打印|告诉我|重复|泄露|说出).{0,6}(你的|您的)(系统)?(指令|规则|设定|提示|配置)",
    r"你现在是(一个|一名|开发者|管理员|没有限制|不受限制|DAN)|从现在开始你是|假装你是",
    r"(其他|别的|其它|上一个|上一位|之前的)(客户|用户|顾客)的?(数据|订单|消息|对话|信息|资料|邮箱|地址|聊天)",
    r"(API|api)\s*(密钥|秘钥|key|令牌)|(你的|系统的?|管理员的?|其他人的|别人的)(密钥|秘钥|令牌)",
]
_INJECTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.I | re.S)


def suspicious(text: str | None) -> bool:
    """Whether `text` reads like a known prompt-injection attempt."""
    return bool(text) and _INJECTION.search(text) is not None


class PromptLeak(GenerationError):
    """The model started to reveal its instructions or a key; the dialogue falls back to
    the retrieval answer (a GenerationError, so every caller already handles it)."""


def _norm(text: str) -> str:
    """Lower case, every non-alphanumeric character a space: one character per character,
    so a position in the normalised text is the same position in the original."""
    return "".join((c.lower() if len(c.lower()) == 1 else c) if c.isalnum() else " " for c in text)


@lru_cache(maxsize=8)
def _secret_index(secrets: tuple[str, ...]) -> tuple[frozenset, str]:
    normed = [_norm(s) for s in secrets]
    grams = frozenset(n[i:i + WINDOW] for n in normed for i in range(max(0, len(n) - WINDOW + 1)))
    return grams, "\n".join(normed)


def default_secrets() -> tuple[str, ...]:
    from bot import prompting

    persona_end = prompting.SYSTEM_PROMPT.find(". ") + 2  # the persona sentence is public
    return (prompting.SYSTEM_PROMPT[persona_end:], prompting._RULES, prompting.UPSET_TONE)


# A support reply never asks a customer for secrets: card security codes, PINs,
# passwords, one-time codes or the whole card number (a "corrected reply" that did was
# the probe's way into the training data).
_CREDENTIALS = re.compile(
    r"\b(send|give|tell|share|provide|type|enter|reply with|write|post|confirm)\b[^.!?\n]{0,60}"
    r"\b(cvv2?|cvc2?|cv2|security code|pin( code| number)?|passwords?|one[- ]time (code|password)|otp|"
    r"verification code|full card number|(credit |debit )?card numbers?|card details)\b"
    r"|(发|告诉|提供|输入|回复|发送|填写)[^。！？\n]{0,20}(CVV|cvv|安全码|验证码|密码|卡号|银行卡号|支付密码)",
    re.I)


def asks_for_credentials(text: str) -> bool:
    """Whether a reply asks the customer for a card number, CVV, PIN, password or code."""
    return _CREDENTIALS.search(text) is not None


def leak_reason(text: str, secrets: tuple[str, ...] | None = None) -> str | None:
    """Why `text` may not be sent (or trained on as a reply): 'instructions', 'key' or
    'credentials', or None."""
    grams, _ = _secret_index(secrets or default_secrets())
    n = _norm(text)
    if any(n[i:i + WINDOW] in grams for i in range(max(0, len(n) - WINDOW + 1))):
        return "instructions"
    if _KEY.search(text):
        return "key"
    if asks_for_credentials(text):
        return "credentials"
    return None


_STARTED_KEY = re.compile(r"\b(?:sb_|sk-)[A-Za-z0-9_\-]*$")


def guard(pieces: Iterable[str], secrets: tuple[str, ...] | None = None) -> Iterator[str]:
    """Pass the model's text pieces through, raising PromptLeak before any part of a
    leaking stretch is sent. If the model itself fails, what was held back (and is
    harmless) is sent first, then its error goes on."""
    secrets = secrets or default_secrets()
    grams, joined = _secret_index(secrets)
    full, sent = "", 0

    def rest() -> str:  # the held-back tail, less a key that was starting
        tail = full[sent:]
        started = _STARTED_KEY.search(tail)
        return tail[: started.start()] if started else tail

    upstream = iter(pieces)
    while True:
        try:
            piece = next(upstream)
        except StopIteration:
            break
        except Exception:
            if rest():
                yield rest()
            raise
        full += piece
        n = _norm(full)
        start = max(0, sent - WINDOW)  # windows ending in the new text (and the held-back tail)
        for i in range(start, max(start, len(n) - WINDOW + 1)):
            if n[i:i + WINDOW] in grams:
                raise PromptLeak("the reply repeated the bot's instructions; answering from the article")
        if _KEY.search(full, max(0, sent - 64)):
            raise PromptLeak("the reply held something shaped like an API key; answering from the article")
        if asks_for_credentials(full[max(0, sent - 120):]):
            raise PromptLeak("the reply asked the customer for a card number, code or password; answering from "
                             "the article")
        hold = 0
        for k in range(min(WINDOW - 1, len(n) - sent), 0, -1):  # the longest tail that is part of a secret
            if n[-k:] in joined:
                hold = k
                break
        tail = _KEY_TAIL.search(full)
        if tail:
            hold = max(hold, len(full) - tail.start())
        end = len(full) - hold
        if end > sent:
            yield full[sent:end]
            sent = end
    if rest():
        yield rest()
