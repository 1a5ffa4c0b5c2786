"""image-tag: a tag like `latest` (or none, which means `latest`) makes the same commit deploy
different software on different days; a digest pins it for good (required when configured).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from reconciler.policy.fields import Fields
from reconciler.policy.rules.base import Family, Finding, RuleSpec
from reconciler.policy.view import EnvironmentView, Subject

RULE = "image-tag"
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Settings:
    forbidden_tags: tuple[str, ...]
    require_digest: bool


def parse_settings(fields: Fields) -> Settings:
    settings = Settings(
        forbidden_tags=fields.strings("forbidden_tags", ("latest",)),
        require_digest=fields.boolean("require_digest", False),
    )
    fields.finish()
    return settings


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """`registry:5000/team/app:1.2@sha256:..` -> (`registry:5000/team/app`, `1.2`, `sha256:..`)."""
    name, _, digest = image.partition("@")
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        return name[:colon], name[colon + 1:], digest or None
    return name, None, digest or None


def problem(image: str, settings: Settings) -> str | None:
    """Why this image reference is not pinned enough, or None."""
    _, tag, digest = split_image(image)
    if digest is not None and not _DIGEST.search(image):
        return f"image {image} has a malformed digest"
    if settings.require_digest and digest is None:
        return f"image {image} is not pinned by digest"
    if digest is not None:
        return None
    if tag is None:
        return f"image {image} has no tag (pulls :latest)"
    if tag in settings.forbidden_tags:
        return f"image {image} uses the mutable tag :{tag}"
    return None


def check(view: EnvironmentView, settings: Settings) -> Iterator[Finding]:
    for workload in view.workloads:
        for container in workload.containers():
            image = str(container.spec.get("image") or "")
            reason = problem(image, settings) if image else "no image set"
            if reason:
                yield Finding(
                    RULE, Subject.of(workload.obj), f"container {container.name} of {workload.kind} {workload.name}: {reason}",
                    "pin the image to a release tag" + (" and its @sha256 digest" if settings.require_digest else " (e.g. traefik:v3.1.4)"),
                )


FAMILY = Family(
    name="images",
    rules=(RuleSpec(RULE, "Images carry an immutable release tag (never :latest or untagged); optionally a digest.", "high"),),
    parse_settings=parse_settings,
    check=check,
)
