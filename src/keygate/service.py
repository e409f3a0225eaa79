"""KeyService: the key's life, leak reports and operators' questions, wired to their dependencies once,
with the AWS clients made once per container."""

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from keygate.audit_copy import AuditCopyLog
from keygate.authorize import Authorizer, Decision
from keygate.authorizer_cache import AuthorizerCache
from keygate.config import AWS_CLIENT_CONFIG, GATEWAY_CLIENT_CONFIG, Config
from keygate.hashing import Argon2id, Argon2Params, Hasher, PepperRing
from keygate.inspection import Inspection
from keygate.leak_revocation import LeakRevocation
from keygate.leaks import LeakNotifier
from keygate.lifecycle import utc_now
from keygate.owner_usage_keys import OwnerUsageKeys
from keygate.rotation import Rotation
from keygate.routes import RequestRoute
from keygate.store import KeyStore
from keygate.usage_plans import UsagePlans
from keygate.verified import VerifiedKeys


class KeyService(LeakRevocation, Rotation, Inspection):
    """Everything the handlers ask of keys: the lifecycle (lifecycle.py, rotation.py), leak reports
    (leak_revocation.py), operators' questions (inspection.py) and authorization, over one set of
    dependencies."""

    def __init__(
        self,
        config: Config,
        store: KeyStore,
        hasher: Hasher,
        peppers: PepperRing,
        clock: Callable[[], datetime] = utc_now,
        usage_plans: UsagePlans | None = None,
        authorizer_cache: AuthorizerCache | None = None,
        notifier: LeakNotifier | None = None,
        audit_copy_log: AuditCopyLog | None = None,
        owner_usage_keys: OwnerUsageKeys | None = None,
    ):
        self.config = config
        self._store = store
        self._hasher = hasher
        self._peppers = peppers
        self._clock = clock
        self._usage_plans = usage_plans
        # from_config gives the table; a service made without it cannot give a key its owner's API Gateway key
        self._owner_usage_keys = owner_usage_keys or OwnerUsageKeys("", None, usage_plans)
        self._cache = authorizer_cache or AuthorizerCache(0, ())
        self._notifier = notifier
        self._audit_copy = audit_copy_log
        self._retention = timedelta(days=config.retention_days) if config.retention_days else None
        self.authorizer = Authorizer(
            config.key_prefix,
            store,
            hasher,
            peppers,
            config.route_scopes,
            VerifiedKeys(config.verified_key_cache_size),
            timedelta(minutes=config.last_used_interval_minutes),
            writes=not config.primary_region,
        )

    def authorize(self, authorization: Sequence[str], api_key: Sequence[str], route: RequestRoute) -> Decision:
        """Decide on the values a request carried for the Authorization and x-api-key headers."""
        return self.authorizer.decide(authorization, api_key, route, now=self._clock())


def _keep_aws_payloads_out_of_logs() -> None:
    """botocore's DEBUG log prints response bodies, a GetSecretValue's pepper among them, and Lambda's
    ApplicationLogLevel=DEBUG sets the root logger to DEBUG: so botocore gets a level of its own, never
    below INFO, whatever the root logger is set to, now or later."""
    botocore_logger = logging.getLogger("botocore")
    botocore_logger.setLevel(max(logging.INFO, botocore_logger.level))


class _ClientOnFirstUse:
    """A boto3 client made when first called: only the admin functions call API Gateway and Scheduler,
    and the authorizer's cold start should not pay for their clients (~40 ms each)."""

    def __init__(self, service: str):
        self._service = service
        self._client = None

    def __getattr__(self, name: str):
        if self._client is None:
            self._client = boto3.client(self._service, config=GATEWAY_CLIENT_CONFIG)
        return getattr(self._client, name)


def from_config(config: Config) -> KeyService:
    """The service with AWS clients made once, for the life of the container."""
    _keep_aws_payloads_out_of_logs()
    dynamodb = boto3.client("dynamodb", config=AWS_CLIENT_CONFIG)
    # One boto3 session for both clients: a second session would load botocore's data again (~0.1 s).
    secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager", config=AWS_CLIENT_CONFIG))
    usage_plans = UsagePlans(_ClientOnFirstUse("apigateway"), config.keys_table)
    store = KeyStore(config.keys_table, dynamodb, config.audit_table)
    return KeyService(
        config=config,
        store=store,
        hasher=Hasher(
            [Argon2id(Argon2Params(config.argon2_memory_kib, config.argon2_time_cost, config.argon2_parallelism))]
        ),
        peppers=PepperRing(config.pepper_secret_arn, secrets, max_age=config.pepper_cache_seconds),
        usage_plans=usage_plans,
        owner_usage_keys=OwnerUsageKeys(config.owner_usage_keys_table, dynamodb, usage_plans, store.existing),
        authorizer_cache=AuthorizerCache(
            config.authorizer_cache_ttl,
            config.cached_stages,
            _ClientOnFirstUse("apigateway"),
            _ClientOnFirstUse("apigatewayv2"),
            _ClientOnFirstUse("scheduler"),
            config.flush_target,
        ),
        notifier=LeakNotifier(config.leak_topic_arn, _ClientOnFirstUse("sns")) if config.leak_topic_arn else None,
        audit_copy_log=AuditCopyLog(_ClientOnFirstUse("logs"), config.audit_copy_log_group)
        if config.audit_copy_log_group
        else None,
    )
