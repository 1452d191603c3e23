"""Errors users can act on, each with its own exit code.

Every failure that is the user's input or environment (not a bug) is a
`SubtitlerError`: the CLI prints its message on one line and exits with its
`exit_code`, never with a traceback. Codes are stable so scripts can branch.
"""

from __future__ import annotations


class SubtitlerError(Exception):
    """Base class: a clear, one-line message and a distinct exit code."""

    exit_code = 1


class InputNotFound(SubtitlerError):
    """The input path does not exist or is not a file."""

    exit_code = 3


class NotMedia(SubtitlerError):
    """ffmpeg cannot read the input as media (nor is it a transcript)."""

    exit_code = 4


class NoAudioStream(SubtitlerError):
    """The input has not the audio stream asked for (media with no audio stream at all is not an
    error for the pipeline: it gets empty subtitles)."""

    exit_code = 5


class EmptyAudio(SubtitlerError):
    """The audio stream decodes to no samples."""

    exit_code = 6


class OutputExists(SubtitlerError):
    """An output file exists and --overwrite was not given."""

    exit_code = 7


class BackendUnavailable(SubtitlerError):
    """The backend is unknown, not installed, or its model cannot be loaded."""

    exit_code = 8


class UnsupportedOption(SubtitlerError):
    """A decoding option the chosen engine or model cannot honour."""

    exit_code = 9


class FFmpegNotFound(SubtitlerError):
    """No ffmpeg binary on PATH nor from imageio-ffmpeg."""

    exit_code = 10


class BadTranscript(SubtitlerError):
    """A transcript JSON file that does not follow the schema."""

    exit_code = 11


class OutputError(SubtitlerError):
    """An output cannot be written (unwritable folder, or it is the input itself)."""

    exit_code = 12


class VideoError(SubtitlerError):
    """ffmpeg could not write the video, or the container cannot take the subtitles."""

    exit_code = 13


class DecodeInterrupted(SubtitlerError):
    """ffmpeg was killed or crashed while decoding: nothing is known about the file; run again."""

    exit_code = 14


class RemoteError(SubtitlerError):
    """A remote transcription service failed or answered something unexpected."""

    exit_code = 20


class RemoteAuthError(RemoteError):
    """The service refused the API key (401/403)."""

    exit_code = 21


class RemoteNotFound(RemoteError):
    """404 from the service: a wrong base URL or model."""

    exit_code = 22


class RemoteJobFailed(RemoteError):
    """The service's job ended as failed or cancelled."""

    exit_code = 23


class RemoteNoTimings(RemoteError):
    """The service gave text without timings: it cannot become subtitles."""

    exit_code = 24


class RemoteTimeout(RemoteError):
    """--timeout ran out before the service finished."""

    exit_code = 25


class RemoteTooLarge(RemoteError):
    """The service refused the upload as too large (413)."""

    exit_code = 26


class ServeError(SubtitlerError):
    """`subtitler serve` cannot run: its address cannot be listened on, its data folder cannot be
    used, or its keys file cannot be read."""

    exit_code = 30


class InsecureServe(ServeError):
    """`subtitler serve` on an address other machines can reach, with no API key configured."""

    exit_code = 31


class ClusterError(SubtitlerError):
    """--cluster: Ray is not installed, the cluster cannot be reached, or it has no room for an engine."""

    exit_code = 40


# The CLI's code for Ctrl-C, as shells report SIGINT.
INTERRUPTED_EXIT_CODE = 130
# ... and for SIGTERM (128 + 15): the run stops as on Ctrl-C.
TERMINATED_EXIT_CODE = 143
