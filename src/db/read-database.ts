import { makeDatabase, type Database, type DatabaseDeps } from './database'

/**
 * DATABASE_READ_URL: a read replica, opened with the same client settings
 * (pool size, deadlines, error listener) as the primary's, or none when the
 * URL is unset or the primary is embedded PGlite. Which reads go to it is the
 * composition root's choice (src/server.ts): a user's own generations and
 * media only outside the primary region, where read-your-writes replays the
 * reads that must see a fresh write.
 */
export function makeReadDatabase(
  url: string | undefined,
  primary: DatabaseDeps,
): Promise<Database | undefined> {
  if (!url || !primary.url) return Promise.resolve(undefined)
  return makeDatabase({
    ...primary,
    url,
    applicationName: `${primary.applicationName ?? 'atelier'}:read`.slice(0, 63),
  })
}
