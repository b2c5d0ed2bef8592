import { expect } from 'bun:test'
import { PermanentError } from '../../src/errors'

/** Awaits a promise that must reject with a PermanentError; its code. */
export async function permanentCode(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(PermanentError)
  return (err as PermanentError).code
}
