/**
 * Every Redis key Atelier writes, spelled once. `prefix` isolates deployments
 * and test files sharing one Redis.
 */
export type RedisKeys = ReturnType<typeof makeRedisKeys>

export function makeRedisKeys(prefix: string) {
  return {
    prefix,
    rateLimit: (scope: string, subject: string, window: number) =>
      `${prefix}rl:${scope}:${subject}:${window}`,
    /** One per instance, with a TTL of ACTOR_LEASE_MS: the instance (and every actor it owns) is alive. */
    actorHeartbeat: (instanceId: string) => `${prefix}actor:hb:${instanceId}`,
    /** A sorted set of instance ids by last heartbeat (ms): whose heartbeat to look for. */
    actorMembers: () => `${prefix}actor:members`,
    /** The routing cache: "<owner> <epoch>" of a user's actor (Postgres holds the truth). */
    actorRoute: (key: string) => `${prefix}actor:route:${key}`,
    /** Held by the one instance that drains a dead instance's inbox. */
    actorTakeover: (instanceId: string) => `${prefix}actor:takeover:${instanceId}`,
    /** Commands forwarded to an instance's actors (a stream, one consumer group). */
    instanceInbox: (instanceId: string) => `${prefix}inbox:${instanceId}`,
    /** Replies to the commands an instance forwarded, by correlation id (a stream). */
    instanceReplies: (instanceId: string) => `${prefix}replies:${instanceId}`,
    /**
     * A user's event stream. "seq" streams hold ids "<seq>-0" from the outbox;
     * the streams of earlier versions ("events:user:", ids from the clock) are
     * left to expire: a client resuming from one of their ids gets resync.
     */
    userEvents: (userId: string) => `${prefix}events:seq:user:${userId}`,
    /** A pub/sub channel, not a key: carries every append of the "seq" streams. */
    eventNotifications: () => `${prefix}events:seq:notify`,
    /** A pub/sub channel: an admin changed the pose library (clear pose caches). */
    libraryChanged: () => `${prefix}library:changed`,
    /** Each instance's live figures for /v1/admin/stats, a record that expires unless refreshed. */
    instanceStats: (instanceId: string) => `${prefix}stats:instance:${instanceId}`,
    /** A sorted set of instance ids by last heartbeat (ms), to find the records above. */
    instanceStatsIndex: () => `${prefix}stats:instances`,
  }
}
