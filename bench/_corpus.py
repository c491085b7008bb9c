"""Synthetic multilingual news text for the benchmarks: Zipf-like vocabulary, topics, long tail."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

# Function words and common news words, most frequent first: a Zipf draw over them gives the
# skewed term frequencies of real prose, which is what makes FTS doclists long or short.
_COMMON = {
    "en": """the of to and in a that for on is said was with by as at from it has have
    be are will were not an this which but its after also their who had more been they would
    about over year new government minister president official people officials statement
    week country state told security two first last military national international talks
    meeting report according public percent support reuters policy press news agency local
    during against economic since leaders foreign between under while further decision""",
    "fr": """de la le et les des à en du un une que pour dans a est sur par au qui pas
    plus il ne avec ce se sont ont été son aux mais cette elle lors selon ministre président
    gouvernement pays sécurité état réunion déclaration semaine année nouveau premier
    national international politique économique publique accord soutien également contre
    entre depuis après dernier conseil européen français république""",
    "ru": """и в на с что по не о к из за от для это как а его также был года было при
    он но до после президент министр правительство страны заявил глава время встреча
    россии российской федерации вопросы международной безопасности сотрудничества
    развития переговоры решение заявление неделе году новых первый национальной""",
    "tr": """ve bir bu da de için ile olarak en çok daha gibi olan sonra kadar ancak her
    ise yeni büyük Türkiye cumhurbaşkanı bakan hükümet ülke güvenlik açıklama toplantı
    yıl hafta ilk uluslararası ulusal ekonomik siyasi destek karar görüşme ayrıca""",
    "de": """der die und in den von zu das mit sich des auf für ist im dem nicht ein eine
    als auch es an werden aus er hat dass sie nach wird bei einer um am sind noch wie
    Regierung Minister Präsident Land Sicherheit Erklärung Treffen Woche Jahr neue erste
    internationale nationale wirtschaftliche politische Unterstützung Entscheidung""",
}

# Topics: what a post is about. A post draws one or two, so topic words co-occur as in real
# coverage, and a saved query matches a few percent of an archive, not all or nothing.
# `_` joins the words of a set phrase ("troupes au sol"), so phrase queries find something.
_TOPICS = {
    "en": [
        "NATO troops Ukraine alliance deploy deployment Brussels Kyiv forces eastern flank",
        "Kremlin Putin Moscow Lavrov Peskov spokesman sanctions Russia Russian",
        "Macron Élysée Paris France French ground_troops troops coalition Europe",
        "Erdoğan Ankara Türkiye Turkish Fidan mediation Black_Sea grain corridor",
        "Gaza Israel ceasefire hostages humanitarian_aid Rafah Hamas negotiations",
        "election vote ballot parliament opposition campaign polls coalition majority",
        "economy inflation interest_rates central_bank growth budget markets energy_prices",
        "climate summit emissions drought floods wildfire energy transition renewables",
        "drone strike missile air_defence attack infrastructure power_grid shelling",
        "China Beijing Xi Taiwan trade tariffs Washington Biden Trump summit",
    ],
    "fr": [
        "OTAN troupes Ukraine alliance déploiement Bruxelles Kiev forces flanc est",
        "Kremlin Poutine Moscou Lavrov sanctions Russie russe diplomatie",
        "Macron Élysée Paris troupes_au_sol troupes coalition Europe défense",
        "Gaza Israël cessez-le-feu otages aide_humanitaire négociations",
        "élection vote scrutin Assemblée opposition campagne sondages majorité",
        "économie inflation taux banque_centrale croissance budget énergie prix",
    ],
    "ru": [
        "НАТО войска войск Украина Украины альянс размещение Брюссель Киев",
        "Кремль Путин Москва Лавров Песков санкции Россия дипломатия",
        "Макрон Елисейский Париж Франция войска коалиция Европа",
        "Эрдоган Анкара Турция посредничество Черное_море зерновой коридор",
        "экономика инфляция ставка Центробанк рост бюджет энергетика цены",
    ],
    "tr": [
        "NATO asker Ukrayna ittifak konuşlanma Brüksel Kiev kuvvetleri",
        "Kremlin Putin Moskova Lavrov yaptırımlar Rusya diplomasi",
        "Erdoğan Ankara Fidan arabuluculuk Karadeniz tahıl koridoru",
        "Gazze İsrail ateşkes rehineler insani yardım müzakereler",
    ],
    "de": [
        "NATO Truppen Ukraine Bündnis Stationierung Brüssel Kiew Streitkräfte Ostflanke",
        "Kreml Putin Moskau Lawrow Sanktionen Russland Diplomatie",
        "Wahl Bundestag Opposition Kanzler Koalition Umfragen Mehrheit",
        "Wirtschaft Inflation Zinsen Zentralbank Wachstum Haushalt Energiepreise",
    ],
}

LANGS = ("en", "fr", "ru", "tr", "de")
LANG_WEIGHTS = (50, 15, 15, 10, 10)

_SYLLABLES = {
    "latin": "ba be bi bo bu ka ke ki ko ra re ri ro ta te ti to la le li lo ma me mi mo na ne "
    "ni no sa se si so va ve vi an en in on ar er ir or al el il ol",
    "fr": "ba bé ri ro ta te lo ma mè ni no sa se vi an en on ar er or al el ou eu ch qu gn",
    "tr": "ba be bı bo bu ça çe ka ke kı ko ra re rı ro ta te tı to la le lı ma me mı na ne "
    "ğa ğe şa şe sa se ya ye ar er ır or al el ıl öz üz",
    "de": "ba be bi bo ka ke ki ko ra re ri ro ta te ti to la le li ma me mi na ne sch str "
    "ei au äu ö ü er en an in ung",
    "ru": "ба бе би бо ка ке ки ко ра ре ри ро та те ти то ла ле ли ло ма ме ми мо на не ни "
    "но са се си со ва ве ви ан ен ин он ар ер ир ор ал ел ов ев ск",
}


@dataclass
class _Lang:
    common: list[str]
    common_cum: list[float]
    topics: list[list[str]]
    tail: list[str]
    tail_cum: list[float]


def _zipf_cum(n: int, s: float = 1.0) -> list[float]:
    return list(itertools.accumulate(1.0 / (r**s) for r in range(1, n + 1)))


class Corpus:
    """Deterministic for a given seed; `tail` is the number of rare words per language."""

    def __init__(self, seed: int = 1, tail: int = 20_000) -> None:
        self.rng = random.Random(seed)
        self.langs: dict[str, _Lang] = {}
        for lang in LANGS:
            common = _COMMON[lang].split()
            syll = _SYLLABLES.get(lang, _SYLLABLES["latin"]).split()
            words: set[str] = set()
            # Bounded: the syllable space is far larger than `tail`, so this ends quickly.
            for _ in range(tail * 5):
                if len(words) >= tail:
                    break
                w = "".join(self.rng.choice(syll) for _ in range(self.rng.randint(2, 4)))
                words.add(w.capitalize() if self.rng.random() < 0.3 else w)
            tail_words = sorted(words)
            self.rng.shuffle(tail_words)
            self.langs[lang] = _Lang(
                common=common,
                common_cum=_zipf_cum(len(common)),
                topics=[[w.replace("_", " ") for w in t.split()] for t in _TOPICS[lang]],
                tail=tail_words,
                tail_cum=_zipf_cum(len(tail_words), 0.9),
            )

    def lang(self) -> str:
        return self.rng.choices(LANGS, LANG_WEIGHTS)[0]

    def sentence(self, lang: str, topics: list[list[str]], words: int) -> str:
        lx, rng = self.langs[lang], self.rng
        common = rng.choices(lx.common, cum_weights=lx.common_cum, k=words)
        tail = rng.choices(lx.tail, cum_weights=lx.tail_cum, k=words)
        out = []
        for i in range(words):
            r = rng.random()
            if r < 0.18:
                out.append(rng.choice(rng.choice(topics)))
            elif r < 0.40:
                out.append(tail[i])
            else:
                out.append(common[i])
        out[0] = out[0][:1].upper() + out[0][1:]
        return " ".join(out) + "."

    def article(self, lang: str | None = None) -> tuple[str, str, list[str]]:
        """(lang, title, paragraphs) of one news item."""
        lang = lang or self.lang()
        lx, rng = self.langs[lang], self.rng
        topics = rng.sample(lx.topics, k=min(len(lx.topics), rng.choice((1, 1, 2))))
        title = self.sentence(lang, topics, rng.randint(6, 11)).rstrip(".")
        paragraphs = [
            " ".join(
                self.sentence(lang, topics, rng.randint(8, 18)) for _ in range(rng.randint(1, 3))
            )
            for _ in range(rng.randint(1, 3))
        ]
        return lang, title, paragraphs
