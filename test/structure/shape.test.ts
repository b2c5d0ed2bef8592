import { describe, expect, it } from 'bun:test'
import { readFileSync } from 'node:fs'
import { MAX_FILE_LINES, MAX_FUNCTION_LINES, measure } from './shape'

/**
 * The proportions of issue #11, kept: a file over 300 lines, a function over 80, or a
 * query builder outside a repository file or src/db/ fails here with where it is.
 */
describe('the shape of src/', () => {
  const findings = measure()

  it(`has no file over ${MAX_FILE_LINES} lines`, () => {
    expect(findings.filter((f) => f.what === 'file')).toEqual([])
  })

  it(`has no function over ${MAX_FUNCTION_LINES} lines`, () => {
    expect(findings.filter((f) => f.what.startsWith('function'))).toEqual([])
  })

  it('keeps the composition root, src/server.ts, under 150 lines', () => {
    const text = readFileSync('src/server.ts', 'utf8')
    expect(text.trimEnd().split('\n').length).toBeLessThan(150)
  })

  it('writes SQL only in repository files and src/db/', () => {
    expect(findings.filter((f) => f.what === 'sql outside a repository')).toEqual([])
  })

  it('measures what it says (a long function and inline SQL are found)', () => {
    const probe = measure(`${import.meta.dir}/fixtures`)
    expect(probe.map((f) => f.what).sort()).toEqual([
      'file',
      'function tooLong',
      'sql outside a repository',
    ])
  })
})
