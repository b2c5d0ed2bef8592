import { readFileSync } from 'node:fs'
import type { Redis } from './client'

/**
 * A Lua script kept in its own `.lua` file and run by its SHA1 (EVALSHA):
 * its text crosses the wire only when Redis does not have it (a restart, a
 * SCRIPT FLUSH, the first call), and that EVAL caches it again. node-redis's
 * own scripts (defineScript) must be declared when a client is created; the
 * rooms share the instance's client, created before any of them.
 */
export type RedisScript = {
  readonly sha: string
  run(redis: Redis, keys: string[], args: string[]): Promise<unknown>
}

export function loadScript(file: URL): RedisScript {
  const source = readFileSync(file, 'utf8')
  const sha = new Bun.CryptoHasher('sha1').update(source).digest('hex')
  return {
    sha,
    async run(redis, keys, args) {
      const options = { keys, arguments: args }
      try {
        return await redis.evalSha(sha, options)
      } catch (error) {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
        return redis.eval(source, options)
      }
    },
  }
}
