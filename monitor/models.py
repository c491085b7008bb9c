"""The records that flow between stages: what a source yields and what the archive holds."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

Kind = Literal["post", "video", "article"]
_T = TypeVar("_T")


def _pickled_as_arguments(cls: type[_T]) -> type[_T]:
    """Pickle a slots dataclass as its constructor's arguments.

    The parse worker sends thousands of posts a pass, and dataclasses' own __setstate__ for
    slots costs three times the constructor. The fields are read by one C call
    (attrgetter), not a generator: half the cost of pickling a post.
    """
    fields = operator.attrgetter(*cls.__slots__)  # two or more: a tuple

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        return type(self), fields(self)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign,assignment]
    return cls


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Media:
    """An image, video or audio file attached to a post (enclosure, media:content, thumbnail)."""

    url: str
    medium: str | None = None  # "image" | "video" | "audio" | None when unknown
    type: str | None = None  # MIME type when the source gives one
    width: int | None = None
    height: int | None = None
    duration: float | None = None  # seconds
    role: str | None = None  # "thumbnail", "enclosure", "content", "variant", ...

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and this runs for every media of every post.
        return {k: v for k in self.__slots__ if (v := getattr(self, k)) is not None}


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Segment:
    """A timed piece of a transcript."""

    start: float
    end: float
    text: str


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Post:
    """One item as a source sees it, before the archive gives it an id and a version."""

    external_id: str  # the source's own id (guid, tweet id, URL...); stable across fetches
    url: str | None
    title: str | None = None
    text: str | None = None
    author: str | None = None
    kind: Kind = "article"
    published_at: str | None = None  # ISO 8601 UTC, "YYYY-MM-DDTHH:MM:SSZ"
    lang: str | None = None
    media: tuple[Media, ...] = ()
    transcript: str | None = None
    segments: tuple[Segment, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific, not indexed
    # Ids earlier releases gave this same item (a relative guid resolved against the feed URL
    # by feedparser): an archive that holds one of them updates that post, not a second one.
    former_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """A saved query matched a stored post."""

    alert_id: str
    post_id: str
    # None until a reader needs it: made at match time only for an alert that is sent.
    snippet: str | None
    offset: float | None = None  # seconds into the video when the match is in the transcript
