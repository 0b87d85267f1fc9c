"""When the bot hands a conversation to a human, and why.

Reasons (stored on the conversation, returned by the API):
  customer_request    the customer asks for a person ("talk to a human", "转人工")
  churn_threat        threats to leave or to complain elsewhere ("I'll report you", "再也不买了", "12315")
  negative_sentiment  one strongly negative turn (negative, confident, with strong words) or
                      two clearly negative turns in a row
  no_answer           the knowledge base had no answer twice in a row

The rules are patterns plus the sentiment model's output; they are measured on the
labelled set in scripts/data/escalation_cases.jsonl (scripts/eval_dialogue.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REASONS = ("customer_request", "churn_threat", "negative_sentiment", "no_answer")

_PERSON_EN = r"(human|person|people|agent|representative|rep|operator|manager|supervisor|someone|somebody|staff|employee|colleague)"
_REQUEST_EN = [
    rf"\b(talk|speak|chat|connect|transfer|put|get|want|need|give|let)\b[^.?!]{{0,40}}\b{_PERSON_EN}s?\b",
    rf"\b(real|live|actual|human)\s+{_PERSON_EN}\b",
    r"^\W*(human|agent|representative|operator)\W*(please|pls|now)?\W*$",
    r"\b(escalate|escalation)\b",
]
_NEGATED_EN = re.compile(
    r"\b(no need|don'?t need|do not need|not necessary|doesn'?t need|no thanks?|don'?t want|do not want|"
    r"without|instead of|rather than|not a|are you a|is this a|am i (talking|chatting|speaking) (to|with) a)\b[^.?!]{0,25}"
    rf"\b{_PERSON_EN}", re.I)
_REQUEST_ZH = [r"转.{0,3}人工", r"(让|叫|找|要).{0,4}(经理|主管|负责人)", r"(经理|主管|负责人)(呢|出来)",
               r"安排.{0,6}(工作人员|专人|人员|客服)", r"(转|找|要|接|换|联系|叫)\s*(个|一下|一个)?\s*人工", r"^\W*人工(客服|服务|坐席)?\W*$", r"(找|要|叫|换|让)\s*(个)?\s*(真人|人工|客服主管|经理|负责人|活人)",
               r"(真人|活人)(客服|回复|来)", r"跟?(真人|人)(说话|聊|对话)", r"客服(经理|主管)"]
_NEGATED_ZH = re.compile(r"(不用|不需要|不必|别|无需|没必要)\s*(转|找|要)?\s*(人工|真人)")

_CHURN_EN = [
    r"\bnever\b[^.?!]{0,15}\b(buy|order|shop|use|come back)\w*\s+(anything\s+)?(from|with|at|here|again)\b",
    r"\b(lost a customer|won'?t be (coming back|ordering|buying|shopping))\b",
    r"\bdisput\w*\b[^.?!]{0,20}\bcharge",
    r"\b(last time|never again)\b",
    r"\b(switch(ing)?|go(ing)?|mov(e|ing)) to (a |your )?(competitor|another (shop|store|company|seller)|amazon|someone else)",
    r"\btak(e|ing) my (business|money) elsewhere\b",
    r"\b(report|reporting)\b[^.?!]{0,30}\b(you|this|them|company)\b",
    r"\b(bbb|better business bureau|consumer (protection|agency|association|council|rights)|ftc|trading standards|ombudsman|regulator)\b",
    r"\b(lawyer|attorney|sue|suing|lawsuit|legal action|small claims|court)\b",
    r"\b(post|write|tell|share|put)\b[^.?!]{0,40}\b(twitter|facebook|instagram|tiktok|reddit|social media|everyone|online|public)\b",
    r"\bcancel\w*\b[^.?!]{0,20}\b(membership|subscription|lumo plus)\b[^.?!]{0,40}\b(because you|ridiculous|terrible|worst|fed up|sick of|joke|useless|right now)",
    r"\b(i'?m|i am) (done|leaving|out) (with|of) (you|this|lumo)",
    r"\bchargeback\b",
]
_CHURN_ZH = [r"投诉", r"消协|消费者协会|12315|工商局|市场监管", r"再也不.{0,6}(买|来|用|会)(?!错)", r"(以后|再)不(会)?再?(用|买|来)了",
             r"曝光", r"起诉|律师|法院|打官司", r"(发|上|去)(到)?(微博|朋友圈|小红书|抖音|网上|知乎|黑猫)",
             r"(微博|朋友圈|小红书|抖音|知乎|黑猫).{0,6}(发帖|曝光|投诉|说说)", r"让大家(都)?别", r"退(掉)?会员.{0,10}(太差|垃圾|失望|受够)", r"(换|去)别(家|的平台)", r"卸载"]
_NEGATED_CHURN_ZH = re.compile(r"(不是|没有|不)(要|想)?投诉|投诉(电话|渠道|方式|入口)|如何投诉|怎么投诉")

_STRONG_EN = re.compile(
    r"\b(worst|disgust\w*|ridiculous|unacceptable|furious|useless|scam\w*|fraud\w*|idiot\w*|pathetic|terrible|"
    r"horrible|outrag\w*|fed up|sick of|hate|awful|incompetent|rip-?off|liars?|stupid|damn|wtf|garbage|rubbish|"
    r"livid|absurd|shame\w*|insult\w*|disaster|joke of a)\b", re.I)
# Insults count as strongly negative whatever the sentiment model says.
_INSULT = re.compile(r"脑子(有问题|进水)|什么破|垃圾(平台|公司|客服|东西)|骗子|滚|\b(idiots?|morons?|scam(mers)?|clowns)\b", re.I)
_STRONG_ZH = re.compile(r"垃圾|太差|差劲|气死|恶心|骗子|无语|坑人|离谱|最差|忍无可忍|受够|什么破|破(网站|平台|店)|滚|混蛋|欺骗|太过分|愤怒|火大|烂")


@dataclass
class TurnSignals:
    text: str
    language: str
    sentiment_label: str | None
    sentiment_score: float | None


@dataclass
class EscalationPolicy:
    strong_negative_score: float = 0.8  # a single turn: negative this confident, with strong words
    negative_score: float = 0.6  # two turns in a row, each negative at least this confident
    no_answer_turns: int = 2  # hand over after this many turns in a row without an answer

    def asks_for_person(self, text: str) -> bool:
        if any(re.search(p, text) for p in _REQUEST_ZH) and not _NEGATED_ZH.search(text):
            return True
        lowered = text.lower()
        if _NEGATED_EN.search(lowered):
            return False
        return any(re.search(p, lowered) for p in _REQUEST_EN)

    def threatens_to_leave(self, text: str) -> bool:
        if any(re.search(p, text) for p in _CHURN_ZH) and not _NEGATED_CHURN_ZH.search(text):
            return True
        lowered = text.lower()
        return any(re.search(p, lowered) for p in _CHURN_EN)

    def _negative(self, turn: TurnSignals, threshold: float) -> bool:
        return turn.sentiment_label == "negative" and (turn.sentiment_score or 0.0) >= threshold

    def decide(self, turns: list[TurnSignals], *, no_answer_streak: int = 0) -> str | None:
        """The reason to hand over after the last of the customer's `turns`, or None.

        `no_answer_streak`: how many turns in a row (including this one) the knowledge
        base had no answer for; pass 0 before retrieval has run."""
        if not turns:
            return None
        last = turns[-1]
        if self.asks_for_person(last.text):
            return "customer_request"
        if self.threatens_to_leave(last.text):
            return "churn_threat"
        strong = _STRONG_ZH.search(last.text) or _STRONG_EN.search(last.text)
        if (self._negative(last, self.strong_negative_score) and strong) or _INSULT.search(last.text):
            return "negative_sentiment"
        if len(turns) >= 2 and self._negative(last, self.negative_score) and self._negative(turns[-2], self.negative_score):
            return "negative_sentiment"
        if no_answer_streak >= self.no_answer_turns:
            return "no_answer"
        return None
