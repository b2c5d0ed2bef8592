import { describe, expect, it } from 'bun:test'
import { join } from 'node:path'

const CHILD = join(import.meta.dir, 'fixtures', 'process-handlers-child.ts')

async function run(mode: 'reject' | 'throw') {
  const proc = Bun.spawn([process.execPath, CHILD, mode], { stdout: 'pipe', stderr: 'pipe' })
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
  const [code, out] = await Promise.all([proc.exited, new Response(proc.stdout).text()])
  clearTimeout(timer)
  const lines = out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg: string; [k: string]: unknown })
  return { code, lines }
}

describe('process-level handlers', () => {
  it('logs and counts an unhandled rejection and keeps running', async () => {
    const { code, lines } = await run('reject')
    expect(code).toBe(0)
    expect(lines.find((l) => l.msg === 'unhandled rejection')).toBeDefined()
    expect(lines.find((l) => l.msg === 'still alive')?.line).toMatch(/ 1$/)
  })

  it('drains and exits non-zero on an uncaught exception', async () => {
    const { code, lines } = await run('throw')
    expect(code).toBe(1)
    expect(lines.map((l) => l.msg)).toEqual([
      'uncaught exception: draining, then exiting 1',
      'draining',
    ])
  })
})
