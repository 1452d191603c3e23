"""Transcript -> cues -> files: the rendering step, and the subtitled video made with them.

`write_outputs` lays out a transcript's cues once (cues.py) and writes each
format's file atomically (formats.py, files.py); `write_video` puts them into
the video as soft tracks or burns them into the picture (video.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .cues import build_cues
from .errors import OutputError
from .events import Report
from .files import atomic_write
from .formats import get_format
from .profiles import Profile
from .specs import RenderSpec
from .style import Style
from .transcript import Transcript
from .video import SubtitleTrack, burn, mux, mux_format


def write_outputs(transcript: Transcript, targets: Iterable[tuple[str, Path]],
                  profile: Profile | None = None, style: Style | None = None) -> None:
    """Lay out cues once and write each (format, path) atomically."""
    cues = build_cues(transcript, profile)
    for fmt, target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            text = get_format(fmt).dumps(transcript, cues, style)
            # An input name that is not UTF-8 (the JSON's source "input") as JSON's \udce9 escape.
            atomic_write(target, text.encode("utf-8", "backslashreplace"))
        except OSError as e:
            raise OutputError(f"{target}: cannot write ({e.strerror or e})") from None


def write_video(path: Path, transcripts: list[Transcript], target: Path, render: RenderSpec, overwrite: bool,
                report: Report, warn: Callable[[str], None], titles: list[str | None] | None = None) -> Path:
    """`path` with the subtitles as `render.video` asks: each transcript a soft track (mux: the
    original, then a translation, titled by `titles`: None is the language's name), or the last
    one drawn into the picture (burn)."""
    settings = render.video
    assert settings is not None
    progress = report.progress_of

    with tempfile.TemporaryDirectory(prefix="subtitler-") as folder:
        if settings.mode == "burn":
            subs = Path(folder) / "subtitles.ass"
            write_outputs(transcripts[-1], [("ass", subs)], render.profile, render.style)
            return burn(path, subs, target, style=render.style, encoder=settings.encoder, crf=settings.crf,
                        preset=settings.preset, overwrite=overwrite, on_progress=progress, warn=warn)
        fmt = mux_format(target, render.formats)
        tracks = []
        for n, t in enumerate(transcripts):
            language = "en" if t.source and t.source.task == "translate" else t.language
            subs = Path(folder) / f"track{n}.{fmt}"
            write_outputs(t, [(fmt, subs)], render.profile, render.style)
            title = titles[n] if titles else None
            tracks.append(SubtitleTrack(subs, language, title, default=settings.default_track and n == 0))
        return mux(path, [*tracks, *settings.extra_tracks], target, overwrite=overwrite, on_progress=progress)
