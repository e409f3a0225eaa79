"""The key lifecycle (issue, revoke, get, list) and authorization, wired to their dependencies once."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from keygate import keys
from keygate.apis import ApiStage
from keygate.authorize import Decision, authorize
from keygate.config import AWS_CLIENT_CONFIG, Config
from keygate.hashing import Argon2Params, Hasher, PepperRing
from keygate.records import KeyRecord, Status
from keygate.store import ConcurrentChange, KeyNotFound, KeyStore

_WRITE_ATTEMPTS = 3  # a key id collision (95 random bits) or a lost race is retried, not reported


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _retry_on_conflict[T](write: Callable[[], T]) -> T:
    for _ in range(_WRITE_ATTEMPTS - 1):
        try:
            return write()
        except ConcurrentChange:
            pass
    return write()


class KeyService:
    def __init__(
        self,
        config: Config,
        store: KeyStore,
        hasher: Hasher,
        peppers: PepperRing,
        clock: Callable[[], datetime] = _utc_now,
    ):
        self.config = config
        self._store = store
        self._hasher = hasher
        self._peppers = peppers
        self._clock = clock
        self._retention = timedelta(days=config.retention_days) if config.retention_days else None

    def authorize(self, authorization: Sequence[str], api_key: Sequence[str], api: ApiStage) -> Decision:
        """Decide on the values a request carried for the Authorization and x-api-key headers, on ``api``."""
        return authorize(
            authorization,
            api_key,
            api,
            prefix=self.config.key_prefix,
            store=self._store,
            hasher=self._hasher,
            peppers=self._peppers,
            now=self._clock(),
        )

    def issue(
        self,
        *,
        name: str,
        owner: str,
        description: str = "",
        scopes: Sequence[str] = (),
        apis: Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[keys.NewKey, KeyRecord]:
        """A new active key. The plaintext is in the returned NewKey only; the record holds its hash.
        Without ``apis``, the key gets the deployment's default list (DefaultKeyApis; none: every API)."""
        pepper_version, pepper = self._peppers.current()

        def create() -> tuple[keys.NewKey, KeyRecord]:
            new_key = keys.generate(self.config.key_prefix)
            record = KeyRecord(
                key_id=new_key.key_id,
                phc_hash=self._hasher.hash(new_key.secret, pepper),
                pepper_version=pepper_version,
                name=name,
                owner=owner,
                description=description,
                scopes=tuple(scopes),
                apis=tuple(apis) if apis is not None else self.config.default_key_apis,
                created_at=self._clock(),
                expires_at=expires_at,
                purge_at=expires_at + self._retention if expires_at and self._retention else None,
            )
            self._store.create(record)
            return new_key, record

        return _retry_on_conflict(create)

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key; revoking a revoked key changes nothing and returns it as it is."""

        def revoke() -> KeyRecord:
            record = self.get(key_id)
            if record.status is Status.REVOKED:
                return record
            now = self._clock()
            revoked = replace(
                record,
                status=Status.REVOKED,
                revoked_at=now,
                purge_at=now + self._retention if self._retention else None,
                version=record.version + 1,
            )
            self._store.update(revoked, record.version, ("status", "revoked_at", "purge_at"))
            return revoked

        return _retry_on_conflict(revoke)

    def get(self, key_id: str) -> KeyRecord:
        record = self._store.get(key_id)
        if record is None:
            raise KeyNotFound(f"no key with key_id {key_id!r}")
        return record

    def list(self, owner: str | None, limit: int, next_token: str | None) -> tuple[list[KeyRecord], str | None]:
        return self._store.list(owner, limit, next_token)

    def now(self) -> datetime:
        return self._clock()


def _keep_aws_payloads_out_of_logs() -> None:
    """botocore's DEBUG log prints response bodies, a GetSecretValue's pepper among them, and Lambda's
    ApplicationLogLevel=DEBUG sets the root logger to DEBUG: so botocore gets a level of its own, never
    below INFO, whatever the root logger is set to, now or later."""
    botocore_logger = logging.getLogger("botocore")
    botocore_logger.setLevel(max(logging.INFO, botocore_logger.level))


def from_config(config: Config) -> KeyService:
    """The service with AWS clients made once, for the life of the container."""
    _keep_aws_payloads_out_of_logs()
    dynamodb = boto3.client("dynamodb", config=AWS_CLIENT_CONFIG)
    # One boto3 session for both clients: a second session would load botocore's data again (~0.1 s).
    secrets = SecretsProvider(boto3_client=boto3.client("secretsmanager", config=AWS_CLIENT_CONFIG))
    return KeyService(
        config=config,
        store=KeyStore(config.keys_table, dynamodb),
        hasher=Hasher(Argon2Params(config.argon2_memory_kib, config.argon2_time_cost, config.argon2_parallelism)),
        peppers=PepperRing(config.pepper_secret_arn, secrets, max_age=config.pepper_cache_seconds),
    )
