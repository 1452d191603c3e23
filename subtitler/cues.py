"""From transcript to cues: words with timestamps in, professional subtitle cues out.

Cues are built from word times, never from segment times (which stretch over
silences). The steps, each a function below:

1. `_blocks`: cut the word stream at sentence ends and pauses.
2. `_split_block`: cut each block into cues that fit the profile (line count x
   line length, maximum duration), choosing cut points that read well:
   after punctuation, before conjunctions and prepositions, never between an
   article and its noun or a first and last name.
3. `_break_lines`: break each cue's text into balanced lines by the same rules.
4. `_time_cues`: start at the first word; end after the last word, extended
   into free time only as far as minimum duration and reading speed need,
   shortened to keep the minimum gap; no overlaps, nothing after the media's
   end. The hard rules (sizes, durations, gap) always hold, so the output
   passes `subtitler check`; reading speed holds where the speech allows.

Both cut searches are small dynamic programmes over word boundaries, so the
whole layout is linear in the number of blocks and runs in milliseconds per
hour of speech.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .profiles import DEFAULT_PROFILE, Profile, get_profile
from .timing import DEFAULT_FPS, finish_times
from .transcript import Segment, Transcript, Word


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str  # lines joined by "\n"
    # The timed words the text is made of, in order (word highlighting, karaoke); () when unknown.
    words: tuple[Word, ...] = field(default=(), compare=False)

# Sentence ends: a cue never runs across one.
_SENTENCE_END = tuple(".?!。？！…")
# A comma-like pause in the text: a good place to cut.
_CLAUSE_END = tuple(",;:，、；：—–")
# Words a line or cue should not end with: they belong to what follows.
_BIND_NEXT = frozenset("""
a an the this that these those my your his her its our their some any no every each
of in on at to for with from by about into onto over after before under between through
during without within against among and but or nor so yet
i you he she we they it
will would shall should can could may might must have has had is are was were be been do does did
not very more most less mr mrs ms dr st
""".split())
# Words a new line or cue reads well starting with.
_GOOD_START = frozenset("""
and but or nor so yet because although though while if when where which who whom whose that
of in on at to for with from by about into onto over after before under between through during
without within against among
""".split())

# Weights of the cut scoring (lower cost is better). One more cue costs the most,
# so the fewest cues that fit are used; then balance and the reading rules decide.
_CUE_COST = 1000.0
_SLACK_WEIGHT = 40.0
_BAD_CUT = 60.0
_NAME_CUT = 80.0
_GOOD_CUT = -25.0
_CLAUSE_CUT = -45.0
_PAUSE_CUT = -30.0  # per second of silence at the cut, up to one second
# Netflix times a cue within 3 frames of its speech: when reading speed needs the time, a cue may
# start this much before its first word, borrowing the silence before it.
_LEAD = 0.125
# Per (characters/second over the profile's reading speed)²: cuts share the time out so that
# no cue reads much faster than the others.
_CPS_WEIGHT = 10.0


# Abbreviations whose full stop does not end a sentence.
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr prof vs etc e.g i.e no mt".split())


def _ends_sentence(word: Word) -> bool:
    text = word.text.strip()
    if not text.endswith(_SENTENCE_END):
        return False
    stem = text.rstrip(".").lower()
    return not (text.endswith(".") and (stem in _ABBREVIATIONS or len(stem) == 1))


def _bare(word: Word) -> str:
    return word.text.strip().strip("\"'“”‘’()[].").lower()


def _join(words: Sequence[Word]) -> str:
    return "".join(w.text for w in words).strip()


def _cut_cost(before: Word, after: Word) -> float:
    """How badly a cue or line break between `before` and `after` reads."""
    text = before.text.strip()
    cost = 0.0
    if _ends_sentence(before):
        cost += 2 * _CLAUSE_CUT
    elif text.endswith(_CLAUSE_END):
        cost += _CLAUSE_CUT
    elif _bare(before) in _BIND_NEXT:
        cost += _BAD_CUT
    if _bare(after) in _GOOD_START:
        cost += _GOOD_CUT
    # Two capitalised words in a row, mid-sentence: likely a name ("John Dashwood").
    a, b = text.strip("\"'“”"), after.text.strip().strip("\"'“”")
    if a[:1].isupper() and b[:1].isupper() and not (_ends_sentence(before) or text.endswith(_CLAUSE_END)):
        cost += _NAME_CUT
    cost += _PAUSE_CUT * min(1.0, max(0.0, after.start - before.end))
    return cost


def _blocks(words: Sequence[Word], profile: Profile) -> list[list[Word]]:
    """Runs of words between sentence ends and pauses."""
    blocks: list[list[Word]] = []
    current: list[Word] = []
    for i, w in enumerate(words):
        current.append(w)
        nxt = words[i + 1] if i + 1 < len(words) else None
        if nxt is None or _ends_sentence(w) or nxt.start - w.end >= profile.pause:
            blocks.append(current)
            current = []
    return blocks


class _Run:
    """A list of words with prefix sums, so any span's text length and cut cost are O(1)."""

    def __init__(self, words: Sequence[Word]) -> None:
        self.words = list(words)
        self.prefix = [0]
        for w in self.words:
            self.prefix.append(self.prefix[-1] + len(w.text))
        self.lead = [len(w.text) - len(w.text.lstrip()) for w in self.words]
        self.trail = [len(w.text) - len(w.text.rstrip()) for w in self.words]
        # cut[k]: the cost of a break before word k.
        self.cut = [0.0] + [_cut_cost(self.words[k - 1], self.words[k]) for k in range(1, len(self.words))]

    def length(self, i: int, j: int) -> int:
        """len(_join(words[i:j])) without building the string."""
        return self.prefix[j] - self.prefix[i] - self.lead[i] - self.trail[j - 1]

    def fits(self, i: int, j: int, profile: Profile) -> bool:
        """Whether words[i:j] make one cue within the profile's size and duration."""
        if self.length(i, j) > profile.max_cue_chars:
            return False
        if self.words[j - 1].end - self.words[i].start > profile.max_duration:
            return False
        # Greedy filling needs the fewest lines; compare that with the limit.
        lines, start = 0, i
        most = profile.max_words_per_line or j - i
        while start < j:
            end = start + 1
            while end < j and end - start < most and self.length(start, end + 1) <= profile.max_line_chars:
                end += 1
            if self.length(start, end) > profile.max_line_chars:
                return False  # one word longer than a line
            lines, start = lines + 1, end
        return lines <= profile.max_lines


def _break_lines(run: _Run, i0: int, j0: int, profile: Profile) -> list[tuple[int, int]]:
    """Balanced lines of at most `max_line_chars` for words[i0:j0], fewest lines first."""
    width = profile.max_line_chars
    most = profile.max_words_per_line or j0 - i0
    # best[j] = (lines, cost, previous cut) for words[i0:j]
    best: dict[int, tuple[int, float, int]] = {i0: (0, 0.0, i0)}
    for j in range(i0 + 1, j0 + 1):
        for i in range(j - 1, i0 - 1, -1):
            length = run.length(i, j)
            if (length > width or j - i > most) and j - i > 1:
                break  # adding words only makes the line longer
            lines, cost, _ = best[i]
            slack = (width - length) / width
            step = _SLACK_WEIGHT * slack * slack + (run.cut[i] if i > i0 else 0.0)
            candidate = (lines + 1, cost + step, i)
            if j not in best or candidate[:2] < best[j][:2]:
                best[j] = candidate
    spans, j = [], j0
    while j > i0:
        i = best[j][2]
        spans.append((i, j))
        j = i
    return spans[::-1]


def _split_block(run: _Run, profile: Profile, room_end: float = float("inf")) -> list[tuple[int, int]]:
    """The cheapest cut of a block into cues that each fit the profile, as (start, end) spans.

    A single word that cannot fit on its own still becomes a cue (the words
    do not allow better). A cue can last until the next one's speech starts
    (`room_end` after the block's last word); a cue that must read faster than
    the profile allows costs more, so fast speech is cut where the time is.
    """
    n = len(run.words)
    words = run.words
    best: list[tuple[float, int]] = [(0.0, 0)] * (n + 1)
    for j in range(1, n + 1):
        best[j] = (float("inf"), j - 1)
        until = words[j].start - profile.min_gap if j < n else room_end
        for i in range(j - 1, -1, -1):
            if j - i > 1 and not run.fits(i, j, profile):
                if run.length(i, j) > profile.max_cue_chars:
                    break  # longer pieces only get longer
                continue
            length = run.length(i, j)
            slack = max(0, profile.max_cue_chars - length) / profile.max_cue_chars
            shown = min(until - words[i].start + _LEAD, profile.max_duration)
            over = max(0.0, length / shown - profile.max_cps) if shown > 0 else 0.0
            cost = (best[i][0] + _CUE_COST + _SLACK_WEIGHT * slack * slack + _CPS_WEIGHT * over * over
                    + (run.cut[i] if i else 0.0))
            if cost < best[j][0]:
                best[j] = (cost, i)
    spans, j = [], n
    while j > 0:
        i = best[j][1]
        spans.append((i, j))
        j = i
    return spans[::-1]


def _time_cues(pieces: list[list[Word]], lengths: list[int], profile: Profile,
               media_end: float | None = None) -> list[tuple[float, float]]:
    """Display times that keep every hard rule: minimum and maximum duration, the gap, no overlap,
    nothing after `media_end`. Reading speed (`lengths`: characters as `check` counts them) gets
    what the silence around the speech allows.

    Each cue starts with its first word and ends after its last, extended into the silence after
    it as far as reading speed and minimum duration need; when the next cue's speech leaves too
    little time, it starts up to `_LEAD` early, and the next one up to `_LEAD` late if that one
    has time to spare. A cue that still cannot last the minimum pushes the
    next one later (merging crowded pieces first makes that rare). Then, from the end, cues past
    the media's end are cut back there, starting earlier when the minimum duration needs it.
    """

    def wanted(k: int, start: float) -> float:  # how long cue k should show from `start`
        return min(profile.max_duration, max(pieces[k][-1].end - start, lengths[k] / profile.max_cps,
                                              profile.min_duration))

    def room(k: int) -> float:  # up to where cue k may show while the next starts with its speech
        if k + 1 < len(pieces):
            return pieces[k + 1][0].start - profile.min_gap
        return media_end if media_end is not None else float("inf")

    times: list[tuple[float, float]] = []
    for k, piece in enumerate(pieces):
        floor = times[-1][1] + profile.min_gap if times else 0.0  # the earliest start the gap allows
        start = max(piece[0].start, floor)
        limit, need = room(k), wanted(k, start)
        if start + need > limit:
            # Short of time: start up to _LEAD early, into the silence before...
            start = max(min(start, limit - need), floor, piece[0].start - _LEAD, 0.0)
            if k + 1 < len(pieces) and start + need > limit:
                # ...and let the next cue start up to _LEAD late when it has time to spare.
                after = pieces[k + 1][0].start
                spare = room(k + 1) - after - wanted(k + 1, after)
                limit += max(0.0, min(_LEAD, spare, start + need - limit))
        end = max(min(start + need, limit), start + profile.min_duration)
        times.append((start, min(end, start + profile.max_duration)))
    if media_end is not None and times:
        # No cue starts earlier than the cues before it need for their minimum durations; media
        # too short for them all (dense speech up to its last frame) shares its time out equally:
        # then, and only then, the minimum duration gives.
        step = min(profile.min_duration + profile.min_gap, (media_end + profile.min_gap) / len(times))
        limit = media_end
        for k in range(len(times) - 1, -1, -1):
            start, end = times[k]
            if end <= limit:
                break  # the cues before end earlier still
            end = limit
            start = max(k * step, min(start, end - profile.min_duration))
            times[k] = (start, end)
            limit = start - profile.min_gap
    return [(round(start, 3), round(end, 3)) for start, end in times]


def _merge_crowded(pieces: list[list[Word]], profile: Profile) -> list[list[Word]]:
    """Join a piece that the next one follows too closely to last the minimum duration to the next
    (or, when they do not fit together, join it to the one before it, when no pause parts them)."""
    out: list[list[Word]] = []
    for piece in pieces:
        if out and piece[0].start - profile.min_gap - out[-1][0].start < profile.min_duration:
            joined = out[-1] + piece
            if _Run(joined).fits(0, len(joined), profile):
                out[-1] = joined
                continue
            if len(out) > 1 and out[-1][0].start - out[-2][-1].end < profile.pause:
                joined = out[-2] + out[-1]
                if _Run(joined).fits(0, len(joined), profile):
                    out[-2:] = [joined]
        out.append(piece)
    return out


def _wrap_long(word: Word, width: int) -> list[Word]:
    """A word longer than a line (a URL, a long compound) cut into line-sized parts, its time shared
    out by characters: no line may be longer than the profile allows."""
    text = word.text.strip()
    if len(text) <= width:
        return [word]
    lead = word.text[: len(word.text) - len(word.text.lstrip())]
    parts, at = [], word.start
    for i in range(0, len(text), width):
        part = text[i:i + width]
        end = word.start + (word.end - word.start) * (i + len(part)) / len(text)
        parts.append(Word(at, end, (lead if i == 0 else " ") + part, word.probability))
        at = end
    return parts


def layout(words: Sequence[Word], profile: Profile, media_end: float | None = None) -> list[Cue]:
    """Cues for a stream of timed words, in order, respecting `profile` where the words allow;
    none ends after `media_end` (seconds), when given."""
    clean: list[Word] = []
    for w in words:
        if not w.text.strip():
            continue
        # Engines occasionally return a word ending before it starts, or starting
        # before the previous one: keep order and make times monotonic.
        start = max(w.start, clean[-1].start if clean else 0.0)
        clean += _wrap_long(Word(start, max(w.end, start), w.text, w.probability), profile.max_line_chars)
    pieces = []
    blocks = _blocks(clean, profile)
    for k, block in enumerate(blocks):
        room_end = (blocks[k + 1][0].start - profile.min_gap if k + 1 < len(blocks)
                    else media_end if media_end is not None else float("inf"))
        pieces += [block[i:j] for i, j in _split_block(_Run(block), profile, room_end)]
    pieces = _merge_crowded(pieces, profile)
    texts = []
    for piece in pieces:
        run = _Run(piece)
        texts.append([_join(piece[i:j]) for i, j in _break_lines(run, 0, len(piece), profile)])
    # Reading speed counted as `check` counts it: the lines joined by one space.
    lengths = [len(" ".join(lines)) for lines in texts]
    times = _time_cues(pieces, lengths, profile, media_end)
    return [Cue(start, end, "\n".join(lines), tuple(piece))
            for lines, (start, end), piece in zip(texts, times, pieces, strict=True)]


# Languages whose text is measured per character with the narrower CJK limits.
CJK_LANGUAGES = frozenset({"zh", "ja", "ko", "yue"})


def profile_for(transcript: Transcript, profile: Profile | None) -> Profile:
    """The given profile, or the default for the transcript's language."""
    if profile is not None:
        return profile
    return get_profile("cjk" if transcript.language in CJK_LANGUAGES else DEFAULT_PROFILE)


def estimated_words(segment: Segment) -> list[Word]:
    """Words for a segment that came without word times (some servers, some tasks).

    The segment's time is shared out by characters: rough, but it lets the
    layout break a long segment into readable cues instead of one huge one.
    """
    texts = [" " + t for t in segment.text.split()]
    total = sum(len(t) for t in texts)
    words, at = [], segment.start
    for t in texts:
        end = at + (segment.end - segment.start) * len(t) / total
        words.append(Word(at, end, t))
        at = end
    return words


def media_end(transcript: Transcript) -> float | None:
    """Where the media ends on the picture's clock, as far as the transcript knows: the end of the
    audio it was made from, or the file's duration as ffprobe (and `check --video`) reads it when
    shorter; None when unknown."""
    ends = []
    source = transcript.source
    if transcript.duration > 0:
        ends.append(transcript.duration + (source.offset if source else 0.0))
    for known in (source.video_duration, source.media_duration) if source else ():
        if known:
            ends.append(float(known))
    return min(ends) if ends else None


def build_cues(transcript: Transcript, profile: Profile | None = None) -> list[Cue]:
    """Lay out a transcript's words as cues (words are estimated for segments without them);
    no cue runs past the end of the media."""
    words = [w for s in transcript.segments for w in (s.words or estimated_words(s))]
    profile = profile_for(transcript, profile)
    end = media_end(transcript)
    cues = layout(words, profile, end)
    fps = transcript.source.frame_rate if transcript.source else None
    if not (profile.lead_in or profile.snap_to_frames) or not cues:
        return cues
    times = finish_times([(c.start, c.end) for c in cues], profile.min_gap, profile.max_duration,
                         profile.lead_in, (fps or DEFAULT_FPS) if profile.snap_to_frames else None, end)
    return [Cue(start, stop, c.text, c.words) for c, (start, stop) in zip(cues, times, strict=True)]
