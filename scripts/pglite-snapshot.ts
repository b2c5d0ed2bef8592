/**
 * bun run db:snapshot (and bun install's postinstall): builds the migrated
 * PGlite snapshot embedded mode's first start unpacks (src/db/pglite-snapshot.ts).
 * Without it everything still works: a first start runs initdb and the migrations.
 */
import { buildSnapshot } from '../src/db/pglite-snapshot'

try {
  const started = performance.now()
  const file = await buildSnapshot()
  console.log(`embedded database snapshot: ${file} (${Math.round(performance.now() - started)} ms)`)
} catch (error) {
  console.warn(`no embedded database snapshot; a first bun start runs initdb instead: ${error}`)
}
