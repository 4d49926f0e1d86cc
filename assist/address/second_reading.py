"""Second readings of a final: what a guided decode of the utterance, or a suggested line the audio bore out (the
heard line with one span put right), adds to the card the heard line gave.

A second reading is steered towards the names in its prompt, or made from them, so a place it names counts only
where the heard line echoes it (it sounds like part of what was heard) and, when the heard line named a district,
only in that district. The result is given in the heard line's terms (its span, its mentions), so the transcript
can show the name over what was heard.
"""

from __future__ import annotations

from collections.abc import Sequence

from assist.address.anywhere import Place, heard_as_the_name, suffix_heard
from assist.address.extract import AGREEMENT_BONUS, DEPTH, AddressExtractor
from assist.address.heard_text import has_place_word, names_a_thing, normalize
from assist.address.hints import HINT_ANYWHERE, HINT_LOOSELY
from assist.address.loose import LooseHit, LooseMatcher
from assist.address.phonetic import FUZZY
from assist.address.sound_alikes import LOOSE_MARGIN
from events.address import AddressCandidate, AddressCandidates, Level, Mention, TextSpan

ALTERNATIVE_ECHO = 0.5  # how much a street named by the guided reading must sound like part of the heard text
ALTERNATIVE_FACTOR = 0.9  # a place read only on the second, guided decode
# A place found only where its suffix is heard loosely (hints.HINT_LOOSELY), or with one syllable heard wrong, is
# worth less than one the heard line echoes itself: never shown as sure.
LOOSE_ECHO_FACTOR = 0.85
# A place the second reading of a line naming none writes must sound at least this much like part of the heard line
# (no district narrows the choice, so more than ALTERNATIVE_ECHO): 大师驻 for 大石窝, 小区门 for 小红门, one syllable
# of three wrong, is ordinary speech.
ALTERNATIVE_ECHO_ANYWHERE = 0.7
ALTERNATIVE_ECHO_DROPPED = 0.8  # the same with a syllable of the name not heard at all (北章阵 is not 北臧村镇)
# A community a second reading names must sound this much like part of the heard text, two syllables of it heard
# right (金钩和射器 for 金沟河社区), to be shown at that depth; otherwise the card stops at its street/town.
ALTERNATIVE_ECHO_COMMUNITY = 0.7


class SecondReadings:
    """Judges the second readings of the finals an extractor reads (thread-safe as the extractor is)."""

    def __init__(self, extractor: AddressExtractor) -> None:
        self.extractor = extractor
        self.gazetteer = extractor.gazetteer
        self.sound_alikes = extractor.sound_alikes

    def extract(
        self,
        heard: str,
        alternative: str,
        segment_id: str = "",
        *,
        context: Sequence[str] = (),
        suggested: bool = False,
    ) -> AddressCandidates | None:
        """What a second, guided reading of a final adds: a deeper place than the heard text gave (in the same
        district, when the heard text named one), which also sounds like part of the heard text (the recogniser is
        steered towards the names in its prompt, so a name that the first reading has no trace of is not believed).
        The result is in the heard text's terms (its span, its mentions), so the transcript can show the name over
        what was heard. None when the alternative adds nothing. `suggested`: the alternative is the heard line with
        one span put right, scored against the audio rather than decoded."""
        first = self.extractor.extract(heard, segment_id, context=context).top
        read = self.extractor.extract(alternative, segment_id, context=context).candidates
        if not read:
            return None
        if first is None:
            return self._alternative_anywhere(heard, read, segment_id, suggested=suggested)
        second = read[0]
        confirmed = second.confidence * ALTERNATIVE_FACTOR
        # The guided reading writes the street the heard line only sounded like (太平潮街道, then 太平桥街道): as
        # sure as a street it finds in a line that sounded like no place. A suggested reading was made from that very
        # sound-alike, so it is a weaker witness, never a sure one (such cards were right 9 times in 11 on dev).
        confirming = confirmed * LOOSE_ECHO_FACTOR if suggested else confirmed
        if (
            self.extractor.unsure_street_by_sound(first)
            and second.town_code == first.town_code
            and confirming > first.confidence
        ):
            return _as_heard(heard, segment_id, first, list(first.mentions), confirming)
        if suggested and self.extractor.unsure_street_by_sound(first):
            chosen = _chosen_by_audio(heard, alternative, first, second)
            if chosen is not None:
                return _as_heard(heard, segment_id, second, [chosen], confirmed * LOOSE_ECHO_FACTOR)
        if second.town_code is None or second.town is None or first.district_code is None:
            return None
        if second.district_code != first.district_code or DEPTH[second.level] <= DEPTH[first.level]:
            return None
        town = self.sound_alikes.town_matcher(first.district_code).scan(
            normalize(heard), ALTERNATIVE_ECHO, function_chars=True
        )
        echo = next((h for h in town if h.key == second.town_code), None)
        if echo is None:
            return None
        mentions = [m for m in first.mentions if m.source == "final" and m.level == "district"]
        mentions.append(_echo_mention(heard, echo, "town", second.town))
        community = self._community_echo(heard, second)
        if (
            community is not None
            and second.community is not None
            and (community.start >= echo.end or community.end <= echo.start)
        ):
            mentions.append(_echo_mention(heard, community, "community", second.community))
        confidence = min(second.confidence, first.confidence + AGREEMENT_BONUS) * ALTERNATIVE_FACTOR
        return _as_heard(heard, segment_id, second, mentions, confidence)

    def _community_echo_loosely(self, norm: str, card: AddressCandidate) -> LooseHit | None:
        """Where the heard line (normalised) has the community a suggested reading names with its suffix heard
        loosely: the span the suggestion was made from."""
        if card.level != "community" or card.community_code is None:
            return None
        loose = self.sound_alikes.communities_anywhere.scan_loosely(norm, HINT_LOOSELY)
        echo = next((h for h in loose if h.key == card.community_code), None)
        if echo is None or names_a_thing(norm, norm[echo.start : echo.end], echo.end):
            return None
        return echo

    def _community_echo(self, heard: str, card: AddressCandidate) -> LooseHit | None:
        """Where the heard line sounds like the community a second reading names (among its town's), if it does."""
        if card.level != "community" or card.community_code is None or card.town_code is None:
            return None
        norm = normalize(heard)
        hits = self.sound_alikes.community_matcher(card.town_code).scan(norm, ALTERNATIVE_ECHO_COMMUNITY, anchors=2)
        echo = next((h for h in hits if h.key == card.community_code and _community_suffix_heard(h)), None)
        if echo is None or names_a_thing(norm, norm[echo.start : echo.end], echo.end):
            return None
        return echo

    def _sounds_like_another(self, norm: str, echo: LooseHit, name: str) -> bool:
        """Another community's name sounds about as much like the heard span (月元社区: 月苑社区 and 阅园社区 are both
        yue yuan; 皮革中三村: 中山村 and 皮各庄三村). The audio that bore out a line with one of them put in cannot
        tell such names apart, so the one suggested is not sure."""
        g = self.gazetteer
        scanned = self.sound_alikes.communities_anywhere.scan(norm, HINT_ANYWHERE)
        hits = [h for h in scanned if h.start < echo.end and echo.start < h.end]
        own = max((h.score for h in hits if g.communities[h.key].name == name), default=echo.score)
        return any(g.communities[h.key].name != name and h.score >= own - LOOSE_MARGIN for h in hits)

    def _alternative_anywhere(
        self, heard: str, read: Sequence[AddressCandidate], segment_id: str, *, suggested: bool = False
    ) -> AddressCandidates | None:
        """The heard line named no place and its second reading does: believed at the deepest level (street/town,
        else district) whose name, or a colloquial area of it, sounds like part of the heard line. The reading's
        best candidate first, then the others: the prompt may have put in a name with no trace in what was heard
        (小红门 for 小区门) next to the one that was said (西单 for 西丹). A `suggested` reading (the heard line with
        one span put right, which the audio bore out) sounds like the heard line by construction: its name must also
        stand as a place there, with its division suffix heard or a place word beside it (生活和品质的情况 is not
        和平里; 希望景快处理, "please deal with it soon", is not 望京街)."""
        norm = normalize(heard)

        def placed(hit: LooseHit) -> bool:
            if suggested:
                return suffix_heard(hit) or has_place_word(norm, hit.start, hit.end)
            return heard_as_the_name(norm, hit)

        for second in read:
            community, factor = self._community_echo(heard, second), ALTERNATIVE_FACTOR
            if community is None and suggested:
                community, factor = self._community_echo_loosely(norm, second), ALTERNATIVE_FACTOR * LOOSE_ECHO_FACTOR
            if community is not None and second.community is not None and placed(community):
                if suggested and self._sounds_like_another(norm, community, second.community):
                    factor *= LOOSE_ECHO_FACTOR
                mention = _echo_mention(heard, community, "community", second.community)
                return _as_heard(heard, segment_id, second, [mention], second.confidence * factor)
        loose = ALTERNATIVE_FACTOR * LOOSE_ECHO_FACTOR
        echoes: list[tuple[LooseHit, Place, float]] = []
        for hit, place in self.sound_alikes.anywhere.scan(
            norm, HINT_ANYWHERE if suggested else ALTERNATIVE_ECHO_ANYWHERE
        ):
            if hit.score >= ALTERNATIVE_ECHO_ANYWHERE:
                echoes.append((hit, place, ALTERNATIVE_FACTOR))
            elif not hit.dropped and sum(s < 1.0 for s in hit.sims) == 1:
                # The audio bore out a name of which the heard line has every syllable but one exactly (回龙君 for
                # 回龙观, 街海湖 for 金海湖): worth a card, never a sure one.
                echoes.append((hit, place, loose))
        if suggested:
            echoes += [
                (hit, place, loose) for hit, place in self.sound_alikes.anywhere.scan_loosely(norm, HINT_LOOSELY)
            ]
        hits = [
            (hit, place, factor)
            for hit, place, factor in echoes
            if (not hit.dropped or hit.score >= ALTERNATIVE_ECHO_DROPPED)
            and not names_a_thing(norm, norm[hit.start : hit.end], hit.end)  # heard 东风快递: a firm, not 东风乡
            and placed(hit)
        ]
        for second in read:
            if second.town_code is None or second.town is None:
                continue
            town = next(((h, f) for h, place, f in hits if second.town_code in place.town_codes), None)
            if town is not None:
                mention = _echo_mention(heard, town[0], "town", second.town)
                return _as_heard(heard, segment_id, second, [mention], second.confidence * town[1])
        second = read[0]
        district_echo = next(
            ((h, f) for h, place, f in hits if not place.town_codes and second.district_code in place.district_codes),
            None,
        )
        if district_echo is None or second.district_code is None:
            return None
        echo, factor = district_echo
        district = self.gazetteer.districts[second.district_code]
        mention = _echo_mention(heard, echo, "district", district.name)
        card = second.model_copy(
            update={
                "level": "district",
                "town": None,
                "town_code": None,
                "lng": district.lng,
                "lat": district.lat,
                "coord_level": "district",
                "bbox": district.bbox,
            }
        )
        return _as_heard(heard, segment_id, card, [mention], second.confidence * factor)


def _community_suffix_heard(hit: LooseHit) -> bool:
    """A community's whole name, its suffix heard as itself or as the phone makes it (射器 for 社区; not 快递急 for
    苑社区)."""
    suffix = next((x for x in ("社区", "村") if hit.surface.endswith(x)), "")
    if not suffix:
        return False
    if min(hit.sims[-len(suffix) :]) >= FUZZY:
        return True
    # 社 heard and every syllable of the stem, 区 lost on the line (三合中李社轻 for 三合中里社区): the name is there.
    stem = hit.sims[: -len(suffix)]
    return suffix == "社区" and not hit.dropped and len(stem) >= 2 and min(*stem, hit.sims[-2]) >= FUZZY


def _chosen_by_audio(heard: str, suggested: str, first: AddressCandidate, second: AddressCandidate) -> Mention | None:
    """The street a suggested reading writes over the whole span from which the heard line's own street was only a
    sound-alike: the audio chose between two sound-alikes of that span (南校见 sounds most like 南窖乡, but Whisper
    scored the line with 南邵镇 above the one with 南窖乡). None when the reading put right something else, or only
    a piece of that span (张建 → 张镇 inside 季葛张建, heard for 巨各庄镇)."""
    if second.town is None or second.town_code in (None, first.town_code):
        return None
    start, heard_end = _respelled(heard, suggested)
    own = [m for m in first.mentions if m.level == "town" and m.source == "final"]
    named = [m for m in second.mentions if m.level == "town" and m.source == "final"]
    if len(own) != 1 or len(named) != 1:
        return None
    was, now = own[0], named[0]
    # the same stretch of the line in both (the reading may be longer or shorter after it), put right inside it
    if now.start != was.start or len(suggested) - now.end != len(heard) - was.end:
        return None
    if start < was.start or heard_end > was.end:
        return None
    span = heard[was.start : was.end]
    hit = next(iter(LooseMatcher([(now.text, "")]).scan(span, 0.0)), None)
    return Mention(
        text=span,
        start=was.start,
        end=was.end,
        source="final",
        level="town",
        name=second.town,
        kind="phonetic",
        score=round(hit.score, 3) if hit is not None else 0.0,
    )


def _respelled(heard: str, suggested: str) -> tuple[int, int]:
    """Where in the heard line a suggested reading differs from it (the two share all before and after)."""
    start = 0
    while start < min(len(heard), len(suggested)) and heard[start] == suggested[start]:
        start += 1
    tail = 0
    while tail < min(len(heard), len(suggested)) - start and heard[-1 - tail] == suggested[-1 - tail]:
        tail += 1
    return start, len(heard) - tail


def _echo_mention(heard: str, echo: LooseHit, level: Level, name: str) -> Mention:
    return Mention(
        text=heard[echo.start : echo.end],
        start=echo.start,
        end=echo.end,
        source="final",
        level=level,
        name=name,
        kind="phonetic",
        score=round(echo.score, 3),
    )


def _as_heard(
    heard: str, segment_id: str, card: AddressCandidate, mentions: list[Mention], confidence: float
) -> AddressCandidates:
    """A card read on the second decode, given in the heard line's terms: as deep as `mentions` go (a community
    only where the heard line echoes it)."""
    mentions.sort(key=lambda m: m.start)
    update: dict[str, object] = {
        "mentions": mentions,
        "confidence": round(confidence, 3),
        "source": "gazetteer+phonetic",
    }
    if not (card.level == "community" and any(m.level == "community" for m in mentions)):
        update |= {
            "level": "town" if card.level == "community" else card.level,
            "community": None,
            "community_code": None,
            "adcode": card.town_code or card.district_code,
        }
    card = card.model_copy(update=update)
    start, end = mentions[0].start, mentions[-1].end
    return AddressCandidates(
        segment_id=segment_id,
        text=heard,
        span=TextSpan(start=start, end=end, text=heard[start:end]),
        candidates=[card],
    )
