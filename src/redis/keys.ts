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
    actorLease: (key: string) => `${prefix}actor:lease:${key}`,
    actorEpoch: (key: string) => `${prefix}actor:epoch:${key}`,
    instanceInbox: (instanceId: string) => `${prefix}inbox:${instanceId}`,
    userEvents: (userId: string) => `${prefix}events:user:${userId}`,
    /** A pub/sub channel, not a key: carries the user id of every append. */
    eventNotifications: () => `${prefix}events:notify`,
  }
}
