"""API Gateway's authorizer cache, flushed when a key loses access, so a cached allow does not outlive a
revocation by the cache's TTL: the only module that calls the flush APIs and EventBridge Scheduler.

The stages are the template's ``CachedStages``: ``rest:API_ID/STAGE`` (FlushStageAuthorizersCache) or
``http:API_ID/STAGE`` (API Gateway v2 ResetAuthorizersCache). Each call empties a whole stage's cache.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from botocore.exceptions import BotoCoreError, ClientError

from keygate.authorize import explained

_ENTRY = re.compile(r"(rest|http):([A-Za-z0-9]{1,64})/([A-Za-z0-9_$-]{1,128})")
# The template's CachedStages: empty, or entries separated by commas (spaces allowed around them).
CACHED_STAGES_PATTERN = rf"^ *({_ENTRY.pattern} *(, *{_ENTRY.pattern} *)*)?$"
EXAMPLE = "rest:API_ID/STAGE or http:API_ID/STAGE, e.g. rest:a1b2c3d4e5/prod"
SCHEDULE_GROUP = "default"
AUTHORIZER_TIMEOUT_SECONDS = 17  # AuthorizerFunction's Timeout in template.yaml


@dataclass(frozen=True)
class CachedStage:
    kind: str  # "rest" or "http"
    api_id: str
    stage: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.api_id}/{self.stage}"


def parse_cached_stages(text: str) -> tuple[CachedStage, ...]:
    """``CachedStages`` entries, separated by commas; empty: none. Raises ValueError naming the entry."""
    stages = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        match = _ENTRY.fullmatch(entry)
        if match is None:
            raise ValueError(f"{entry!r} is not {EXAMPLE}")
        stages.append(CachedStage(*match.groups()))
    if not stages and text.strip():
        raise ValueError(f"no entry: {EXAMPLE}")
    return tuple(stages)


@dataclass(frozen=True)
class FlushReport:
    """What a flush did, for the admin answer: the revocation bound it leaves, in words."""

    ttl: int
    flushed: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)  # stage -> error code and message
    scheduled: str | None = None  # when a later flush will run (a rotation's grace period ends)

    def view(self) -> dict:
        view = {"flushed": list(self.flushed), "revocation_bound": self._bound()}
        if self.failed:
            view["failed"] = dict(self.failed)
        if self.scheduled:
            view["scheduled_at"] = self.scheduled
        return view

    def _bound(self) -> str:
        ttl = f"up to {self.ttl} s (AuthorizerCacheTtl)"
        if self.failed:
            return f"{ttl}: the flush of {', '.join(sorted(self.failed))} failed; run keygate flush-cache"
        if self.scheduled:
            return f"the cache is flushed at {self.scheduled}, when the previous secret stops verifying"
        if not self.flushed:
            return f"{ttl}: CachedStages names no stage to flush"
        return "the next request once API Gateway has applied the flush"


class AuthorizerCache:
    def __init__(
        self,
        ttl: int,
        stages: tuple[CachedStage, ...],
        apigateway=None,
        apigatewayv2=None,
        scheduler=None,
        flush_target: tuple[str, str] | None = None,  # (flush function ARN, role Scheduler assumes)
    ):
        self.ttl = ttl
        self.stages = stages
        self._clients = {"rest": apigateway, "http": apigatewayv2}
        self._scheduler = scheduler
        self._flush_target = flush_target

    @property
    def in_use(self) -> bool:
        """Answers are cached (AuthorizerCacheTtl > 0): a change that narrows a key's access must flush."""
        return self.ttl > 0

    def flush(self) -> FlushReport | None:
        """Empty the cache of every stage; None when nothing is cached. Each call is retried by the
        client (standard mode, throttling included); a stage that still fails is reported, not raised:
        the key's record is changed already, so the bound falls back to the TTL."""
        if not self.in_use:
            return None
        flushed, failed = [], {}
        for stage in self.stages:
            try:
                if stage.kind == "rest":
                    self._clients["rest"].flush_stage_authorizers_cache(restApiId=stage.api_id, stageName=stage.stage)
                else:
                    self._clients["http"].reset_authorizers_cache(ApiId=stage.api_id, StageName=stage.stage)
                flushed.append(str(stage))
            except (ClientError, BotoCoreError) as error:
                failed[str(stage)] = explained(error)
        return FlushReport(self.ttl, tuple(flushed), failed)

    def flush_at(self, moment: datetime, name: str, reason: str, grace_of: dict | None = None) -> FlushReport | None:
        """Schedule a flush (EventBridge Scheduler, one time, deleted after it runs) for ``moment``: a
        rotation's grace period ends then, and a cached allow of the previous secret must end with it."""
        if not self.in_use or not self.stages:
            return None
        if self._flush_target is None:
            return FlushReport(self.ttl, failed={"schedule": "no flush function is configured"})
        function_arn, role_arn = self._flush_target
        at = _after_last_verify(moment).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self._scheduler.create_schedule(
                Name=name,
                GroupName=SCHEDULE_GROUP,
                ScheduleExpression=f"at({at})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={
                    "Arn": function_arn,
                    "RoleArn": role_arn,
                    "Input": json.dumps({"reason": reason} | _grace(grace_of)),
                },
            )
        except (ClientError, BotoCoreError) as error:
            return FlushReport(self.ttl, failed={"schedule": explained(error)})
        return FlushReport(self.ttl, scheduled=f"{at}Z")


def _grace(grace_of: dict | None) -> dict:
    """The rotation whose grace period ends, for the flush function to drop its previous secret."""
    return {"grace_of": grace_of} if grace_of else {}


def _after_last_verify(moment: datetime) -> datetime:
    """When to flush so no allow of the old secret survives: Scheduler may run an ``at()`` schedule any
    time in its minute, and an authorizer call that verified just before ``moment`` may still be
    answering; so a minute and the authorizer's timeout later, on a whole minute, and never in the past."""
    earliest = max(moment, datetime.now(UTC)) + timedelta(seconds=60 + AUTHORIZER_TIMEOUT_SECONDS)
    return (earliest + timedelta(minutes=1)).replace(second=0, microsecond=0)
