"""Every Redis key name Switchyard uses. No other module spells one out."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "switchyard:"


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Key names under one prefix, so several deployments can share a Redis."""

    prefix: str = DEFAULT_PREFIX

    def pool(self, name: str) -> str:
        """SET of backend base URLs of one pool."""
        return f"{self.prefix}pool:{name}"

    @property
    def weight(self) -> str:
        """STRING: percent of traffic sent to staging (absent means the default)."""
        return f"{self.prefix}weight"

    @property
    def alert(self) -> str:
        """STRING: present means the kill switch is on; the value is JSON
        {"by", "reason", "at"} or any bare string such as the original "yes"."""
        return f"{self.prefix}alert"

    @property
    def alert_claims(self) -> str:
        """HASH: monitored host -> JSON {"by", "reason", "at"} of its monitor's claim on the
        alert; the alert a claim set is cleared when the last claim is released."""
        return f"{self.prefix}alert:claims"

    @property
    def flags(self) -> str:
        """HASH: flag name -> "1" / "0", or a JSON rule {"on", "percent" or "variants"} (state/flags.py)."""
        return f"{self.prefix}flags"

    @property
    def flag_routes(self) -> str:
        """HASH: flag name -> JSON list of path prefixes the flag blocks."""
        return f"{self.prefix}flag_routes"

    @property
    def version(self) -> str:
        """STRING counter bumped by every change."""
        return f"{self.prefix}version"

    @property
    def generation(self) -> str:
        """STRING: JSON {"id", "cause", "by", "at"} of the routing state's current life;
        absent means the state was never written, or lost (state/generation.py)."""
        return f"{self.prefix}generation"

    @property
    def changes(self) -> str:
        """Pub/sub channel: one message per change (the payload names it)."""
        return f"{self.prefix}changes"

    @property
    def audit(self) -> str:
        """STREAM of changes: what, before, after, who, at."""
        return f"{self.prefix}audit"

    def instance(self, instance_id: str) -> str:
        """STRING with TTL: a running proxy's heartbeat (JSON)."""
        return f"{self.prefix}instance:{instance_id}"

    @property
    def instance_pattern(self) -> str:
        return f"{self.prefix}instance:*"

    def host(self, name: str) -> str:
        """STRING with TTL: a monitored host's latest sample (JSON), gone when the host is."""
        return f"{self.prefix}host:{name}"

    @property
    def host_pattern(self) -> str:
        return f"{self.prefix}host:*"

    def host_history(self, name: str) -> str:
        """STREAM, capped: a host's recent samples, for charts and scale-in windows."""
        return f"{self.prefix}history:{name}"

    def monitor_rules(self, host: str) -> str:
        """HASH: rule name -> JSON state of that rule on one monitored host (no TTL:
        a restarted monitor carries on from it)."""
        return f"{self.prefix}monitor:{host}:rules"

    @property
    def monitor_rules_pattern(self) -> str:
        return f"{self.prefix}monitor:*:rules"

    def monitor_outbox(self, host: str, channel: str) -> str:
        """LIST, capped: JSON notifications a host's monitor has still to deliver on a
        channel (email, webhook), oldest first."""
        return f"{self.prefix}monitor:{host}:outbox:{channel}"

    def monitor_notifiers(self, host: str) -> str:
        """HASH: channel -> JSON delivery status of a host's monitor (last error, retries)."""
        return f"{self.prefix}monitor:{host}:notifiers"

    @property
    def servers(self) -> str:
        """HASH: server id -> JSON record of a server the provisioner created (state,
        step, provider handle, backend URL), written before the server exists."""
        return f"{self.prefix}servers"

    @property
    def provision_lock(self) -> str:
        """STRING with TTL: the worker holding the one-provisioning-at-a-time lock."""
        return f"{self.prefix}provision:lock"

    def scale_marks(self, pool: str) -> str:
        """HASH: "up" / "down" -> wall-clock time a pool last grew / shrank, for cooldowns."""
        return f"{self.prefix}scale:marks:{pool}"

    def deploy_lock(self, env: str) -> str:
        """STRING with TTL: who is deploying to an environment (production or staging) now,
        kept alive while the deploy runs, so two pushes never deploy at once."""
        return f"{self.prefix}deploy:lock:{env}"

    def deploy_history(self, env: str) -> str:
        """STREAM, capped: an environment's deploys and rollbacks (action, sha, result,
        release per host, failed task, by, at), newest last."""
        return f"{self.prefix}deploy:history:{env}"

    @property
    def rollout(self) -> str:
        """STRING: JSON record of the current (or last) progressive rollout: plan, status,
        step, verdicts, and a revision every write bumps (compare-and-set)."""
        return f"{self.prefix}rollout"

    @property
    def rollout_lease(self) -> str:
        """STRING with TTL: the proxy leading rollouts now (its instance id), kept alive while it lives."""
        return f"{self.prefix}rollout:lease"

    @property
    def rollout_outbox(self) -> str:
        """LIST, capped: JSON rollout notices the leader has still to post to the chat webhook."""
        return f"{self.prefix}rollout:outbox"

    @property
    def rollout_deploys(self) -> str:
        """STREAM of deploy requests a finished rollout makes (request, sha, rollout, by, at);
        consumer group `provisioners`."""
        return f"{self.prefix}rollout:deploys"

    @property
    def rollout_deploy_results(self) -> str:
        """HASH: deploy request id -> JSON {"ok", "detail", "at"} the provisioner wrote when done."""
        return f"{self.prefix}rollout:deploy:results"

    def webhook_delivery(self, delivery_id: str) -> str:
        """STRING with TTL: a push webhook delivery already accepted, so a replay runs nothing."""
        return f"{self.prefix}webhook:delivery:{delivery_id}"

    def webhook_body(self, digest: str) -> str:
        """STRING with TTL: the SHA-256 of a signed push body already accepted, so the same
        push replayed under a new delivery id runs nothing."""
        return f"{self.prefix}webhook:body:{digest}"

    @property
    def scale_requests(self) -> str:
        """STREAM of scale requests (pool, reason, by, at, request); consumer group
        `provisioners`."""
        return f"{self.prefix}scale:requests"

    def scale_pending(self, pool: str) -> str:
        """STRING with TTL: the id of the open scale request for a pool, so a
        requester asks only once while one is being served."""
        return f"{self.prefix}scale:pending:{pool}"

    def version_stats(self, bucket_start: int) -> str:
        """HASH with EXPIREAT: every proxy's per-version counts over one time bucket starting at
        `bucket_start` (epoch seconds); field "<pool>:<release>:<counter>" -> count, added
        with HINCRBY (state/versionstats.py)."""
        return f"{self.prefix}vstats:{bucket_start}"

    def version_stats_applied(self, writer: str) -> str:
        """STRING with TTL: the id of the last batch of counts one proxy added, so a batch
        sent again after a lost reply is not counted twice."""
        return f"{self.prefix}vstats:applied:{writer}"

    @property
    def previews(self) -> str:
        """HASH: preview name -> JSON {"backends", "kind" (release or branch), "sha", "branch",
        "created_at", "touched_at", "env", "release"}: backends reached only at
        `<name>.<preview_domain>`."""
        return f"{self.prefix}previews"

    @property
    def images(self) -> str:
        """HASH: pool -> JSON {"pool", "image_id", "name", "created_at", "release", "by"} of the
        prepared image its new servers start from (state/images.py)."""
        return f"{self.prefix}images"

    def watched(self) -> tuple[str, ...]:
        """The keys that make up a routing snapshot."""
        return (
            self.pool("production"),
            self.pool("staging"),
            self.weight,
            self.alert,
            self.flags,
            self.flag_routes,
            self.previews,
            self.version,
        )
