/** Prints the README's configuration table from src/config/schema.ts: `bun scripts/config-table.ts`. */
import { EnvSchema } from '../src/config/schema'

const rows = Object.entries(EnvSchema.properties).map(([name, schema]) => {
  const s = schema as { default?: unknown; description?: string; anyOf?: { const?: string }[] }
  const def = s.default === undefined ? '' : `\`${String(s.default)}\``
  return `| \`${name}\` | ${def} | ${(s.description ?? '').replaceAll('|', '\\|')} |`
})
process.stdout.write(
  ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n') + '\n',
)
