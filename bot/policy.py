"""The content policy: which customer requests the bot refuses outright, before retrieval
and without asking the model.

A request is refused when it asks for harmful content: making weapons, explosives or
poisons, synthesising drugs, breaking into someone else's account or writing malware,
fraud (stolen cards, phishing, counterfeits), violence against people, self-harm
methods, and sexual content involving minors. `refusal(text)` names the category, or
returns None for everything else.

Precision comes first: a shop hears "the bomb", "killer deal", "kill my subscription",
"my account was hacked", "刀具套装少了一把刀", "秒杀", "杀毒软件", "空气炸锅" and "跳楼价"
every day. So a word alone never refuses a turn; a request does: an action aimed at a
harmful object ("make … a pipe bomb", "hack into someone's account", "制作炸药",
"黑进别人的账号"), or a phrase that is harmful on its own ("phishing email" written on
request, "kill myself", "儿童色情"). Shop compounds that contain a risky word (bath bomb,
glue gun, food poisoning, 水枪, 杀毒, 被盗) are blanked out first. A victim's report
("someone hacked into my account", "我被盗号了") is never a request.

Both languages are checked on every turn whatever its detected language, since mixed
turns are common. Matching stays inside one sentence. Not covered: spellings meant to
dodge a filter ("b0mb"), and requests spread over several turns.
"""

from __future__ import annotations

import re
import unicodedata

from bot.guard import normalise_text

CATEGORIES = ("weapons", "drugs", "fraud", "hacking", "violence", "self_harm", "sexual_minors")

# -- shop words and defensive questions that contain a risky word: blanked before matching ----
_PERSONS_EN = (r"(?:ex|ex-\w+|wife|husband|girlfriend|boyfriend|partner|friend|neighbou?r|boss|coworker|co-worker|"
               r"colleague|teacher|mother|father|mom|mum|dad|brother|sister|son|daughter|roommate|landlord|classmate)")
_BENIGN = re.compile("|".join([
    r"\b(?:bath|photo|seed|glitter|flavou?r|calorie|cherry|colou?r|sugar|fizz|shower)[\s-]?bombs?\b",
    r"\bbomber jackets?\b", r"\b(?:is|was|are|were|'s|'re|be|been) (?:a |the |da )?(?:total |real |absolute )?bomb\b",
    r"\bda bomb\b",
    r"\b(?:glue|nail|heat|massage|water|toy|nerf|spray|staple|paint|caulk|caulking|grease|bubble|price|label|tape|"
    r"squirt|foam|soldering|tattoo|temperature|thermometer|hot[\s-]glue|air|airsoft|bb|dart|fascia|percussion|"
    r"steam|lint|sealant|silicone|blow|pellet|cap|confetti|laser|radar|glitter|frosting|icing)[\s-]?guns?\b",
    r"\bgun[\s-]?metal\b", r"\bguns? (?:safes?|cabinets?|cases?|cleaning|racks?|locks?|shy)\b",
    r"\b(?:food|lead|alcohol|carbon monoxide)[\s-]poisoning\b", r"\brat poison\b", r"\bpoison (?:ivy|oak)\b",
    r"\blife[\s-]?hacks?\b", r"\bkiller (?:deal|price|sale|offer|discount|look|feature|app|song)s?\b",
    r"\banti[\s-]?(?:virus|malware|spyware)\b",
    r"\b(?:prevent|avoid|protect (?:\w+ )?(?:from|against)|report(?:ing)?|recogni[sz]e|spot|detect|stop (?:someone|"
    r"somebody|people|them|him|her|hackers|scammers|thieves|fraudsters))\b[^.!?\n]{0,30}",
    # Chinese
    r"秒杀|杀毒|杀虫|杀菌|除菌|消毒|空气炸锅|炸锅|炸鸡|跳楼价|跳楼(?:大)?甩卖|想死你|笑死|"
    r"(?:水|玩具(?:手|步|水)?|胶|热熔胶|喷|按摩|筋膜|焊|钉|打钉|测温|电焊|喷漆|洗车|高压|喷水|泡泡|美缝|打胶|吹风|蒸汽|"
    r"水弹|软弹)枪|食物中毒|病毒性|防病毒|查病毒|中病毒|中了病毒|有病毒|毒品检测|毒品试纸|禁毒|"
    r"大麻(?:籽|纤维|布|绳|油|叶图案|花)|是(?:不是)?(?:诈骗|骗子|钓鱼)|"
    r"(?:防止|预防|避免|防范|识别|举报|报警|投诉|收到)\S{0,8}",
    # a victim's report: passive voice is never a request
    r"被(?:人)?(?:黑|盗|入侵|破解|攻击|诈骗|骗|盗刷|盗号|钓鱼)\S{0,2}",
]), re.I)

# -- English ------------------------------------------------------------------------------------------
_S = r"[^.!?。！？\n]"  # any character inside the same sentence
_NEAR = _S + r"{0,40}?"
_MAKE = (r"(?:make|making|build|building|construct|constructing|assemble|assembling|create|creating|manufacture|"
         r"manufacturing|craft|crafting|produce|producing|cook|cooking|brew|brewing|synthesi[sz]e|synthesi[sz]ing|"
         r"3d[\s-]?print|3d[\s-]?printing|print|home[\s-]?make|put together|rig|detonate|set off|plant)")
_GET = r"(?:buy|buying|get|getting|obtain|obtaining|acquire|acquiring|order|purchase|find|smuggle|sell|selling)"
# what a request for instructions sounds like (not "how could you …", which is how complaints start)
_HOW = (r"(?:how (?:do|can|could|would|should|might|does) (?:i|we|one)|how do you|how to|how'?d i|ways? to|"
        r"teach me|show me|tell me how|help me|best way|easiest way|quickest way|cheapest way|step[\s-]by[\s-]step|"
        r"instructions|tutorial|guide|recipe|formula|blueprints?|schematics?|walk me through|where (?:can|do|could) i|"
        r"is it possible to|tips (?:for|on|to)|what (?:do i need|does it take|ingredients|chemicals|materials))")
_EXPLOSIVE = (r"(?:(?:pipe|nail|car|dirty|letter|fertili[sz]er|homemade|home[\s-]made|nuclear|atomic|suicide|petrol|"
              r"gas)\s+bombs?|explosives|explosive devices?|an explosive|ieds?|grenades?|molotovs?(?: cocktails?)?|"
              r"napalm|thermite|detonators?|blasting caps?|tatp|hmtd|nitroglycerin|gunpowder|black powder|landmines?|"
              r"(?:chemical|biological|nuclear) weapons?|bioweapons?|nerve (?:agents?|gas)|sarin|ricin|anthrax)")
_BOMB = _EXPLOSIVE[:-1] + r"|bombs?|explosive|mustard gas|chlorine gas|toxic gas|poison(?:ous)? gas)"
_GUN = (r"(?:(?:ghost|untraceable|homemade|home[\s-]made|zip|3d[\s-]printed|unregistered|automatic)\s+)?"
        r"(?:guns?|firearms?|pistols?|handguns?|rifles?|shotguns?|ar[\s-]?15s?|ak[\s-]?47s?|glocks?|silencers?|"
        r"suppressors?|machine ?guns?|weapons?|ammunition)\b")
_DRUG = (r"(?:meth|methamphetamine|crystal meth|crack cocaine|cocaine|heroin|fentanyl|lsd|mdma|ecstasy|ghb|dmt|pcp|"
         r"ketamine|opium|amphetamines?|hard drugs|illegal drugs)\b")
_PERSON = (r"(?:someone|somebody|anyone|a person|people|a human|humans|him|her|them|a (?:man|woman|child|kid|baby|"
           rf"girl|boy|cop|police officer)|(?:my|his|her|their|the|our) (?:{_PERSONS_EN[3:-1]}|family|neighbou?rs|"
           r"delivery (?:guy|driver|man)|courier))\b")
_NOT_MINE = rf"(?!(?:my|our|me|your|you)\b(?!\s+{_PERSONS_EN}\b))"  # "my account" no, "my ex's account" yes
_OTHERS = (rf"(?:(?:someone|somebody)(?: else)?'?s|other people'?s|another (?:person|user|customer)'?s|people'?s|"
           rf"(?:my|his|her|their) {_PERSONS_EN}'?s|his|her|their|a|an|the|any)")
_ACCOUNT = (r"(?:accounts?|e-?mails?|inbox|phones?|iphones?|computers?|pcs?|laptops?|wi-?fi|network|routers?|servers?|"
            r"websites?|sites?|databases?|bank(?: accounts?)?|cameras?|webcams?|facebook|instagram|snapchat|whatsapp|"
            r"tiktok|twitter|gmail|icloud|systems?|passwords?|wechat|messages|texts)\b")
_MALWARE = (r"(?:malware|ransomware|keyloggers?|key loggers?|trojan (?:horse|virus|malware)|(?:computer )?virus(?:es)?|"
            r"computer worms?|spyware|rootkits?|botnets?|backdoors?|password stealers?|info ?stealers?|stealer "
            r"malware|remote access trojans?|exploits?|zero[\s-]days?)\b")
# "write me a convincing phishing email": the verb, then at most an article and two words
_WRITE = (r"(?:write|writing|create|creating|make|making|code|coding|build|building|develop|program|generate|craft|"
          r"draft|compose|design|set up|give me)\s+(?:me\s+|us\s+)?(?:(?:a|an|some|the|one|another|\d+)\s+)?"
          r"(?:[\w-]+\s+){0,2}?")

_EN = {
    "weapons": [
        rf"\b{_MAKE}\b{_NEAR}\b{_BOMB}",
        rf"\b{_GET}\b{_NEAR}\b(?:explosives|grenades?|detonators?|c-?4 explosive|tatp|ricin|sarin|nerve agents?|"
        rf"(?:ghost|untraceable|unregistered) guns?|(?:silencers?|suppressors?) for)",
        rf"\b{_HOW}\b{_NEAR}\b{_EXPLOSIVE}",
        rf"\b(?:{_EXPLOSIVE}|bombs?)\s+(?:recipe|instructions?|tutorial|guide|blueprints?|plans?|schematics?)\b",
        rf"\b{_MAKE}\b{_S}{{0,30}}?\b{_GUN}",
        rf"\bconvert{_NEAR}\b(?:to|into) (?:full[\s-]?auto|fully automatic)\b",
        rf"\b{_HOW}\b{_NEAR}\bshoot up\b",
    ],
    "drugs": [
        rf"\b{_MAKE}\b{_NEAR}\b{_DRUG}", rf"\b{_HOW}\b{_NEAR}\b(?:{_GET}|extract|grow)\b{_NEAR}\b{_DRUG}",
        rf"\b{_DRUG}\s+(?:recipe|lab|synthesis|instructions?|tutorial|guide)\b", rf"\b{_HOW}\b{_NEAR}\bsell drugs\b",
        rf"\bsmuggl(?:e|ing){_NEAR}\bdrugs\b",
    ],
    "hacking": [
        rf"\bhack(?:ing)?\s+(?:in ?to\s+)?{_NOT_MINE}(?:{_OTHERS}\s+)?(?:[\w'-]+\s+){{0,2}}?{_ACCOUNT}",
        rf"\b(?:break|breaking|get|getting|log|logging|sneak) in ?to\s+(?:(?:someone|somebody)(?: else)?'?s|"
        rf"another (?:person|user|customer)'?s|other people'?s|(?:my|his|her|their) {_PERSONS_EN}'?s)\s+"
        rf"(?:[\w'-]+\s+){{0,2}}?{_ACCOUNT}",
        rf"\b(?:steal|stealing|grab|grabbing|harvest|harvesting|phish|phishing for)\s+{_NOT_MINE}(?:{_OTHERS}\s+)?"
        rf"(?:[\w'-]+\s+){{0,2}}?(?:passwords?|credentials|logins?|cookies|session tokens?|2fa codes?|otp codes?|"
        rf"verification codes?)\b",
        rf"\b(?:crack|cracking)\s+{_NOT_MINE}(?:{_OTHERS}\s+)?(?:[\w'-]+\s+){{0,2}}?(?:passwords?|wi-?fi|accounts?)\b",
        rf"\b{_WRITE}{_MALWARE}",
        rf"\b(?:script|program|code|app|tool|extension|bot|malware)\s+(?:that|to|which)\s+(?:steals?|grabs?|logs?|"
        rf"records?|harvests?|captures?|dumps?|sends? me)\b{_NEAR}\b(?:passwords?|keystrokes|credentials|cookies|"
        rf"card (?:numbers|details)|logins?)\b",
        rf"\b{_HOW}\b{_NEAR}\b(?:ddos|dos attack|sql injection|inject sql)\b",
        rf"\bddos(?:ing)?\s+(?:a|an|the|someone|somebody|his|her|their|my (?:ex|boss|school))\b",
        rf"\b(?:spy on|track|read|access)\s+{_OTHERS}{_S}{{0,20}}?\b(?:messages|texts|e-?mails|whatsapp|phone)\b"
        rf"{_S}{{0,25}}?\bwithout (?:them|him|her|their) (?:knowing|knowledge|permission|consent)",
    ],
    "fraud": [
        rf"\b{_WRITE}phishing\b", rf"\bphishing (?:kit|page|site|template|campaign)s?\b{_S}{{0,20}}\b(?:for|to)\b",
        rf"\b{_WRITE}fake\s+(?:login|sign[\s-]?in|bank(?:ing)?|paypal|payment) (?:page|site|website|e-?mail|form)s?",
        rf"\b{_WRITE}(?:e-?mail|message|text|sms)\b{_NEAR}\b(?:pretending|posing|impersonating|claiming)\b{_NEAR}"
        rf"\b(?:bank|paypal|apple|microsoft|amazon|irs|police|support)\b",
        rf"\b(?:steal|stealing|skim|skimming|harvest|harvesting)\s+{_NOT_MINE}(?:{_OTHERS}\s+)?(?:[\w'-]+\s+){{0,2}}?"
        rf"(?:(?:credit |debit )?card (?:numbers?|details|data|info)|credit cards?|cvvs?|card numbers)\b",
        rf"\b(?:make|build|install|buy|use|set up|sell|put|attach)\b{_NEAR}\b(?:card |atm |credit card )?"
        rf"skimm(?:er|ers|ing devices?)\b", rf"\bcvv (?:dumps?|shops?)\b", rf"\bfullz\b",
        rf"\bclon(?:e|ing)\s+{_NOT_MINE}(?:{_OTHERS}\s+)?(?:[\w'-]+\s+){{0,2}}?(?:credit |debit |bank )?cards?\b",
        rf"\b(?:{_GET}|use|using)\s+(?:a |some )?(?:stolen|cloned|hacked) (?:credit |debit )?(?:cards?|card numbers)\b",
        rf"\b{_MAKE}\b{_NEAR}\b(?:counterfeit|fake) (?:money|bills|banknotes|notes|currency|cash|ids?|passports?|"
        rf"driver'?s licen[cs]es?|documents?)\b",
        rf"\b(?:make|buy|get|order)\b{_S}{{0,20}}?\bfake ids?\b",
        rf"\blaunder(?:ing)? (?:money|cash|funds)\b|\bmoney[\s-]launder",
        rf"\b{_HOW}\b{_NEAR}\b(?:commit|get away with){_S}{{0,20}}?\bfraud\b",
        rf"\b(?:steal|stealing)\s+{_NOT_MINE}(?:{_OTHERS}\s+)?(?:[\w'-]+\s+){{0,2}}?identit(?:y|ies)\b",
        rf"\b{_HOW}\b{_NEAR}\b(?:scam|defraud|con|swindle)\s+(?:people|someone|somebody|old people|the elderly|elderly "
        rf"people|grandmas?|grandparents|customers|victims|tourists)\b",
    ],
    "violence": [
        rf"\b{_HOW}\b{_NEAR}\b(?:kill|murder|stab|shoot|strangle|poison|hurt|injure|kidnap|abduct|torture|"
        rf"beat up|assault|rape|drown|suffocate|run over)\s+{_PERSON}",
        rf"\b(?:get away with|cover up (?:a|the)) murder\b",
        rf"\b(?:dispose of|get rid of|hide|dissolve) (?:a|the) (?:dead )?(?:body|bodies|corpse)\b",
        rf"\bmake (?:it|a death|his death|her death) look like an accident\b",
        rf"\b(?:school|mass) shooting\b{_S}{{0,30}}?\b(?:plan|how|carry out)\b|\b(?:plan|carry out)\b{_S}{{0,30}}?"
        rf"\b(?:school|mass) shooting\b",
        rf"\b(?:untraceable|undetectable|tasteless|odorless|odourless) poisons?\b",
        rf"\b(?:make|making|create|brew|cook|synthesi[sz]e|produce|extract)\b{_NEAR}\bpoisons?\b",
    ],
    "self_harm": [
        r"\b(?:kill|killing|hang|hanging|shoot|shooting)\s+myself\b",
        r"\b(?:want|wanna|going|how|ways?|plan(?:ning)?|thinking (?:about|of)|trying|best way|easiest way)\s+(?:to\s+)?"
        r"(?:cut|cutting|hurt|hurting|harm|harming|drown|drowning|starve|starving|poison|poisoning)\s+myself\b",
        r"\bend(?:ing)? (?:my (?:own )?life|it all)\b", r"\btake my (?:own )?life\b",
        r"\bcommit(?:ting)? suicide\b", r"\bsuicidal\b", r"\bsuicide (?:methods?|notes?|plans?)\b",
        r"\b(?:thinking|thought|thoughts) (?:about|of) suicide\b", r"\bself[\s-]?harm(?:ing)?\b",
        r"\bi (?:want|wanna|would like|'d like|am going|'m going|plan) to die\b",
        r"\b(?:don'?t|do not) want to (?:live|be alive)(?: anymore)?\b",
        r"\b(?:painless|quick|easy|quickest|easiest) (?:way|ways|method|methods) to die\b", r"\bways to die\b",
        r"\bhow (?:many|much)\b" + _NEAR + r"\b(?:to|would|will) (?:overdose|kill me|be lethal|be fatal)\b",
        r"\b(?:how|want) to overdose\b", r"\blethal dose\b", r"\bslit(?:ting)? my wrists?\b",
        r"\bjump(?:ing)? off (?:a|the) (?:bridge|building|roof)\b",
    ],
    "sexual_minors": [
        r"\b(?:child|kiddie|kiddy|underage|minor|teen|preteen) porn\w*", r"\bcsam\b", r"\bpedo(?:phile|philia)?\b",
        r"\bloli(?:con)?\b",
        rf"\b(?:sex with|sex (?:videos?|tapes?|pics?|photos?|chat|acts?)|sexual|sexually|porn\w*|nudes|nude (?:photos?|"
        rf"pics?|pictures?|images?|videos?)|naked (?:photos?|pics?|pictures?|images?|videos?)|erotic|lewd|nsfw|xxx)\b"
        rf"{_S}{{0,50}}?\b(?:child|children|kids?|minors?|underage|under-age|preteens?|pre-teens?|(?:[1-9]|1[0-7])[\s-]?"
        rf"(?:yo|y/o|years?[\s-]old)|schoolgirls?|schoolboys?|little (?:girls?|boys?))\b",
        rf"\b(?:child|children|kids?|minors?|underage|under-age|preteens?|pre-teens?|(?:[1-9]|1[0-7])[\s-]?"
        rf"(?:yo|y/o|years?[\s-]old)|schoolgirls?|schoolboys?|little (?:girls?|boys?))\b{_S}{{0,50}}?\b(?:sex with|"
        rf"sexual|sexually|porn\w*|nudes|nude (?:photos?|pics?|pictures?|images?|videos?)|naked (?:photos?|pics?|"
        rf"pictures?|images?|videos?)|erotic|lewd|nsfw|xxx)\b",
    ],
}

# -- Chinese ----------------------------------------------------------------------------------------------
_Z = r"[^。！？!?\n]"  # inside one sentence
_ZHOW = (r"(?:如何|怎么|怎样|怎麼|咋|教我|教教我|告诉我(?!们)|帮我|给我|求|方法|步骤|教程|配方|流程|攻略|办法|技巧|能不能|"
         r"可不可以|可以|想|要|哪里|哪儿)")
_ZHOWI = r"(?:如何|怎么|怎样|怎麼|咋|教我|教教我|告诉我(?!们)|方法|步骤|办法|有什么办法|帮我)"  # a request, not a wish or a worry
_ZMAKE = r"(?:制作|制造|自制|做|造|合成|配制|组装|改装|打印|提炼|提纯|生产|搞|弄)"
_ZBOOM = (r"(?:炸药|炸弹|爆炸物|爆炸装置|雷管|燃烧瓶|燃烧弹|土炸弹|手雷|TNT|tnt|硝化甘油|黑火药|化学武器|生化武器|毒气弹|"
          r"神经毒剂|沙林|蓖麻毒素|脏弹)")
_ZGUN = r"(?:枪支|手枪|步枪|猎枪|冲锋枪|仿真枪|气枪|枪|子弹|弹药|消音器|武器)"
_ZDRUG = r"(?:冰毒|海洛因|可卡因|摇头丸|芬太尼|K粉|k粉|氯胺酮|鸦片|吗啡|甲基苯丙胺|麻古|毒品|大麻|LSD|lsd)"
_ZPERSON = (r"(?:人|他|她|他们|她们|某人|别人|一个人|我(?:的)?(?:老婆|老公|老板|邻居|同事|前任|前男友|前女友|父母|爸|妈|"
            r"男朋友|女朋友|室友|同学)|孩子|小孩|快递员)")
_ZOTHERS = r"(?:别人|他人|其他人|某人|他|她|他们|前任|前男友|前女友|女朋友|男朋友|老婆|老公|同事|邻居|朋友|同学)"

_ZH = {
    "weapons": [
        rf"{_ZMAKE}{_Z}{{0,8}}?{_ZBOOM}", rf"{_ZHOW}{_Z}{{0,10}}?(?:买|购买|弄到|搞到|获得){_Z}{{0,6}}?{_ZBOOM}",
        rf"{_ZHOW}{_Z}{{0,10}}?{_ZMAKE}{_Z}{{0,6}}?{_ZGUN}", rf"{_ZBOOM}的?(?:配方|做法|制作方法|制作教程|教程)",
        rf"{_ZHOW}{_Z}{{0,10}}?(?:买|购买|弄到|搞到){_Z}{{0,4}}?(?:枪支|手枪|步枪|猎枪|冲锋枪|子弹|弹药|消音器)",
        rf"(?:制造|制作|自制|组装|改装|打印){_Z}{{0,4}}?(?:枪支|手枪|步枪|猎枪|冲锋枪|气枪|仿真枪|消音器)",
        rf"{_ZBOOM}{_Z}{{0,8}}?(?:怎么|如何|怎样)(?:做|制作|制造|合成|自制)",
    ],
    "drugs": [
        rf"{_ZMAKE}{_Z}{{0,6}}?{_ZDRUG}", rf"{_ZHOW}{_Z}{{0,10}}?(?:买|购买|弄到|搞到|种植?|贩卖|卖|走私){_Z}{{0,4}}?{_ZDRUG}",
        rf"{_ZDRUG}的?(?:配方|做法|制作方法|制作教程|合成方法|合成路线)", r"制毒|贩毒|运毒",
        rf"{_ZDRUG}{_Z}{{0,8}}?(?:怎么|如何|怎样)(?:做|制作|制造|合成|提炼|提纯)",
    ],
    "hacking": [
        rf"(?:黑进|黑入|黑掉|入侵|盗取|窃取|破解|盗){_ZOTHERS}",
        r"(?:黑进|黑入|黑掉|入侵|攻击)(?:网站|服务器|系统|数据库|银行|公司)", r"(?:破解|蹭)(?:邻居的|别人的)?(?:wifi|无线网)",
        rf"(?:盗取|窃取)(?:{_ZOTHERS}的?)?(?:账号|帐号|密码|信息|数据|资料)",
        rf"{_ZHOW}{_Z}{{0,10}}?(?:黑进|黑入|黑掉|入侵|盗号)(?!我的|我自己)",
        rf"(?:写|编写|做|制作|开发|生成|给我){_Z}{{0,8}}?(?:木马|病毒程序|电脑病毒|勒索软件|勒索病毒|键盘记录器|恶意软件|后门程序)",
        rf"(?:偷看|监控|查看){_ZOTHERS}的?(?:微信|聊天记录|短信|手机|邮箱){_Z}{{0,10}}?(?:不被发现|不让他知道|不让她知道|偷偷)",
        rf"偷偷(?:登录|登|进入|查看|看){_ZOTHERS}的?(?:账号|帐号|微信|聊天记录|手机|邮箱)",
        r"(?:DDoS|ddos|DDOS)攻击|盗号(?:软件|工具|教程|方法)",
    ],
    "fraud": [
        rf"(?:写|编写|做|制作|搭建|生成|设计)(?:一[封个份套条])?{_Z}{{0,6}}?钓鱼(?:邮件|网站|短信|链接|页面|信息)",
        rf"(?:写|编写|做|生成|给我){_Z}{{0,10}}?(?:冒充|假冒|伪装成){_Z}{{0,10}}?(?:短信|邮件|信息|消息)",
        rf"(?:盗取|窃取|偷取|偷|套取|骗取)(?:{_ZOTHERS}的?)?(?:信用卡|银行卡|卡号|CVV|cvv|安全码|卡信息)",
        rf"{_ZHOWI}{_Z}{{0,8}}?(?:盗刷|洗钱|套现|诈骗|骗钱|骗取|行骗|骗老人|克隆银行卡|复制银行卡|复制信用卡)",
        rf"(?:伪造|制作|做|办|印){_Z}{{0,3}}?(?:假币|假钞|假身份证|假证|假护照|假驾照|假发票)",
        r"伪造(?:身份证|证件|护照|驾照|发票|印章|公章)", r"(?:诈骗|洗钱)(?:话术|剧本|教程|方法)",
    ],
    "violence": [
        rf"{_ZHOWI}{_Z}{{0,8}}?(?:杀死|杀掉|杀了|杀|弄死|毒死|砍死|捅死|打死|害死|掐死|绑架|强奸|下毒)(?:一个|一名|一位|个)?{_ZPERSON}",
        rf"{_ZHOWI}{_Z}{{0,8}}?(?:杀人|下毒|投毒)", r"毁尸灭迹|处理尸体|藏尸|分尸",
        rf"{_ZHOW}{_Z}{{0,8}}?(?:配制|制作|做|买|弄到|搞到){_Z}{{0,4}}?(?:毒药|氰化物|砒霜|剧毒|铊)",
        r"(?:无色无味|查不出来|验不出来)的?毒",
    ],
    "self_harm": [
        r"轻生|割腕|自残|寻死|不想活了|(?:^|[，,。！!？?~～\s])我(?:真的|真|好|很|就)?想(?:去)?死|(?:想|要|打算|准备|怎么|如何)自杀|自杀(?:的)?(?:方法|念头)",
        r"(?:我想|想要|打算|准备)(?:去)?(?:跳楼|上吊|结束(?:自己的|我的)?生命)|结束(?:自己的|我的)生命",
        rf"(?:安眠药|药){_Z}{{0,6}}?(?:吃多少|几片|多少片)(?:会|能|才能)?(?:死|致死)|致死(?:剂量|量)",
        r"怎么(?:死|去死)(?:才|比较|最)?(?:不痛|没有痛苦|快)",
    ],
    "sexual_minors": [
        r"儿童色情|恋童",
        rf"(?:色情|裸照|裸体|性爱|性行为|不雅照|淫秽){_Z}{{0,12}}?(?:儿童|未成年|幼女|幼童|小学生|初中生|小孩|孩子|萝莉)",
        rf"(?:儿童|未成年|幼女|幼童|小学生|初中生|小孩|孩子|萝莉){_Z}{{0,12}}?(?:色情|裸照|裸体|性爱|性行为|不雅照|淫秽)",
    ],
}

_RULES = {c: re.compile("|".join(f"(?:{p})" for p in _EN[c] + _ZH[c]), re.I) for c in CATEGORIES}


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", normalise_text(text))  # the guard's rules, Chinese punctuation folded too
    text = text.replace("’", "'").replace("‘", "'").lower()
    text = re.sub(r"\s+", " ", text)
    return _BENIGN.sub(" ~ ", text)


def refusal(text: str) -> str | None:
    """The category (one of CATEGORIES) of harmful content `text` asks for, or None."""
    if not text:
        return None
    normalised = _normalise(text)
    for category in CATEGORIES:
        if _RULES[category].search(normalised):
            return category
    return None
