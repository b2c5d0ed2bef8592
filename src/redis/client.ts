import { createClient } from 'redis'

export type Redis = ReturnType<typeof createClient>

/** Connects one client; callers share it (one connection per instance, not per request or socket). */
export async function connectRedis(url: string, onError: (error: unknown) => void): Promise<Redis> {
  const client = createClient({
    url,
    socket: { connectTimeout: 5000, reconnectStrategy: (retries) => Math.min(retries * 100, 2000) },
  })
  client.on('error', onError)
  await client.connect()
  return client
}
