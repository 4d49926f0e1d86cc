"""Place names found by sound once the context has narrowed the names in play (assist.address.loose): a district
said loosely, a street/town or a community of anywhere heard with its suffix when nothing else is named, the
streets/towns of a named district, the communities of a named street/town (also by pinyin)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from assist.address.anywhere import CommunitiesAnywhere, PlacesAnywhere, heard_town_names
from assist.address.found import Found, Text, codes_named
from assist.address.gazetteer import Gazetteer
from assist.address.heard_text import (
    COMMUNITY_SUFFIX_HEARD,
    DISTRICT_HEARD,
    SUFFIX_HEARD,
    division_suffix,
    starts_word,
)
from assist.address.lexicon import LexEntry, Lexicon
from assist.address.loose import LooseHit, LooseMatcher
from assist.address.phonetic import FUZZY, PhoneticHit, PhoneticIndex, is_han, strongest_first
from events.address import Level

# How alike a loose sound-alike must be, by what the context has narrowed the names in play to.
LOOSE_DISTRICT = 0.7  # mean syllable similarity of a district name (三 syllables: 潮洋区, 大星期)
LOOSE_TOWN = 0.6  # a street/town of the district the caller named
LOOSE_MARGIN = 0.05  # over the next best street/town of that district
LOOSE_LEAST = 0.6  # every syllable of a loose district, or of a street's two-syllable stem, at least this close
LOOSE_FACTOR = 0.85  # a loose match is worth less again than a phonetic one
LOOSE_COMMUNITY = 0.7  # a community of the street/town the caller named
LOOSE_ANYWHERE = 0.85  # a street/town of anywhere, heard with its suffix, when nothing else is named
LOOSE_ANYWHERE_MARGIN = 0.1  # over the next best street/town of Beijing
LOOSE_ANYWHERE_ONE_LOST = 0.75  # the same with one syllable of a stem of three or more lost, the others exact
# A community of anywhere, heard with its suffix, when nothing else is named: the recogniser's versions of the
# communities named on the dev lines scored 0.9-1.0 (what keeps random text out is the suffix rule, _suffix_heard).
LOOSE_COMMUNITY_ANYWHERE = 0.9


class SoundAlikes:
    """The loose matchers of every district and street (built up front: ≈0.3 s), and the passes that add what they
    find to the lines being read."""

    def __init__(self, gazetteer: Gazetteer, lexicon: Lexicon) -> None:
        self.gazetteer = gazetteer
        self.lexicon = lexicon
        # Full names only: a loose two-syllable short name (大刑 for 大兴) is too often ordinary speech.
        self._districts = LooseMatcher(
            [(d.name, d.code) for d in gazetteer.districts.values()],
            alike={"区": SUFFIX_HEARD["区"], **DISTRICT_HEARD},
            unanchored=frozenset("区"),
        )
        self._all_towns = LooseMatcher(
            [(t.name, t.code) for t in gazetteer.towns.values() if t.current and division_suffix(t.name)],
            alike=SUFFIX_HEARD,
            unanchored=frozenset("街道镇乡地区"),
        )
        self.anywhere = PlacesAnywhere(gazetteer, SUFFIX_HEARD)
        self.communities_anywhere = CommunitiesAnywhere(gazetteer, COMMUNITY_SUFFIX_HEARD)
        self._towns_of: dict[str, LooseMatcher] = {}
        self._communities_of: dict[str, LooseMatcher] = {}
        for code in gazetteer.towns:
            self.community_matcher(code)
        for code in gazetteer.districts:
            self.town_matcher(code)  # built now: the first call of a district must not pay for it

    def add(self, texts: list[Text]) -> None:
        """Each pass in turn, each seeing what the ones before it found."""
        self._add_loose_district(texts)
        self._add_loose_town_anywhere(texts)
        self._add_loose_community_anywhere(texts)
        self._add_loose_towns(texts)
        self._add_community_phonetic(texts)
        self._add_loose_communities(texts)

    def _add_loose_district(self, texts: list[Text]) -> None:
        """No district named: the best loose sound-alike of one of the 16 districts, if any; where a street was
        named, only one said right before it (风台七星分街道: 丰台区, then the street), the order a caller says them
        in, which then checks the street against it."""
        if codes_named(texts, "district"):
            return
        street_named = bool(codes_named(texts, "town"))
        for t in texts:
            street_starts = {f.start for f in t.chosen if any(e.level == "town" for e in f.entries)}
            for hit in self._districts.scan(t.norm, LOOSE_DISTRICT, least_syllable=LOOSE_LEAST):
                suffix_heard = hit.sims[-1] >= 1.0 if hit.surface.endswith("区") else True
                if (
                    hit.end - hit.start <= 2
                    or hit.least < LOOSE_LEAST
                    or not suffix_heard
                    or (street_named and hit.end not in street_starts)
                    or starts_word(t.norm, hit.end - 1)
                    or not t.free(hit.start, hit.end)
                ):
                    continue
                entry = LexEntry("district", hit.key, "name", False, 1.0)
                t.chosen.append(self._loose_found(t, hit, entry))
                return

    def _add_loose_town_anywhere(self, texts: list[Text]) -> None:
        """Nothing named at all: a street/town of anywhere in Beijing, heard with its division suffix (白纸方街等 for
        白纸坊街道), whose stem sounds nearly the same and stands clear of every other street's."""
        if codes_named(texts, "district") or codes_named(texts, "town"):
            return
        for t in texts:
            found = self._all_towns.scan(t.norm, LOOSE_ANYWHERE_ONE_LOST - LOOSE_ANYWHERE_MARGIN, anchors=2)
            # Whole, unbroken names only: 平房，下 is not 平房乡.
            hits = [h for h in found if not h.dropped and all(is_han(ch) for ch in t.norm[h.start : h.end])]
            if not hits:
                continue
            best = hits[0]
            runner_up = next((h.score for h in hits[1:] if h.key != best.key), 0.0)
            suffix = len(division_suffix(best.surface))
            stem, heard_suffix = best.sims[:-suffix], best.sims[-suffix:]
            sure_syllables = sum(1 for s in stem if s >= FUZZY)
            # 天海湖阵 for 金海湖镇: one syllable of a long stem lost, every other one heard right
            one_lost = len(stem) >= 3 and sure_syllables == len(stem) - 1
            if (
                best.score < (LOOSE_ANYWHERE_ONE_LOST if one_lost else LOOSE_ANYWHERE)
                or best.score - runner_up < LOOSE_ANYWHERE_MARGIN
                or (min(stem) < LOOSE_LEAST and not one_lost)
                or min(heard_suffix) < 1.0  # the suffix as written or as the phone makes it (SUFFIX_HEARD)
                or sure_syllables < 2
                or not t.free(best.start, best.end)
            ):
                continue
            t.chosen.append(self._loose_found(t, best, LexEntry("town", best.key, "name", False, 1.0)))
            return

    def _add_loose_community_anywhere(self, texts: list[Text]) -> None:
        """Nothing named at all: a community of anywhere in Beijing, heard with its suffix (意打李社区 for 义达里社区,
        厚石洋分 for 后石羊村), every syllable of its stem close, standing clear of every other community's name. A
        name several towns have is every one of them (the candidates weigh the ambiguity). What was named may only
        be a piece of it: 新华 (新华街道's stem) in 新华元社区 for 新华园社区, which is in another street."""
        found_so_far = [(t, f) for t in texts for f in t.chosen]
        if len({id(t) for t, _ in found_so_far}) > 1 or any(
            not _replaceable(f) or any(e.level == "district" for e in f.entries) for _, f in found_so_far
        ):
            return
        g = self.gazetteer
        for t in texts:
            if found_so_far and found_so_far[0][0] is not t:
                continue
            found = self.communities_anywhere.scan(t.norm, LOOSE_COMMUNITY_ANYWHERE - LOOSE_MARGIN)
            hits = [h for h in found if not h.dropped and _suffix_heard(h, t.norm)]
            if not hits:
                continue
            hits.sort(key=lambda h: (-h.score, h.start - h.end))  # of names heard alike, the longest
            best = hits[0]
            name = g.communities[best.key].name
            # A shorter name inside the best one is no rival: 第二社区 is part of 和义东里第二社区 as heard.
            rival = next(
                (h for h in hits[1:] if g.communities[h.key].name != name and not _inside(h, best)),
                None,
            )
            clear = rival is None or best.score - rival.score >= LOOSE_MARGIN or _written_closer(best, rival, t.norm)
            if best.score < LOOSE_COMMUNITY_ANYWHERE or not clear:
                continue
            if any(f.start < best.start or best.end < f.end for f in t.chosen):
                continue  # something named outside the community's name (what lies inside it may be replaced)
            codes = [h.key for h in hits if g.communities[h.key].name == name and h.score == best.score]
            entries = [LexEntry("community", code, "name", False, 1.0) for code in codes]
            found_at = self._loose_found(t, best, entries[0])
            found_at.entries = entries
            t.chosen = [found_at]
            return

    def _add_loose_towns(self, texts: list[Text]) -> None:
        """A district is named and none of its streets/towns: the best loose sound-alike among them, when it
        stands clear of the next best."""
        towns = codes_named(texts, "town")
        g = self.gazetteer
        for district in sorted(codes_named(texts, "district")):
            if any(g.towns[c].district_code == district for c in towns):
                continue
            matcher = self.town_matcher(district)
            elsewhere = self._town_elsewhere(district)
            hits = [
                (t, hit)
                for t in texts
                for hit in matcher.scan(t.norm, LOOSE_TOWN - LOOSE_MARGIN)
                # a two-syllable stem: both syllables close, one of them right (理研 = 梨园, 医院 ≠ 梨园)
                if _clear_for(t, hit, elsewhere)
                and (len(hit.surface) > 2 or (hit.least >= LOOSE_LEAST and hit.score >= 0.8))
            ]
            chosen = _standing_out(hits, LOOSE_TOWN, LOOSE_MARGIN)
            if chosen is None:
                continue
            self._put_over(*chosen, "town")

    def _town_elsewhere(self, district: str) -> Callable[[LexEntry], bool]:
        """研镇 within 理研镇, in 通州区: a piece of the name that is a street/town of another district."""
        g = self.gazetteer
        return lambda e: e.level == "town" and g.towns[e.code].district_code != district

    def _add_loose_communities(self, texts: list[Text]) -> None:
        """A street/town is named and none of its communities: the best loose sound-alike among them (新城闭四社区
        for 星城第四社区, 西水一村 for 西水峪村), clear of the next best."""
        g = self.gazetteer
        communities = codes_named(texts, "community")
        for town in sorted(codes_named(texts, "town")):
            if any(g.communities[c].town_code == town for c in communities):
                continue
            matcher = self.community_matcher(town)
            hits = [
                (t, hit)
                for t in texts
                for hit in matcher.scan(t.norm, LOOSE_COMMUNITY - LOOSE_MARGIN, anchors=2)
                if hit.least >= LOOSE_LEAST - 0.1 and self._clear_for_community(t, hit, town)
            ]
            chosen = _standing_out(hits, LOOSE_COMMUNITY, LOOSE_MARGIN)
            if chosen is None:
                continue
            self._put_over(*chosen, "community")

    def _clear_for_community(self, t: Text, hit: LooseHit, town: str) -> bool:
        """Whether a community of `town` heard at `hit` may take its span. What lies there may be a piece of it:
        a sound-alike of the street's stem (新城 in 新城闭四社区), or a shorter community of another street (马庄村 in
        洋服马庄村, for 杨驸马庄村). But not a street heard whole, its suffix where the hit ends, unless the hit
        sounds closer there: 掌心电 is 长辛店街道 (not its village 长辛店村), 起摘糖震 斋堂镇 (not 西斋堂村); 韩村和村
        is 韩村河村 more than 韩村河镇."""
        g = self.gazetteer
        for f in t.chosen:
            if not f.overlaps(hit.start, hit.end):
                continue
            if f.start < hit.start or hit.end < f.end:
                return False
            closer = f.phonetic and hit.score * LOOSE_FACTOR > f.score
            for e in f.entries:
                if e.level == "town" and _replaceable(f) and (f.end < hit.end or closer):
                    continue
                if (
                    e.level == "community"
                    and g.communities[e.code].town_code != town
                    and f.end - f.start < hit.end - hit.start
                ):
                    continue
                return False
        return True

    def community_matcher(self, town: str) -> LooseMatcher:
        matcher = self._communities_of.get(town)
        if matcher is None:
            g = self.gazetteer
            names = []
            for code in g.communities_by_town.get(town, []):
                community = g.communities[code]
                names.append((community.name, code))
                names += [(alias, code) for alias in community.aliases if len(alias) >= 3]
            matcher = LooseMatcher(names, alike=COMMUNITY_SUFFIX_HEARD, unanchored=frozenset("社区村"))
            self._communities_of[town] = matcher
        return matcher

    def town_matcher(self, district: str) -> LooseMatcher:
        matcher = self._towns_of.get(district)
        if matcher is None:
            names: list[tuple[str, str]] = []
            for town in self.gazetteer.towns.values():
                if town.district_code != district or not town.current:
                    continue
                names += [(heard, town.code) for heard in heard_town_names(town)]
            matcher = self._towns_of[district] = LooseMatcher(names)
        return matcher

    def _put_over(self, t: Text, hit: LooseHit, level: Level) -> None:
        """The hit's place takes its span, over whatever was found there."""
        t.chosen = [f for f in t.chosen if not f.overlaps(hit.start, hit.end)]
        t.chosen.append(self._loose_found(t, hit, LexEntry(level, hit.key, "name", False, 1.0)))

    @staticmethod
    def _loose_found(t: Text, hit: LooseHit, entry: LexEntry) -> Found:
        score = hit.score * LOOSE_FACTOR
        return Found(hit.start, hit.end, t.raw[hit.start : hit.end], t.source, [entry], score, phonetic=True)

    def _add_community_phonetic(self, texts: list[Text]) -> None:
        towns = codes_named(texts, "town")
        named_communities = codes_named(texts, "community")
        for town in sorted(towns):
            if any(self.gazetteer.communities[c].town_code == town for c in named_communities):
                continue
            index: PhoneticIndex = self.lexicon.community_index(town)
            for t in texts:
                hits: list[PhoneticHit] = index.match(t.norm)
                for hit in sorted(hits, key=strongest_first):
                    if not t.free(hit.start, hit.end):
                        continue
                    entries = [
                        e
                        for e in self.lexicon.entries.get(hit.surface, [])
                        if e.level == "community" and self.gazetteer.communities[e.code].town_code == town
                    ]
                    if entries:
                        t.chosen.append(
                            Found(hit.start, hit.end, t.raw[hit.start : hit.end], t.source, entries, hit.score, True)
                        )


def _standing_out(hits: Sequence[tuple[Text, LooseHit]], least: float, margin: float) -> tuple[Text, LooseHit] | None:
    """The best hit if it scores at least `least` and by `margin` over the best hit of any other name."""
    if not hits:
        return None
    t, best = max(hits, key=lambda item: item[1].score)
    runner_up = max((h.score for _, h in hits if h.key != best.key), default=0.0)
    if best.score < least or best.score - runner_up < margin:
        return None
    return t, best


def _replaceable(f: Found) -> bool:
    """A mention short or sound-alike enough that a longer name over it may take its place."""
    return f.phonetic or f.end - f.start <= 2


def _clear_for(t: Text, hit: LooseHit, replaceable: Callable[[LexEntry], bool]) -> bool:
    """The hit's span is free, or what lies inside it is only short or sound-alike mentions that `replaceable`
    says a longer name may take over."""
    for f in t.chosen:
        if not f.overlaps(hit.start, hit.end):
            continue
        inside = hit.start <= f.start and f.end <= hit.end and _replaceable(f)
        if not (inside and all(replaceable(e) for e in f.entries)):
            return False
    return True


def _suffix_heard(hit: LooseHit, text: str) -> bool:
    """A community's suffix (社区, 村) heard, and its stem's every syllable close (天花板 is not 莲花瓣). The suffix
    as the phone makes it (射器, 设计, 分) counts only after a stem of three syllables or more: a word of two
    followed by 分 or 世洗 is too often ordinary speech (种姓分, 养存世洗 in random text)."""
    suffix = next((x for x in ("社区", "村") if hit.surface.endswith(x)), "")
    if not suffix or len(hit.sims) <= len(suffix):
        return False
    stem = hit.sims[: -len(suffix)]
    if min(hit.sims[-len(suffix) :]) < 1.0 or min(stem) < LOOSE_LEAST:
        return False
    if text[hit.end - len(suffix) : hit.end] == suffix or len(stem) >= 3:
        return True
    # 帅府社期 for 帅府社区: a stem of two written right, and the suffix's first character
    return text[hit.start : hit.end - len(suffix) + 1] == hit.surface[: len(stem) + 1]


def _written_closer(best: LooseHit, rival: LooseHit, text: str) -> bool:
    """`best` sounds exactly like what was heard and more of its characters are written right than of `rival`,
    which only sounds nearly alike: 新华元社区 is 新华园社区, not 兴华园社区 (新 xin, 兴 xing)."""
    return best.score == 1.0 and rival.score < 1.0 and _written_right(best, text) > _written_right(rival, text)


def _written_right(hit: LooseHit, text: str) -> int:
    heard = text[hit.start : hit.end]
    if len(heard) != len(hit.surface):
        return 0
    return sum(1 for a, b in zip(heard, hit.surface, strict=True) if a == b)


def _inside(hit: LooseHit, outer: LooseHit) -> bool:
    """`hit` covers a strictly shorter part of what `outer` covers."""
    return outer.start <= hit.start and hit.end <= outer.end and hit.end - hit.start < outer.end - outer.start
