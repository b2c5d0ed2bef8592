import { createClient } from 'redis'

export type Redis = ReturnType<typeof createClient>

export type RedisClientDeps = {
  /**
   * Milliseconds a command may wait to be sent (Redis unreachable, the client
   * reconnecting) before it fails with a TimeoutError (default 1000).
   * node-redis applies its timeout only until the command is written (see
   * redis/node-redis#3008): a command already sent to a server that stopped
   * answering waits for the socket to fail. Callers that must not wait that
   * long (the login limiter, the relay, readiness) put their own deadline on top.
   */
  commandTimeoutMs?: number
  /**
   * Commands queued or awaiting a reply on one connection before new ones
   * fail at once with "The queue is full" (default 20 000): the offline queue
   * is bounded, so an outage cannot pile up commands and memory without end
   * (redis/node-redis#932, #1039), and the flush when Redis returns is bounded too.
   */
  queueMax?: number
  /** Longest wait between reconnect attempts (default 500 ms: back in well under 3 s). */
  maxReconnectDelayMs?: number
}

/** Connects one client; callers share it (one connection per instance, not per request or socket). */
export async function connectRedis(
  url: string,
  onError: (error: unknown) => void,
  deps: RedisClientDeps = {},
): Promise<Redis> {
  const maxDelay = deps.maxReconnectDelayMs ?? 500
  const client = createClient({
    url,
    socket: {
      connectTimeout: 2000,
      reconnectStrategy: (retries) => Math.min(50 * 2 ** Math.min(retries, 10), maxDelay),
    },
    commandsQueueMaxLength: deps.queueMax ?? 20_000,
    commandOptions: { timeout: deps.commandTimeoutMs ?? 1000 },
  })
  client.on('error', onError)
  await client.connect()
  return client
}

/**
 * `run` with a deadline: for callers that must answer in time even when a
 * command was sent to a Redis that stopped answering (node-redis does not
 * time out a written command). The command itself may still complete later.
 */
export async function withDeadline<T>(ms: number, what: string, run: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      run(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
